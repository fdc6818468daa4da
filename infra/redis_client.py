"""The one place a Redis client is made from a URL: a single server or a Redis Cluster.

``redis://`` and ``rediss://`` (and ``unix://``) give redis-py's asyncio ``Redis``;
``redis+cluster://host:port`` and ``rediss+cluster://host:port`` give its asyncio
``RedisCluster``, which finds the other nodes from the one named, routes every command by
its key's slot and follows MOVED and ASK redirections itself (none of our code does).

The rest of the code is written against ``Redis``'s interface; the cluster client offers
the same commands for keys of one slot, which is all the platform sends on a cluster (see
``infra.keys``). Code that must act differently on a cluster (scripts whose keys span
slots, the bidder's raw pipelined connection) asks ``is_cluster``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import urlparse, urlunparse

import hiredis
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.commands.core import AsyncScript

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://``, ``rediss+cluster://``)."""
    return urlparse(url).scheme in CLUSTER_SCHEMES


def plain_url(url: str) -> str:
    """A cluster URL with the scheme redis-py's ``RedisCluster.from_url`` takes."""
    parsed = urlparse(url)
    scheme = CLUSTER_SCHEMES.get(parsed.scheme)
    if scheme is None:
        return url
    # A cluster has one database: a path (``/0``) would be refused by the cluster client.
    return urlunparse(parsed._replace(scheme=scheme, path=""))


def redis_client(url: str, **options: Any) -> Redis:
    """A client for ``url``: ``RedisCluster`` for a cluster URL, else ``Redis``.

    ``options`` go to the client (``socket_connect_timeout``, ``max_connections``...).
    The cluster client is returned typed as ``Redis``: the platform only uses the commands
    both share, with keys hash-tagged so that one call touches one slot.
    """
    if is_cluster_url(url):
        options.pop("health_check_interval", None)  # per-node pools check on their own
        # Failover: when a master goes, the client re-reads the slot table after a
        # connection error and finds the promoted replica (redis-py's own retry policy).
        cluster = RedisCluster.from_url(plain_url(url), **options)
        return cast(Redis, cluster)
    return Redis.from_url(url, **options)


def is_cluster(client: object) -> bool:
    """Whether ``client`` is a cluster client (keys of one call must share a slot)."""
    return isinstance(client, RedisCluster)


async def queue_script(
    pipe: Any, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]
) -> None:
    """Queue ``script`` into ``pipe``. redis-py refuses script objects in a cluster pipeline,
    so there the script goes as ``EVAL`` with its text (off the bid path: the few bytes more
    do not matter, and a replica promoted without the script cached still runs it)."""
    if isinstance(pipe, ClusterPipeline):
        pipe.execute_command("EVAL", script.script, len(keys), *keys, *args)
        return
    await script(keys=keys, args=args, client=pipe)


_HIREDIS_TYPES = frozenset({bytes, str, int})


def _spaced(first: object) -> bool:
    # redis-py splits a first argument such as "CONFIG GET" in two; hiredis would not.
    if isinstance(first, str):
        return " " in first
    return isinstance(first, bytes) and b" " in first


class _PackedByHiredis:
    """Commands packed by hiredis (C) when every argument is bytes, str or int: the bytes
    redis-py's own packer makes for those types (a test holds them equal). redis-py 8's
    asyncio connection packs in Python, about 1.5 µs an argument; the bidder's refresher
    sends an MGET of two keys a campaign and its lease scripts every quarter second, and at
    a thousand campaigns that packing stalled the event loop for milliseconds each time."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if args and all(type(arg) in _HIREDIS_TYPES for arg in args) and not _spaced(args[0]):
            return [hiredis.pack_command(args)]
        return super().pack_command(*args)  # type: ignore[misc,no-any-return]


class HiredisPackedConnection(_PackedByHiredis, Connection):
    """A TCP connection whose commands hiredis packs."""


class HiredisPackedUnixConnection(_PackedByHiredis, UnixDomainSocketConnection):
    """A Unix-socket connection whose commands hiredis packs."""


def packed_by_hiredis(url: str) -> dict[str, Any]:
    """``connection_class`` for a pool of ``url`` (``redis://`` or ``unix://``) whose commands
    hiredis packs; {} for TLS, left to redis-py's own connection."""
    scheme = urlparse(url).scheme
    if scheme == "redis":
        return {"connection_class": HiredisPackedConnection}
    if scheme == "unix":
        return {"connection_class": HiredisPackedUnixConnection}
    return {}
