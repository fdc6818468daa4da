"""One load-generator worker: raw asyncio connections speaking HTTP/1.1 keep-alive.

No HTTP client library: requests are pre-encoded bytes, and an answer is parsed only as
far as its status and ``Content-Length`` (chunked answers are not supported).

Closed loop: each connection sends its next request as soon as an answer arrives.
Open loop: requests fall due at a fixed rate whatever the server does; latency runs from
the moment a request fell due, so waiting for a free connection counts (no coordinated
omission), and a request still unsent at its deadline is dropped, as an exchange gives up
on a bidder after ``tmax``. The generator's own lateness (its timer wakes in whole
milliseconds, and on a shared machine its process waits for a core) is tallied apart: each
answer also has its latency from the moment the generator issued it, which still counts
any wait for a free connection.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

OK_STATUSES = frozenset({200, 204})
_HEAD_END = b"\r\n\r\n"
_LENGTH = b"\r\ncontent-length:"
_TICK_S = 0.001


def http_post(body: bytes, path: str = "/openrtb2/bid") -> bytes:
    """A complete HTTP/1.1 POST of a JSON body, ready to write to a socket."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass(frozen=True, slots=True)
class Load:
    """What one worker does in one run; times are ``time.monotonic()``, shared by processes."""

    port: int
    connections: int
    rate: float | None  # requests per second of this worker; None: closed loop
    phase: float  # this worker's offset into the shared schedule, in intervals
    start_at: float
    warmup_s: float
    duration_s: float
    deadline_s: float  # later answers are late; unsent requests this old are dropped
    offset: int  # where this worker starts in the list of requests


@dataclass(slots=True)
class Tally:
    """Requests that fell due (open loop) or were sent (closed loop) in the measured window."""

    due: int = 0
    answered: int = 0
    ok: int = 0
    bids: int = 0
    on_time: int = 0
    errors: int = 0
    dropped: int = 0  # open loop: never sent, no connection was free before the deadline
    latencies_ms: list[float] = field(default_factory=list)  # from when each fell due
    issued_ms: list[float] = field(default_factory=list)  # from when the generator issued it


def _head(buffer: bytearray, end: int) -> tuple[int, int]:
    head = bytes(buffer[:end]).lower()
    status = int(head[9:12])
    at = head.find(_LENGTH)
    if at < 0:
        return status, 0
    stop = head.find(b"\r\n", at + 2)
    return status, int(head[at + len(_LENGTH) : stop if stop > 0 else len(head)])


class _Connection(asyncio.Protocol):
    __slots__ = ("run", "transport", "buffer", "need", "status", "due", "issued", "alive")

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.need = -1  # bytes of the answer being read; -1 while its head is incomplete
        self.status = 0
        self.due: float | None = None  # when the request in flight fell due
        self.issued = 0.0  # when the generator got to it: due, plus the generator's lateness
        self.alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, only alike
        self.transport = cast(asyncio.Transport, transport)

    def send(self, due: float, issued: float) -> None:
        assert self.transport is not None
        self.due = due
        self.issued = issued
        self.transport.write(self.run.payload())

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while True:
            if self.need < 0:
                end = buffer.find(_HEAD_END)
                if end < 0:
                    return
                self.status, length = _head(buffer, end)
                self.need = end + 4 + length
            if len(buffer) < self.need:
                return
            del buffer[: self.need]
            self.need = -1
            due, self.due = self.due, None
            if due is not None:
                self.run.answered(self, due, self.issued, self.status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        due, self.due = self.due, None
        self.run.lost(due)


class _Run:
    """The state of one worker's run: idle connections, backlog and tally."""

    def __init__(self, load: Load, requests: Sequence[bytes]) -> None:
        self.load = load
        self.requests = requests
        self.next = load.offset
        self.window = (
            load.start_at + load.warmup_s,
            load.start_at + load.warmup_s + load.duration_s,
        )
        self.tally = Tally()
        self.idle: list[_Connection] = []
        self.backlog: deque[tuple[float, float]] = deque()  # (due, issued)
        self.closed_loop = load.rate is None

    def payload(self) -> bytes:
        request = self.requests[self.next % len(self.requests)]
        self.next += 1
        return request

    def counts(self, due: float) -> bool:
        return self.window[0] <= due < self.window[1]

    def start(self, connection: _Connection, due: float) -> None:
        if self.closed_loop and self.counts(due):
            self.tally.due += 1
        connection.send(due, due)

    def dispatch(self, due: float) -> None:
        """Open loop: a request falls due now."""
        if self.counts(due):
            self.tally.due += 1
        issued = time.monotonic()
        while self.idle:
            connection = self.idle.pop()
            if connection.alive:  # one the server closed is left behind
                connection.send(due, issued)
                return
        self.backlog.append((due, issued))

    def answered(self, connection: _Connection, due: float, issued: float, status: int) -> None:
        now = time.monotonic()
        if self.counts(due):
            self._record(now - due, now - issued, status)
        if self.closed_loop:
            if now < self.window[1]:
                self.start(connection, now)
            else:
                self.idle.append(connection)
            return
        while self.backlog:
            waiting, issued = self.backlog.popleft()
            if now - waiting <= self.load.deadline_s:
                connection.send(waiting, issued)
                return
            self.drop(waiting)
        self.idle.append(connection)

    def drop(self, due: float) -> None:
        if self.counts(due):
            self.tally.dropped += 1

    def _record(self, seconds: float, since_issued: float, status: int) -> None:
        tally = self.tally
        tally.answered += 1
        tally.latencies_ms.append(seconds * 1000)
        tally.issued_ms.append(since_issued * 1000)
        if status in OK_STATUSES:
            tally.ok += 1
            tally.bids += status == 200
            tally.on_time += seconds <= self.load.deadline_s
        else:
            tally.errors += 1

    def lost(self, due: float | None) -> None:
        if due is not None and self.counts(due):
            self.tally.errors += 1


async def _open_loop(run: _Run) -> None:
    load = run.load
    assert load.rate is not None
    interval, end, k = 1 / load.rate, run.window[1], 0
    while True:
        due = load.start_at + (k + load.phase) * interval
        if due >= end:
            return
        now = time.monotonic()
        if due > now:
            # Never shorter than a tick: uvloop rounds timers to milliseconds, and a sleep
            # rounded to zero would spin, stealing the CPU the server under test needs.
            # Requests are dispatched in batches; each one's latency still counts from its due time.
            await asyncio.sleep(max(due - now, _TICK_S))
            continue
        run.dispatch(due)
        k += 1


async def _drain(run: _Run, connections: list[_Connection]) -> None:
    """Wait for answers in flight, for as long as one may still count."""
    limit = time.monotonic() + run.load.deadline_s + 1
    while time.monotonic() < limit:
        if all(c.due is None for c in connections if c.alive) and not run.backlog:
            return
        await asyncio.sleep(0.01)


async def run_load(load: Load, requests: Sequence[bytes]) -> Tally:
    """Connect, wait for the shared start, load the server, drain, close; the window's tally."""
    loop = asyncio.get_running_loop()
    run = _Run(load, requests)
    connections: list[_Connection] = []
    for _ in range(load.connections):
        _, protocol = await loop.create_connection(lambda: _Connection(run), "127.0.0.1", load.port)
        connections.append(protocol)
    await asyncio.sleep(max(0.0, load.start_at - time.monotonic()))
    if run.closed_loop:
        for connection in connections:
            run.start(connection, time.monotonic())
        await asyncio.sleep(max(0.0, run.window[1] - time.monotonic()))
    else:
        run.idle.extend(connections)
        await _open_loop(run)
    await _drain(run, connections)
    while run.backlog:
        run.drop(run.backlog.popleft()[0])
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()
    await asyncio.sleep(0)
    return run.tally
