"""``python -m bench.cluster``: the bidder on one Redis, on a 1-shard and on a 3-shard Redis
Cluster, the same short closed-loop load each; prints the figures and writes them as JSON.

Each setup: a population stored (``bench.devices``), the bench campaigns, one ``dsp serve``
process (its own core), and this process driving it over keep-alive connections with the
bench's requests (every request names a stored device). Measured in the window: answers
and bids a second, latency percentiles, and the CPU seconds each side spent (the bidder's
process, every redis-server node), so the figures can be scaled to other machines
(``docs/SCALING.md``). Bounded: about 25 s in all, loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import servers
from bench.bidding import request_bodies
from bench.campaigns import campaign_payloads
from bench.client import Load, Tally, http_post, run_load
from bench.devices import TEMPLATES, ProfileMaker, clones, store_devices, templates
from dmp.profile import day_number
from dmp.taxonomy import Taxonomy
from dsp.campaigns.store import save_campaigns
from infra.cluster import LocalCluster
from infra.embedded_redis import EmbeddedRedis
from infra.redis_client import redis_client


@dataclass(frozen=True)
class Setup:
    name: str
    shards: int  # 0: a single Redis (the pipelined fast path); n: a cluster of n masters


@dataclass
class Result:
    setup: str
    shards: int
    replicas: int
    answers_per_s: float
    bids_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    bidder_cpu_s_per_1k: float  # bidder CPU seconds per 1,000 answers
    redis_cpu_us_per_answer: float  # all nodes together
    redis_cpu_share_max: float  # the busiest node's share of the Redis CPU
    cluster_alias_lookups: float


SETUPS = (Setup("single-redis", 0), Setup("cluster-1-shard", 1), Setup("cluster-3-shards", 3))


@contextlib.contextmanager
def redis_for(setup: Setup, replicas: int = 0) -> Iterator[tuple[str, list[int]]]:
    """The URL and the redis-server PIDs of a setup, stopped (by PID) on exit."""
    if setup.shards == 0:
        server = EmbeddedRedis()
        url = server.start()
        try:
            assert server.pid is not None
            yield url, [server.pid]
        finally:
            server.stop()
        return
    cluster = LocalCluster(masters=setup.shards, replicas=replicas)
    url = cluster.start()
    try:
        yield url, [pid for node in cluster.nodes if (pid := node.server.pid) is not None]
    finally:
        cluster.stop()


async def _seed(url: str, devices: int, seed: int) -> list[bytes]:
    taxonomy = Taxonomy.default()
    redis = redis_client(url)
    try:
        maker = ProfileMaker(taxonomy, day_number(time.time()), seed)
        records = clones(templates(TEMPLATES, seed, taxonomy), devices, seed)
        stored = await store_devices(redis, records, maker, sample_every=max(1, devices // 2000))
        await save_campaigns(redis, campaign_payloads(20, seed, taxonomy))
    finally:
        await redis.aclose()
    return [http_post(body) for body in request_bodies(stored.sample, seed)]


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(f"dsp_{name}_total "):
                return float(line.split()[1])
    return 0.0


def measure(
    setup: Setup, *, devices: int, seconds: float, connections: int, seed: int, replicas: int = 0
) -> Result:
    with redis_for(setup, replicas) as (url, redis_pids):
        requests = asyncio.run(_seed(url, devices, seed))
        with servers.bidder_process(url) as port:
            bidder_pids = servers.listening_pids(port)
            time.sleep(0.5)  # the bidder's first refresh: campaigns and budget leases
            start_at = time.monotonic() + 0.5
            warmup_s = 1.0
            load = Load(port, connections, None, 0.0, start_at, warmup_s, seconds, 0.1, 0)
            cpu_at = start_at + warmup_s

            async def cpu_at_window_start() -> tuple[float, list[float]]:
                await asyncio.sleep(max(0.0, cpu_at - time.monotonic()))
                nodes = [servers.cpu_seconds([pid]) for pid in redis_pids]
                return servers.cpu_seconds(bidder_pids), nodes

            async def both() -> tuple[Tally, tuple[float, list[float]]]:
                return await asyncio.gather(run_load(load, requests), cpu_at_window_start())

            tally, (bidder_before, nodes_before) = asyncio.run(both())
            bidder_cpu = servers.cpu_seconds(bidder_pids) - bidder_before
            nodes_cpu = [
                servers.cpu_seconds([pid]) - before
                for pid, before in zip(redis_pids, nodes_before, strict=True)
            ]
            aliases = _metric(port, "cluster_alias_lookups")
    answered = tally.answered
    latencies = sorted(tally.latencies_ms)
    redis_cpu = sum(nodes_cpu)
    return Result(
        setup=setup.name,
        shards=setup.shards,
        replicas=replicas if setup.shards else 0,
        answers_per_s=round(answered / seconds, 1),
        bids_per_s=round(tally.bids / seconds, 1),
        p50_ms=round(statistics.median(latencies), 2) if latencies else 0.0,
        p99_ms=round(latencies[int(0.99 * (len(latencies) - 1))], 2) if latencies else 0.0,
        errors=tally.errors,
        bidder_cpu_s_per_1k=round(1000 * bidder_cpu / max(answered, 1), 4),
        redis_cpu_us_per_answer=round(1e6 * redis_cpu / max(answered, 1), 2),
        redis_cpu_share_max=round(max(nodes_cpu) / redis_cpu, 3) if redis_cpu else 0.0,
        cluster_alias_lookups=aliases,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster",
        description="Bid throughput and CPU on one Redis, a 1-shard and a 3-shard Redis "
        "Cluster (loopback, bounded); prints the figures and writes them as JSON.",
    )
    parser.add_argument("--devices", type=int, default=20_000, help="devices stored (20,000)")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured window (4 s)")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--replicas", type=int, default=0, help="replicas per cluster master (0; CPU counted)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("bench-cluster.json"), help="JSON file written"
    )
    parser.add_argument(
        "--only", choices=[s.name for s in SETUPS], action="append", help="run these setups"
    )
    args = parser.parse_args(argv)
    results = []
    for setup in SETUPS:
        if args.only and setup.name not in args.only:
            continue
        result = measure(
            setup,
            devices=args.devices,
            seconds=args.seconds,
            connections=args.connections,
            seed=args.seed,
            replicas=args.replicas,
        )
        results.append(result)
        print(json.dumps(asdict(result)), flush=True)
    header = f"{'setup':<18}{'answers/s':>10}{'bids/s':>9}{'p50 ms':>8}{'p99 ms':>8}"
    header += f"{'bidder CPU s/1k':>17}{'redis CPU us/answer':>21}{'busiest node':>14}"
    print(header)
    for r in results:
        print(
            f"{r.setup:<18}{r.answers_per_s:>10,.0f}{r.bids_per_s:>9,.0f}{r.p50_ms:>8.2f}"
            f"{r.p99_ms:>8.2f}{r.bidder_cpu_s_per_1k:>17.3f}{r.redis_cpu_us_per_answer:>21.1f}"
            f"{r.redis_cpu_share_max:>14.0%}"
        )
    args.out.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
