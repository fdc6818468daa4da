"""One raw Redis connection that pipelines every command of the current loop tick.

The bid path sends one script call per request. Through redis-py each call costs a
connection checkout, several layers of command packing and a reply parse of its own, about
as much as the rest of the request; here a call is bytes appended to a buffer, written with
all the others of the same tick in one ``write``, and answered through a callback in FIFO
order as hiredis parses the replies. No task or future is made per call.

The connection reconnects by itself (with a short back-off) after Redis goes away; calls
made while it is down fail at once, so the caller answers a no-bid instead of waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import parse_qs, unquote, urlparse

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)

Reply = object  # what hiredis parses: bytes, int, list, None or a ResponseError
Callback = Callable[[Reply], None]
_RECONNECT_S = (0.05, 0.1, 0.2, 0.5, 1.0)  # not Final: a tuple of floats (infra.compiled)


def command(*args: bytes) -> bytes:
    """One command in RESP (arguments are bytes already)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int
    db: int
    username: str | None
    password: str | None
    path: str | None = None  # a Unix socket's, for ``unix://`` URLs (host and port unused)

    @classmethod
    def from_url(cls, url: str) -> Address:
        """``redis://[user:password@]host[:port][/db]`` or, for a Redis on the same host,
        ``unix://[user:password@]/path/to/redis.sock[?db=N]`` as redis-py reads them."""
        parsed = urlparse(url)
        username = unquote(parsed.username) if parsed.username else None
        password = unquote(parsed.password) if parsed.password else None
        if parsed.scheme == "unix":
            if not parsed.path:
                raise ValueError(f"a unix:// URL names the socket's path: {url!r}")
            db = parse_qs(parsed.query).get("db", ["0"])[0]
            if not db.isdigit():
                raise ValueError(f"db must be a number in {url!r}")
            return cls("", 0, int(db), username, password, parsed.path)
        if parsed.scheme not in ("redis", ""):
            raise ValueError(
                f"the pipelined connection takes redis:// or unix:// URLs, not {url!r}"
            )
        path = parsed.path.strip("/")
        return cls(
            parsed.hostname or "127.0.0.1",
            parsed.port or 6379,
            int(path) if path else 0,
            username,
            password,
        )

    def setup(self) -> list[bytes]:
        commands = []
        if self.password:
            user = (self.username.encode(),) if self.username else ()
            commands.append(command(b"AUTH", *user, self.password.encode()))
        if self.db:
            commands.append(command(b"SELECT", str(self.db).encode()))
        return commands


class _Wire(asyncio.Protocol):
    """The socket side: parses replies and hands them to the pipe."""

    def __init__(self, pipe: RedisPipe) -> None:
        self._pipe = pipe
        self._reader = hiredis.Reader(replyError=ResponseError)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        deliver = self._pipe._deliver
        while (reply := reader.gets()) is not False:
            deliver(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._pipe._lost(exc)


class RedisPipe:
    """Commands sent in order and answered in order through callbacks."""

    def __init__(
        self, url: str, *, name: str = "redis-pipe", connect_timeout_s: float = 2.0
    ) -> None:
        self._address = Address.from_url(url)
        self.name = name  # CLIENT SETNAME: operators see it in CLIENT LIST
        self._timeout_s = connect_timeout_s
        self._wire: _Wire | None = None
        self._waiting: deque[Callback] = deque()
        self._outgoing: list[bytes] = []
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of the connection
        self._connecting: asyncio.Task[None] | None = None
        self._failures = 0
        self._closed = False
        self._on_connect: list[bytes] = []  # e.g. SCRIPT LOAD, sent first on every connection
        self.sent = 0  # commands written, for metrics and tests

    @property
    def connected(self) -> bool:
        return self._wire is not None and self._wire.transport is not None

    def on_connect(self, command: bytes) -> None:
        """A command to send first on every (re)connection, its reply ignored."""
        self._on_connect.append(command)

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        address = self._address
        async with asyncio.timeout(self._timeout_s):
            if address.path is not None:
                # Same host: no TCP stack, about 10 us less a round trip on each side.
                _, wire = await loop.create_unix_connection(lambda: _Wire(self), address.path)
            else:
                _, wire = await loop.create_connection(
                    lambda: _Wire(self), address.host, address.port
                )
        setup = [*address.setup(), command(b"CLIENT", b"SETNAME", self.name.encode())]
        setup += self._on_connect
        self._wire = wire
        self._loop = loop  # asyncio.get_running_loop() makes a getpid() system call each time
        self._failures = 0
        for first in setup:
            self.call(first, _expect_ok)

    def call(self, command: bytes, callback: Callback) -> bool:
        """Queue ``command``; ``callback`` gets its reply, or a ``ConnectionError`` if the
        connection is lost first. False (callback never called): not connected now."""
        if self._wire is None:
            self._reconnect_soon()
            return False
        self._outgoing.append(command)
        self._waiting.append(callback)
        self.sent += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop = self._loop
            assert loop is not None  # set with the wire
            loop.call_soon(self._flush)
        return True

    def _flush(self) -> None:
        self._flush_scheduled = False
        wire = self._wire
        if wire is None or wire.transport is None or not self._outgoing:
            return
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        wire.transport.write(data)

    def _deliver(self, reply: Reply) -> None:
        callback = self._waiting.popleft()
        try:
            callback(reply)
        except Exception:  # one caller's bug must not stop the replies of the others
            log.exception("redis pipe callback failed")

    def _lost(self, exc: Exception | None) -> None:
        self._wire = None
        self._outgoing.clear()
        waiting, self._waiting = self._waiting, deque()
        error = RedisConnectionError(f"Redis connection lost: {exc}")
        for callback in waiting:
            try:
                callback(error)
            except Exception:
                log.exception("redis pipe callback failed")
        if not self._closed:
            log.warning("redis pipe lost its connection", extra={"error": str(exc)})
            self._reconnect_soon()

    def _reconnect_soon(self) -> None:
        if self._closed or (self._connecting is not None and not self._connecting.done()):
            return
        self._connecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        while not self._closed and self._wire is None:
            delay = _RECONNECT_S[min(self._failures, len(_RECONNECT_S) - 1)]
            if self._failures:
                await asyncio.sleep(delay)
            started = time.monotonic()
            try:
                await self.connect()
                log.info("redis pipe connected", extra={"after_s": time.monotonic() - started})
            except (OSError, TimeoutError) as error:
                self._failures += 1
                if self._failures in (1, 10, 100):
                    log.warning("redis pipe cannot connect", extra={"error": str(error)})

    async def close(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        wire, self._wire = self._wire, None
        if wire is not None and wire.transport is not None:
            self._flush_remaining(wire)
            wire.transport.close()

    def _flush_remaining(self, wire: _Wire) -> None:
        if self._outgoing and wire.transport is not None:
            wire.transport.write(b"".join(self._outgoing))
            self._outgoing.clear()


def _expect_ok(reply: Reply) -> None:
    if isinstance(reply, Exception):
        log.error("redis pipe setup command failed", extra={"error": str(reply)})
