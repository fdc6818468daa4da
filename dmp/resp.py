"""Raw RESP: commands built as bytes and one connection that pipelines them.

Bulk loads send tens of thousands of commands a second; redis-py builds each through
several layers of Python and parses each reply alone. Here a command is one bytes join and
replies are parsed by hiredis in bulk.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

import hiredis
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from infra.redis_pipe import command

__all__ = ["RespConnection", "command"]

_READ_SIZE = 1 << 16
# Reply type marks other than the integer's ':' (a negative integer's '-' is taken as an error
# mark too, which only sends it the parsing way).
_NOT_INTEGER = (b"-", b"+", b"$", b"*")


class RespConnection:
    """A connection of its own to the server ``redis`` talks to, for pipelined raw commands."""

    def __init__(self, redis: Redis) -> None:
        self._kwargs = redis.connection_pool.connection_kwargs
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._replies = hiredis.Reader(replyError=ResponseError)

    async def __aenter__(self) -> RespConnection:
        kwargs = self._kwargs
        if kwargs.get("path"):
            self._reader, self._writer = await asyncio.open_unix_connection(kwargs["path"])
        else:
            host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
            self._reader, self._writer = await asyncio.open_connection(host, port)
        setup: list[bytes] = []
        if kwargs.get("password"):
            user = kwargs.get("username")
            auth = (user.encode(),) if user else ()
            setup.append(command(b"AUTH", *auth, str(kwargs["password"]).encode()))
        if kwargs.get("db"):
            setup.append(command(b"SELECT", str(kwargs["db"]).encode()))
        if setup:
            await self.execute(b"".join(setup), len(setup))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass

    def send(self, data: bytes) -> None:
        """Queue commands for sending (``replies`` flushes and reads their answers)."""
        assert self._writer is not None, "use the connection in `async with`"
        self._writer.write(data)

    async def replies(self, count: int) -> list[object]:
        """The next ``count`` replies; raises the first error reply among them."""
        assert self._reader is not None and self._writer is not None
        await self._writer.drain()
        found: list[object] = []
        gets = self._replies.gets
        while len(found) < count:
            reply = gets()
            if reply is False:
                data = await self._reader.read(_READ_SIZE)
                if not data:
                    raise ConnectionError("Redis closed the connection")
                self._replies.feed(data)
                continue
            found.append(reply)
        for reply in found:
            if isinstance(reply, Exception):
                raise reply
        return found

    async def integers(self, count: int) -> None:
        """Read ``count`` integer replies (``HSET``'s) and drop them; raises the first error.

        Counted in the raw bytes while they hold integers only, not parsed one by one: a
        bulk load reads hundreds of thousands of them.
        """
        assert self._reader is not None and self._writer is not None
        await self._writer.drain()
        parser = self._replies
        while count and parser.has_data():  # replies read earlier, not yet taken
            reply = parser.gets()
            if reply is False:
                await self.replies(count)  # a reply cut in two: finish it the parsing way
                return
            if isinstance(reply, Exception):
                raise reply
            count -= 1
        buffer = b""
        while count:
            data = await self._reader.read(_READ_SIZE)
            if not data:
                raise ConnectionError("Redis closed the connection")
            buffer += data
            if any(mark in buffer for mark in _NOT_INTEGER):
                parser.feed(buffer)
                await self.replies(count)
                return
            complete = buffer.count(b"\n")  # an integer reply is ":N\r\n"
            if complete <= count:
                count -= complete
                buffer = buffer[buffer.rfind(b"\n") + 1 :]
            else:
                buffer = buffer.split(b"\n", count)[-1]
                count = 0
        if buffer:
            parser.feed(buffer)

    async def execute(self, data: bytes, count: int) -> list[object]:
        self.send(data)
        return await self.replies(count)
