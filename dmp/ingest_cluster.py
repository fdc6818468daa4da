"""Ingest onto a Redis Cluster: the loader's raw connection, routed slot by slot.

The loader (``dmp.ingest``) writes each chunk as one block of raw ``HSET`` commands down a
connection of its own to the one server (``dmp.resp.RespConnection``), and reads stored
profiles for merging with one ``get_many`` script call. A cluster has no one server: this
connection takes the same calls, splits a block back into commands (hiredis parses the
RESP it was built from) and sends them through redis-py's cluster pipeline, which groups
them by node; the merge reads go through ``ProfileStore.get_many``, which reads slot by
slot on a cluster. The parsing runs in the loader's process (one worker): the per-command
routing, not the parsing, is what costs here.
"""

from __future__ import annotations

from types import TracebackType
from typing import cast

import hiredis
from redis.asyncio import Redis

from dmp.profile_store import ProfileStore
from dmp.resp import RespConnection
from infra.redis_client import is_cluster

_PIPELINE_COMMANDS = 5_000  # commands per cluster pipeline call


def commands_of(data: bytes) -> list[list[bytes]]:
    """The commands of a block of RESP (each a list of its arguments)."""
    reader = hiredis.Reader()
    reader.feed(data)
    commands = []
    while (command := reader.gets()) is not False:
        assert isinstance(command, list)
        commands.append(command)
    return commands


class ClusterConnection:
    """``RespConnection``'s calls (``send``, ``integers``, ``replies``, ``execute``) on a
    cluster client. Replies to ``send`` are checked for errors, then dropped."""

    def __init__(self, redis: Redis, store: ProfileStore) -> None:
        self._redis = redis
        self._store = store
        self._queued: list[list[bytes]] = []

    async def __aenter__(self) -> ClusterConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._queued = []

    def send(self, data: bytes) -> None:
        self._queued.extend(commands_of(data))

    async def _flush(self) -> list[object]:
        queued, self._queued = self._queued, []
        found: list[object] = []
        for at in range(0, len(queued), _PIPELINE_COMMANDS):
            async with self._redis.pipeline(transaction=False) as pipe:
                for name, *args in queued[at : at + _PIPELINE_COMMANDS]:
                    pipe.execute_command(name.decode(), *args)  # redis-py routes by str name
                found += await pipe.execute()
        return found

    async def integers(self, count: int) -> None:
        await self.replies(count)

    async def replies(self, count: int) -> list[object]:
        found = await self._flush()
        for reply in found:
            if isinstance(reply, Exception):
                raise reply
        return found[-count:] if count else []

    async def execute(self, data: bytes, count: int) -> list[object]:
        """The one read the merge sends (``get_many_command``), read slot by slot."""
        commands = commands_of(data)
        if len(commands) == 1 and commands[0][0].upper() == b"EVALSHA":
            args = commands[0]
            number = int(args[2])
            digests = [bytes(d) for d in args[3 + number :]]
            return [await self._store.get_many(digests)]
        self._queued.extend(commands)
        return await self.replies(count)


def cluster_connection(redis: Redis, store: ProfileStore) -> RespConnection | None:
    """The loader's connection on a cluster client (typed as the raw one it stands in
    for); None on a single server, where the raw connection is used."""
    if not is_cluster(redis):
        return None
    return cast(RespConnection, ClusterConnection(redis, store))


def processes_for(redis: Redis, processes: int) -> int:
    """Parsing processes: one on a cluster (the workers' own clients talk to one server)."""
    return 1 if is_cluster(redis) else processes
