"""Real-time scene tags: behaviour events in, short-lived tags on the device out.

A device entering an airport, opening a car app, reading a price page, searching "suv" or
calling a bank becomes a scene tag (``scene.travel.at_airport`` ...) with a score and a
time-to-live of minutes to hours, which the bidder reads beside the profile in its one
Redis round trip. Rules live in a scene library (``dmp/data/scenes.json``).

Wiring, for ``dmp serve`` and its HTTP layer::

    library, taxonomy = SceneLibrary.default(), Taxonomy.default()
    writer = SceneWriter(redis, library, taxonomy)          # one per process
    await writer.handle(event_dict)      # apply now; -> ["scene.travel.at_airport"]
    await publish(redis, event_dict)     # or queue it on the stream; -> entry id
    consumer = SceneConsumer(redis, writer)
    async with consumer.running():       # XREADGROUP loop as a background task
        ...

Both entry points raise `SceneEventError(field, reason)` for an invalid event.

Modules: ``scene_events`` (event model and validation), ``scene_rules`` (the library),
``scene_match`` (the indexes it compiles to), ``scene_writer`` (the atomic merge into
Redis), ``scene_consumer`` (the stream), ``scene_codec`` (the stored value).
"""

from __future__ import annotations

from dmp.errors import SceneEventError, SceneRuleError
from dmp.scene_consumer import (
    STREAM_MAXLEN,
    ConsumerStats,
    SceneConsumer,
    publish,
    publish_many,
)
from dmp.scene_events import EventKind, SceneEvent, parse_event
from dmp.scene_rules import SceneLibrary, SceneRule
from dmp.scene_writer import SceneWriter

__all__ = [
    "STREAM_MAXLEN",
    "ConsumerStats",
    "EventKind",
    "SceneConsumer",
    "SceneEvent",
    "SceneEventError",
    "SceneLibrary",
    "SceneRule",
    "SceneRuleError",
    "SceneWriter",
    "parse_event",
    "publish",
    "publish_many",
]
