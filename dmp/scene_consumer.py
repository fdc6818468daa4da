"""The scene event stream: `publish` appends validated events, `SceneConsumer` applies them.

Events travel through one Redis Stream (``keys.scene_events()``, capped near
``STREAM_MAXLEN`` entries), one JSON event per entry in field ``e``. Consumers share a
consumer group, so each event is written by one of them: read with XREADGROUP BLOCK,
written through `SceneWriter`, then XACKed. Delivery is at least once; writes are
idempotent, so a redelivered event changes nothing. Entries a dead consumer read but never
acked are taken over with XAUTOCLAIM once idle for ``claim_idle_ms``. A malformed entry is
acked, counted and logged: it can never succeed and must not block the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from dmp.errors import SceneEventError
from dmp.scene_events import SceneEvent, parse_event
from dmp.scene_writer import SceneWriter
from infra import keys
from infra.tasks import stop_tasks

log = logging.getLogger(__name__)

STREAM_MAXLEN = 1_000_000  # trimmed approximately: about a minute of a busy feed
DEFAULT_GROUP = "scene-writers"
EVENT_FIELD = b"e"

Entry = tuple[bytes, Mapping[bytes, bytes]]


async def publish(
    redis: Redis,
    event: SceneEvent | Mapping[str, object],
    *,
    now: float | None = None,
    maxlen: int = STREAM_MAXLEN,
) -> bytes:
    """Validate one event and append it to the stream; its entry id.

    Raises `SceneEventError` naming the bad field; nothing is appended then. A missing
    ``ts`` is set to now here, so the scene lives from when the event happened.
    """
    return (await publish_many(redis, [event], now=now, maxlen=maxlen))[0]


async def publish_many(
    redis: Redis,
    events: Sequence[SceneEvent | Mapping[str, object]],
    *,
    now: float | None = None,
    maxlen: int = STREAM_MAXLEN,
) -> list[bytes]:
    """Validate every event, then append them all in one round trip; their entry ids.

    An invalid event raises `SceneEventError` before anything is appended; with more than
    one event its field is prefixed with the event's index (``events[3].lat``).
    """
    now = time.time() if now is None else now
    bodies = []
    for index, event in enumerate(events):
        try:
            parsed = event if isinstance(event, SceneEvent) else parse_event(event, now)
        except SceneEventError as exc:
            if len(events) == 1:
                raise
            raise SceneEventError(f"events[{index}].{exc.field}", exc.reason) from None
        bodies.append(orjson.dumps(parsed.to_json()))
    stream = keys.scene_events()
    async with redis.pipeline(transaction=False) as pipe:
        for body in bodies:
            pipe.xadd(stream, {EVENT_FIELD: body}, maxlen=maxlen, approximate=True)
        return list(await pipe.execute())


@dataclass(slots=True)
class ConsumerStats:
    """Counters since the consumer started, for logs and ``/metrics``."""

    read: int = 0  # entries written and acked, claimed ones included
    applied: int = 0  # events that applied at least one scene
    tags: int = 0  # scenes applied
    rejected: int = 0  # malformed entries, acked and skipped
    claimed: int = 0  # entries taken over from another consumer
    errors: int = 0  # failed rounds (Redis errors), retried


class SceneConsumer:
    """One member of the scene writers' consumer group; run `run` as a background task.

    ``block_ms`` bounds how long a read waits, hence how soon a set ``stop`` is noticed;
    the Redis client must not have a socket timeout shorter than it.
    """

    def __init__(
        self,
        redis: Redis,
        writer: SceneWriter,
        *,
        group: str = DEFAULT_GROUP,
        name: str | None = None,
        batch: int = 256,
        block_ms: int = 500,
        claim_idle_ms: int = 60_000,
        claim_every_s: float = 15.0,
        retry_s: float = 1.0,
    ) -> None:
        self._redis = redis
        self.writer = writer
        self.stream = keys.scene_events()
        self.group = group
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.claim_every_s = claim_every_s
        self.retry_s = retry_s
        self.stats = ConsumerStats()
        self._group_ready = False
        self._backlog = True  # our own unacked entries (from before a restart) come first

    async def ensure_group(self) -> None:
        """Create the group (and the stream) if missing, reading from the stream's start."""
        try:
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until ``stop`` is set or the task is cancelled.

        Malformed entries and lost connections are logged and counted, never raised: the
        loop backs off ``retry_s`` after a failed round and carries on.
        """
        this = asyncio.current_task()
        next_claim = 0.0
        while stop is None or not stop.is_set():
            # redis-py can swallow a cancellation that lands mid-command; honour it here.
            if this is not None and this.cancelling():
                raise asyncio.CancelledError
            try:
                if not self._group_ready:
                    await self.ensure_group()
                if time.monotonic() >= next_claim:
                    next_claim = time.monotonic() + self.claim_every_s
                    await self.claim_abandoned()
                await self.step()
            except Exception as exc:  # a background loop must outlive a bad round
                self.stats.errors += 1
                if isinstance(exc, RedisError):  # a flushed stream loses the group: remake it
                    self._group_ready = False
                self._backlog = True
                log.warning("scene consumer round failed: %s", exc, exc_info=True)
                await _pause(self.retry_s, stop)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[asyncio.Task[None]]:
        """`run` as a background task for the duration of the block, then cancelled.

        Fits aiohttp's ``cleanup_ctx``: ``async with consumer.running(): yield``.
        """
        stop = asyncio.Event()
        task = asyncio.create_task(self.run(stop), name=f"scene-consumer-{self.name}")
        try:
            yield task
        finally:
            stop.set()
            await stop_tasks([task])

    async def step(self) -> int:
        """Read one batch (our own pending entries first, then new ones) and apply it."""
        backlog = self._backlog
        reply = await self._redis.xreadgroup(
            self.group,
            self.name,
            {self.stream: b"0" if backlog else b">"},
            count=self.batch,
            block=None if backlog else self.block_ms,
        )
        entries = _entries(reply)
        if backlog and not entries:
            self._backlog = False
        await self.apply(entries)
        return len(entries)

    async def claim_abandoned(self) -> int:
        """Take over and apply entries left unacked past ``claim_idle_ms``; how many."""
        start: bytes | str = b"0-0"
        claimed = 0
        for _ in range(16):  # a bounded share of the round; the rest waits for the next one
            reply = await self._redis.xautoclaim(
                self.stream, self.group, self.name, self.claim_idle_ms, start, count=self.batch
            )
            start, entries = reply[0], [e for e in reply[1] if e[0] is not None]
            claimed += len(entries)
            await self.apply(entries)
            if start in (b"0-0", "0-0"):
                break
        if claimed:
            self.stats.claimed += claimed
            log.info("claimed %d abandoned scene events", claimed)
        return claimed

    async def apply(self, entries: Sequence[Entry]) -> None:
        """Write the events of these entries, then ack them all, malformed ones included."""
        if not entries:
            return
        now = time.time()
        events = [
            event
            for entry_id, fields in entries
            if (event := self._parse(entry_id, fields, now)) is not None
        ]
        if events:
            applied = await self.writer.handle_many(events, now=now)
            self.stats.applied += sum(1 for tags in applied if tags)
            self.stats.tags += sum(len(tags) for tags in applied)
        await self._redis.xack(self.stream, self.group, *(entry_id for entry_id, _ in entries))
        self.stats.read += len(entries)

    def _parse(
        self, entry_id: bytes, fields: Mapping[bytes, bytes], now: float
    ) -> SceneEvent | None:
        try:
            body = fields.get(EVENT_FIELD)
            if body is None:
                raise SceneEventError("entry", f"no {EVENT_FIELD.decode()!r} field")
            return parse_event(orjson.loads(body), now)
        except (orjson.JSONDecodeError, SceneEventError) as exc:
            self.stats.rejected += 1
            log.warning(
                "rejected scene event %s: %s",
                entry_id.decode(errors="replace"),
                exc,
                extra={"stream": self.stream.decode(), "entry": entry_id.decode(errors="replace")},
            )
            return None


def _entries(reply: Any) -> list[Entry]:
    # XREADGROUP answers [[stream, [(id, fields), ...]]], or nothing once BLOCK runs out.
    if not reply:
        return []
    return list(reply[0][1])


async def _pause(seconds: float, stop: asyncio.Event | None) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
