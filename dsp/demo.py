"""``dsp demo``: the main job end to end on an embedded Redis, then everything is stopped.

Seeds a DMP population through the ingest path, stores sample campaigns, starts a bidder
process, lets the ADX simulator run auctions against it, and prints the CTR report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import uvloop
from redis.asyncio import Redis

from adx_mock.population import generate_population
from adx_mock.runner import RunConfig, run
from adx_mock.summary import Summary
from dmp.ingest import ingest_file
from dmp.taxonomy import Taxonomy
from dsp.campaigns.store import save_campaigns
from dsp.demo_campaigns import demo_campaigns
from dsp.reporting.report import build_report, format_report
from infra.embedded_redis import EmbeddedRedis, die_with_parent, free_port
from infra.processes import stop_process


@dataclass(frozen=True, slots=True)
class DemoConfig:
    devices: int = 100_000
    auctions: int = 20_000
    qps: float = 300.0
    seed: int = 7
    progress: bool = True


def _say(message: str) -> None:
    print(message, flush=True)


@contextmanager
def bidder_process(redis_url: str) -> Iterator[tuple[str, int]]:
    """A ``dsp serve`` child on a free port, as (base URL, pid); terminated (gracefully) when
    the block ends."""
    port = free_port()
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "dsp.cli", "serve", "--port", str(port)]
    child = subprocess.Popen(
        [*command, "--redis-url", redis_url], env=env, preexec_fn=die_with_parent
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, child)
        yield base, child.pid
    finally:
        stop_process(child)


def _wait_healthy(base: str, child: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"the bidder exited with code {child.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the bidder did not become healthy")


async def _seed(url: str, config: DemoConfig, workdir: Path) -> list[dict[str, object]]:
    taxonomy = Taxonomy.default()
    population = list(generate_population(config.devices, config.seed, taxonomy))
    path = workdir / "devices.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(record) for record in population) + b"\n")
    redis = Redis.from_url(url)
    try:
        report = await ingest_file(redis, path, taxonomy=taxonomy, progress=config.progress)
        loaded, seconds = f"{report.loaded:,}", f"{report.seconds:.1f}"
        _say(f"  loaded {loaded} devices ({report.rejected} rejected) in {seconds} s")
        campaigns = await save_campaigns(redis, demo_campaigns())
        _say(f"  stored {len(campaigns)} campaigns")
    finally:
        await redis.aclose()
    return population


async def _report(url: str) -> str:
    redis = Redis.from_url(url)
    try:
        return format_report(await build_report(redis, ("campaign",)), ("campaign",))
    finally:
        await redis.aclose()


def _print_summary(summary: Summary) -> None:
    data = summary.to_dict()
    fields = ("requests", "bids", "no_bids", "timeouts", "errors", "wins", "impressions", "clicks")
    _say("  " + ", ".join(f"{name} {data[name]:,}" for name in fields))
    _say(f"  latency ms {data['latency_ms']}, {data['achieved_qps']:.0f} auctions/s")


def run_demo(config: DemoConfig) -> int:
    started = time.monotonic()
    redis_server = EmbeddedRedis()
    with redis_server as url, tempfile.TemporaryDirectory(prefix="dsp-demo-") as tmp:
        started_pids = [redis_server.pid]
        _say(f"1/4 embedded Redis at {url}; seeding {config.devices:,} devices")
        population = uvloop.run(_seed(url, config, Path(tmp)))
        _say("2/4 starting the bidder")
        with bidder_process(url) as (base, bidder_pid):
            started_pids.append(bidder_pid)
            _say(f"3/4 running {config.auctions:,} auctions at {config.qps:.0f}/s against {base}")
            run_config = RunConfig(
                dsp_urls=[f"{base}/openrtb2/bid"],
                qps=config.qps,
                max_requests=config.auctions,
                duration_s=None,
                seed=config.seed,
                population=population,
            )
            summary = uvloop.run(run(run_config, progress=config.progress))
            _print_summary(summary)
            time.sleep(0.3)  # let the last notices land before reading the counters
        _say("4/4 CTR report by campaign")
        _say(uvloop.run(_report(url)))
    pids = " ".join(str(pid) for pid in started_pids)
    _say(f"done in {time.monotonic() - started:.1f} s; stopped everything started: pids {pids}")
    return 0
