"""One event, as the stream, the archive and the aggregator all read it.

An event is a flat JSON object. Every event has ``type``, ``ts`` (unix milliseconds),
``auction``, ``imp``, ``campaign``, ``creative``, ``device`` (hex device key, "" when none),
``tags`` (ids of the device's tags the campaign's targeting matched) and ``price`` (integer
USD micros: the bid's CPM for a bid, what was charged for a win or billing notice, 0
otherwise). Bid events add what the bidder saw (``site_cat``, ``os``, ``w``, ``h``), loss
events the exchange's ``reason``, invalid clicks the rule that flagged them (``reason``).
Bid events also carry ``scores`` (issue 12): the DMP score of each tag in ``tags``, in the
same order, ``UNSCORED`` (100) for a tag without one; an event without it (older ones) has
unscored tags.
Conversion events (issue 12: ``conversion`` credited to a click, ``view_conversion`` to an
impression) name the touch they are credited to (``auction``, ``imp``, ``touch_ts``), the
advertiser's ``order`` id ("" when none) and carry the conversion's value in ``price``.

A stream entry holds either one or more events as JSON Lines in its field ``e`` (a
tracking notice adds one, from the ledger's script), or a batch of events as one Arrow IPC
stream in its field ``a``: a flush of the bidder's buffer, in one XADD. Bid and loss
events are most of the volume; in columns, the aggregator reads them without parsing a line.
The archive holds JSON Lines either way.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson
import pyarrow as pa  # type: ignore[import-untyped]

ENTRY_FIELD: Final = b"e"  # JSON Lines
BATCH_FIELD: Final = b"a"  # one Arrow IPC stream of BATCH_SCHEMA
BATCH_SCHEMA: Final = pa.schema(
    [
        ("type", pa.string()),
        ("ts", pa.int64()),
        ("auction", pa.string()),
        ("imp", pa.string()),
        ("campaign", pa.string()),
        ("creative", pa.string()),
        ("device", pa.string()),
        ("tags", pa.list_(pa.int64())),
        ("price", pa.int64()),
        ("site_cat", pa.list_(pa.string())),
        ("os", pa.string()),
        ("w", pa.int32()),
        ("h", pa.int32()),
        ("reason", pa.string()),
        ("scores", pa.list_(pa.int32())),  # issue 12: bid events, aligned with ``tags``
    ]
)
_IPC: Final = pa.ipc.IpcWriteOptions()  # uncompressed: the aggregator maps it without a copy
TYPES: Final = (
    "bid",
    "win",
    "bill",
    "loss",
    "imp",
    "click",
    "invalid_click",
    "conversion",
    "view_conversion",
)
# The counts kept per event type; spend is the sum of ``price`` over win and bill events.
METRIC_OF: Final = {
    "bid": "bids",
    "win": "wins",
    "bill": "bills",
    "loss": "losses",
    "imp": "impressions",
    "click": "clicks",
    "invalid_click": "invalid_clicks",
    "conversion": "click_conversions",  # issue 12: credited to a click
    "view_conversion": "view_conversions",  # issue 12: credited to an impression
}
METRICS: Final = (*METRIC_OF.values(), "spend", "conversion_value")
SPENDING: Final = ("win", "bill")
# issue 12: conversion events' ``price`` is the conversion's value: summed as conversion_value
VALUED: Final = ("conversion", "view_conversion")
ALL_TAGS: Final = "*"  # the tag value under which every event is counted once
NO_TAG: Final = "-"  # the tag value of events that matched no tag

Event = dict[str, Any]


def encode(events: Iterable[Mapping[str, Any]]) -> bytes:
    """Events as the payload of one stream entry (JSON Lines, no trailing newline)."""
    return b"\n".join(orjson.dumps(event) for event in events)


def decode(payload: bytes) -> list[Event]:
    return [orjson.loads(line) for line in payload.split(b"\n") if line]


def encode_table(table: pa.Table) -> bytes:
    """A table of BATCH_SCHEMA as the payload of one stream entry (Arrow IPC)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, BATCH_SCHEMA, options=_IPC) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def events_table(events: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Events (dicts; fields outside BATCH_SCHEMA are left out) as a table of BATCH_SCHEMA."""
    return pa.Table.from_pylist(list(events), schema=BATCH_SCHEMA)


def encode_batch(events: Iterable[Mapping[str, Any]]) -> bytes:
    """Events (dicts; fields outside BATCH_SCHEMA are left out) as one Arrow IPC payload."""
    return encode_table(events_table(events))


def decode_table(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(payload).read_all()


def _plain(row: dict[str, Any]) -> Event:
    """A row of a batch as the same flat event a JSON line gives (no null fields)."""
    return {name: value for name, value in row.items() if value is not None}


def entry_events(data: Mapping[bytes, bytes]) -> list[Event]:
    """Every event of one stream entry, whichever encoding it uses."""
    batch = data.get(BATCH_FIELD)
    if batch is not None:
        return [_plain(row) for row in decode_table(batch).to_pylist()]
    payload = data.get(ENTRY_FIELD)
    return decode(payload) if payload else []


def hour_of(ts_ms: int) -> str:
    """``YYYYMMDDHH`` (UTC) of a unix-milliseconds timestamp."""
    return time.strftime("%Y%m%d%H", time.gmtime(ts_ms // 1000))


def now_ms() -> int:
    return int(time.time() * 1000)
