"""The bid lookups on a Redis Cluster, in the shape of the pipelined connection.

On a single Redis the bid path sends each request's lookup script down one raw pipelined
connection (``infra.redis_pipe.RedisPipe``). A cluster spreads a request's keys over the
slot of each candidate digest, so there the lookups go through redis-py's cluster client
(``dmp.profile_store.ClusterLookup``), which routes each call to its slot's node and
follows MOVED and ASK itself. This class takes the same calls as the pipe (the raw
``lookup_command`` bytes and a callback given the script's reply or an error), so the bid
front and the handler run unchanged on both.
"""

from __future__ import annotations

import asyncio
import logging

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from dmp.profile_store import LOOKUP_SHA, ClusterLookup
from dsp.metrics import Metrics
from infra.redis_pipe import Callback, RedisPipe

log = logging.getLogger(__name__)


def lookup_digests(command: bytes) -> list[bytes] | None:
    """The digests of a ``lookup_command`` (``EVALSHA sha n bucket... digest...``); None for
    any other command (``LOAD_LOOKUP``, which a cluster has no use for)."""
    reader = hiredis.Reader()
    reader.feed(command)
    args = reader.gets()
    if not isinstance(args, list) or len(args) < 3 or args[:2] != [b"EVALSHA", LOOKUP_SHA]:
        return None
    count = int(args[2])
    return [bytes(digest) for digest in args[3 + count :]]


class ClusterLookups(RedisPipe):
    """``RedisPipe.call`` over a cluster: each lookup a task, its reply to the callback."""

    def __init__(self, lookup: ClusterLookup, metrics: Metrics | None = None) -> None:
        # Not a connection: none of the pipe's socket state is set up.
        self.name = "cluster-lookups"
        self._lookup = lookup
        self._metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._hops_counted = 0
        self.sent = 0

    @property
    def connected(self) -> bool:
        return not self._closed

    def on_connect(self, command: bytes) -> None:
        pass  # the cluster client loads scripts where they are missing by itself

    async def connect(self) -> None:
        await self._lookup.warm_up()

    def call(self, command: bytes, callback: Callback) -> bool:
        if self._closed:
            return False
        digests = lookup_digests(command)
        if digests is None:
            return True  # LOAD_LOOKUP after a NOSCRIPT: nothing to do; no reply expected
        self.sent += 1
        task = asyncio.get_running_loop().create_task(self._run(digests, callback))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(self, digests: list[bytes], callback: Callback) -> None:
        try:
            reply: object = await self._lookup.reply(digests)
        except (RedisError, OSError) as error:
            reply = error
        except AttributeError as error:  # redis-py 8.1: a connection torn down mid-send
            reply = RedisConnectionError(f"cluster connection lost: {error}")
        if self._metrics is not None:
            self._metrics.count("cluster_lookups")
            hops = self._lookup.alias_hops
            if hops > self._hops_counted:  # second round trips to follow an alias
                self._metrics.count("cluster_alias_lookups", hops - self._hops_counted)
                self._hops_counted = hops
        try:
            callback(reply)
        except Exception:  # one caller's bug must not stop the others
            log.exception("cluster lookup callback failed")

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
