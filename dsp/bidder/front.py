"""The bid endpoint's own HTTP/1.1 front: ``POST /openrtb2/bid`` without a task per request.

aiohttp spends about as long on a request (request and response objects, a task, the
middleware chain, header formatting) as the whole bid decision; an exchange connection
only ever posts bids. This protocol reads them straight off the socket, sends each one's
DMP lookup through the shared pipelined Redis connection (``infra.redis_pipe``) and writes
the answer from the reply's callback, in order per connection. Anything else (another path
or method, chunked or compressed bodies, ``Expect``) hands the connection over to aiohttp,
which serves it as usual: tracking pixels, the API and the console keep one port.

Never late: every lookup's deadline is noted (``Deadlines``), and a sweep every 2 ms
answers 204 for each request Redis has not answered by then. Never queueing: a heartbeat
measures the event loop's lag; while the loop falls behind, a growing share of new
requests is answered 204 at once, before any parsing, so the others still make their
deadlines (``Shedder``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Final, cast

from redis.exceptions import RedisError

from dmp.profile_lookup import lookup_command
from dmp.profile_store import LOOKUP_SHA
from dsp.bidder.handler import Bidder
from dsp.bidder.openrtb import BidRequest
from dsp.metrics import Metrics
from infra.redis_pipe import RedisPipe, Reply

log = logging.getLogger(__name__)

BID_PATH: Final = b"/openrtb2/bid"
MAX_HEAD_BYTES: Final = 16 * 1024
_REASONS: Final = {200: b"OK", 204: b"No Content", 400: b"Bad Request", 413: b"Payload Too Large"}
_HANDOFF_HEADERS: Final = (b"transfer-encoding", b"content-encoding", b"expect", b"upgrade")


def http_answer(status: int, body: bytes, *, close: bool = False) -> bytes:
    """A complete HTTP/1.1 response."""
    head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"OK"))
    if close:
        head += b"Connection: close\r\n"
    if status == 204:
        return head + b"\r\n"
    return head + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


NO_BID: Final = http_answer(204, b"")


class Shedder:
    """Share of bid requests answered 204 unread while the event loop lags.

    A heartbeat every ``period_s`` notes how late it woke. Lag over ``threshold_s`` raises
    the share by ``step``; a heartbeat on time lowers it by a fifth of that: quick to shed
    when work piles up, slow to take it all back.
    """

    def __init__(
        self,
        period_s: float = 0.002,
        threshold_s: float = 0.005,
        step: float = 0.05,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics  # counts stalls: heartbeats 10 ms and 50 ms late
        self.period_s = period_s
        self.threshold_s = threshold_s
        self.step = step
        self.share = 0.0
        self.lag_s = 0.0
        self._random = random.Random().random
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        # Kept: asyncio.get_running_loop() makes a getpid() system call each time.
        self._loop = loop = asyncio.get_running_loop()
        self._due = loop.time() + self.period_s
        self._handle = loop.call_at(self._due, self._beat)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _beat(self) -> None:
        loop = self._loop
        assert loop is not None  # set by start(), which schedules the first beat
        now = loop.time()
        self.lag_s = now - self._due
        if self.lag_s > 0.010 and self.metrics is not None:
            self.metrics.count("loop_stalls_10ms")
            if self.lag_s > 0.050:
                self.metrics.count("loop_stalls_50ms")
        if self.lag_s > self.threshold_s:
            # In proportion to the lag: a loop that lags wakes the heartbeat less often, so a
            # fixed step would take longest to shed exactly when the loop is furthest behind.
            self.share = min(1.0, self.share + self.step * self.lag_s / self.threshold_s)
        elif self.share:
            self.share = max(0.0, self.share - self.step / 5)
        self._due = now + self.period_s
        self._handle = loop.call_at(self._due, self._beat)

    def shed(self) -> bool:
        return self.share > 0.0 and self._random() < self.share


class _Slot:
    """One request's place in its connection's answer order."""

    __slots__ = ("data", "started")

    def __init__(self, started: float) -> None:
        self.data: bytes | None = None  # the answer; None while the request waits for it
        self.started = started


_SENT: Final = b""  # a slot's data once written (or dropped with its connection)


class Deadlines:
    """The deadlines of the lookups in flight, swept every ``period_s``.

    A timer per request (uvloop's ``call_later``, cancelled once Redis answered) cost 2 to
    3 us of a bid's 100; here a request is one append to the list of the period its
    deadline falls in, and each sweep answers 204 for the requests of the periods that have
    begun and still wait. A request is so answered up to one period before its deadline,
    never after it unless the loop itself is late, as a timer would be.
    """

    def __init__(self, period_s: float = 0.002) -> None:
        self.period_s = period_s
        self._buckets: dict[int, list[tuple[BidFront, _Slot]]] = {}
        self._swept = int(time.monotonic() / period_s)  # every period up to this one is done
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_later(self.period_s, self._sweep)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def add(self, deadline: float, front: BidFront, slot: _Slot) -> None:
        period = max(int(deadline / self.period_s), self._swept + 1)
        bucket = self._buckets.get(period)
        if bucket is None:
            self._buckets[period] = bucket = []
        bucket.append((front, slot))

    def sweep(self, now: float) -> None:
        """Answer 204 for every request of the periods begun by ``now`` still waiting."""
        due = int(now / self.period_s)
        buckets = self._buckets
        for period in range(self._swept + 1, due + 1):
            bucket = buckets.pop(period, None)
            if bucket is not None:
                for front, slot in bucket:
                    if slot.data is None:
                        front.expire(slot)
        self._swept = max(self._swept, due)

    def _sweep(self) -> None:
        loop = self._loop
        assert loop is not None  # set by start(), which schedules the first sweep
        self.sweep(time.monotonic())
        self._handle = loop.call_later(self.period_s, self._sweep)


class BidFront(asyncio.Protocol):
    """One client connection."""

    def __init__(
        self,
        bidder: Bidder,
        pipe: RedisPipe,
        shedder: Shedder,
        deadlines: Deadlines,
        handoff: Callable[[], asyncio.Protocol],
        connections: set[BidFront],
        max_body_bytes: int = 256 * 1024,
    ) -> None:
        self._bidder = bidder
        self._pipe = pipe
        self._shedder = shedder
        self._deadlines = deadlines
        self._handoff = handoff
        self._connections = connections
        self._max_body = max_body_bytes
        self._buffer = bytearray()
        self._slots: deque[_Slot] = deque()
        self._transport: asyncio.Transport | None = None
        self._closing = False  # answer what is pending, then close
        self._handing_off = False  # answer what is pending, then hand the rest to aiohttp

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._transport = None
        for slot in self._slots:
            if slot.data is None:
                slot.data = _SENT  # nobody to answer: the deadline sweep passes it by
        self._slots.clear()

    def data_received(self, data: bytes) -> None:
        if self._handing_off or self._closing:
            self._buffer += data
            return
        buffer = self._buffer
        buffer += data
        while buffer and not (self._handing_off or self._closing):
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    self._reject(413)
                return
            head = bytes(buffer[:end]).lower()
            line_end = head.find(b"\r\n")
            request_line = head if line_end < 0 else head[:line_end]
            parts = request_line.split(b" ")
            if (
                len(parts) != 3
                or parts[0] != b"post"
                or parts[1].partition(b"?")[0] != BID_PATH
                or any(name in head for name in _HANDOFF_HEADERS)
            ):
                self._start_handoff()
                return
            length = _content_length(head)
            if length is None or length > self._max_body:
                self._reject(400 if length is None else 413)
                return
            total = end + 4 + length
            if len(buffer) < total:
                return
            body = bytes(buffer[end + 4 : total])
            del buffer[:total]
            keep_alive = (
                b"connection: close" not in head
                if parts[2] == b"http/1.1"
                else b"connection: keep-alive" in head
            )
            self._bid(body)
            if not keep_alive:
                self._closing = True
        self._flush()

    def eof_received(self) -> bool | None:
        self._closing = True
        self._flush()
        return True  # keep the transport open until the pending answers are written

    # The bid

    def _bid(self, body: bytes) -> None:
        started = time.monotonic()
        slot = _Slot(started)
        self._slots.append(slot)
        bidder = self._bidder
        if self._shedder.shed():
            bidder.metrics.count("shed")
            self._answer(slot, NO_BID, 204)
            return
        try:
            parsed = bidder.parse(body)
            if not isinstance(parsed, BidRequest):
                self._answer(slot, http_answer(*parsed), parsed[0])
                return
            self._decide(slot, parsed)
        except Exception:  # a bug must cost one no-bid, not the exchange's trust
            log.exception("bid failed")
            bidder.metrics.count("errors")
            self._answer(slot, NO_BID, 204)

    def _decide(self, slot: _Slot, bid_request: BidRequest) -> None:
        bidder = self._bidder
        currency = bidder.currency(bid_request)
        if currency is None:
            self._answer(slot, NO_BID, 204)
            return
        digests = bidder.digests(bid_request)
        if digests is None:
            status, body = bidder.respond(bid_request, bidder.device(None, None), currency)
            self._answer(slot, http_answer(status, body), status)
            return
        deadline = bidder.deadline(bid_request, slot.started)
        if deadline <= time.monotonic():
            bidder.metrics.count("timeouts")
            self._answer(slot, NO_BID, 204)
            return

        def on_reply(reply: Reply) -> None:
            if slot.data is not None:
                return  # answered at the deadline already
            try:
                device = bidder.device(digests, bidder.found(reply))
                status, body = bidder.respond(bid_request, device, currency)
            except RedisError as error:
                bidder.metrics.count("redis_errors")
                log.warning("profile lookup failed", extra={"error": str(error)})
                status, body = 204, b""
            except Exception:
                log.exception("bid failed", extra={"request_id": bid_request.id})
                bidder.metrics.count("errors")
                status, body = 204, b""
            self._answer(slot, http_answer(status, body), status)

        if not self._pipe.call(lookup_command(LOOKUP_SHA, digests), on_reply):
            bidder.metrics.count("redis_errors")
            self._answer(slot, NO_BID, 204)
            return
        self._deadlines.add(deadline, self, slot)

    def expire(self, slot: _Slot) -> None:
        """The deadline of ``slot`` came before its lookup's reply: a no-bid."""
        if slot.data is None:
            self._bidder.metrics.count("timeouts")
            self._answer(slot, NO_BID, 204)

    # Answers, in order

    def _answer(self, slot: _Slot, data: bytes, status: int) -> None:
        slot.data = data
        self._bidder.answered(status, slot.started)
        if self._slots and self._slots[0] is slot:
            self._flush()

    def _flush(self) -> None:
        slots, transport = self._slots, self._transport
        if transport is None:
            return
        ready = []
        while slots and slots[0].data is not None:
            slot = slots.popleft()
            ready.append(cast(bytes, slot.data))
            slot.data = _SENT  # the deadline sweep may still hold the slot: not its answer
        if ready:
            transport.write(b"".join(ready))
        if slots:
            return
        if self._closing:
            transport.close()
        elif self._handing_off:
            self._hand_over(transport)

    def _reject(self, status: int) -> None:
        slot = _Slot(time.monotonic())
        self._slots.append(slot)
        self._closing = True
        reason = b"request too large" if status == 413 else b"malformed Content-Length"
        body = b'{"error":"%s"}' % reason
        self._answer(slot, http_answer(status, body, close=True), status)

    def _start_handoff(self) -> None:
        self._handing_off = True
        self._flush()

    def _hand_over(self, transport: asyncio.Transport) -> None:
        """The rest of the connection to aiohttp, with what is buffered of it."""
        self._connections.discard(self)
        protocol = self._handoff()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        pending, self._buffer = bytes(self._buffer), bytearray()
        self._transport = None
        if pending:
            protocol.data_received(pending)

    def close_when_idle(self) -> None:
        """Shutdown: close now if nothing is pending, else once the pending are answered."""
        self._closing = True
        self._flush()


def _content_length(head: bytes) -> int | None:
    """The Content-Length of a lower-cased head (0 when absent); None when malformed."""
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    stop = head.find(b"\r\n", at + 2)
    value = head[at + 17 : stop if stop > 0 else len(head)].strip()
    if not value.isdigit():
        return None
    return int(value)
