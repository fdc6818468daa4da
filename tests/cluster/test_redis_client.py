"""One factory for Redis clients: a cluster URL gives redis-py's cluster client."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from dmp.profile_store import lookup_command
from dsp.bidder.cluster_lookups import lookup_digests
from infra.redis_client import is_cluster, is_cluster_url, plain_url, redis_client


async def test_cluster_urls_give_the_cluster_client_and_others_the_plain_one() -> None:
    assert is_cluster_url("redis+cluster://127.0.0.1:7000")
    assert is_cluster_url("rediss+cluster://cache.example:6380")
    assert not is_cluster_url("redis://127.0.0.1:6379/0")
    assert (
        plain_url("rediss+cluster://u:p@cache.example:6380/0") == "rediss://u:p@cache.example:6380"
    )
    cluster = redis_client("redis+cluster://127.0.0.1:7000")  # no connection until used
    single = redis_client("redis://127.0.0.1:6379/0")
    assert isinstance(cluster, RedisCluster) and is_cluster(cluster)
    assert isinstance(single, Redis) and not is_cluster(single)
    await cluster.aclose()
    await single.aclose()


def test_the_cluster_lookups_read_the_digests_back_from_the_pipes_command() -> None:
    digests = [bytes(range(8)), b"\xff" * 8, b"\r\n*3\r\n$4"]
    assert lookup_digests(lookup_command(digests)) == digests
    assert lookup_digests(b"*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n$1\r\nx\r\n") is None
