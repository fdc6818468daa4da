"""``python -m loadtests.run``: a bounded locust run against a freshly seeded bidder.

Starts an embedded Redis, stores a DMP population, campaigns and an advertiser with an API
token, starts ``dsp serve`` on a free loopback port, runs locust headless (one process, or
a master and ``--workers`` worker processes) for ``--seconds``, then prints requests/s,
p50/p95/p99 and failures per scenario and in total, as a table and as one JSON line (last).
Everything it starts it stops, by PID; everything listens on 127.0.0.1 only.
Exit status 0 when requests were answered and none failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.servers import bidder_process
from infra.embedded_redis import EmbeddedRedis, die_with_parent, free_port
from infra.logs import setup_logging
from infra.processes import stop_process
from loadtests.report import table
from loadtests.seed import Seeded, seed_bidder

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
_MARGIN_S = 60  # beyond the run itself: locust's start, the workers' arrival, its shutdown
_TAIL = 3000  # characters of a locust log shown when it goes wrong


@dataclass(frozen=True, slots=True)
class Options:
    users: int = 20
    spawn_rate: float = 20.0
    seconds: int = 20
    devices: int = 20_000
    campaigns: int = 1000
    seed: int = 1
    workers: int = 0  # locust worker processes; 0: one locust process, no master
    bidder_workers: int = 1
    corpus_share: float = 0.1
    api_users: int = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.run",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    defaults = Options()
    add("--users", type=int, default=defaults.users, help="locust users")
    add("--spawn-rate", type=float, default=defaults.spawn_rate, help="users started per second")
    add("--seconds", type=int, default=defaults.seconds, help="length of the run")
    add("--devices", type=int, default=defaults.devices, help="DMP population stored")
    add("--campaigns", type=int, default=defaults.campaigns, help="campaigns stored")
    add("--seed", type=int, default=defaults.seed, help="seed of population and campaigns")
    add(
        "--workers",
        type=int,
        default=defaults.workers,
        help="distributed locust: a master and this many worker processes (default: one process)",
    )
    add("--bidder-workers", type=int, default=defaults.bidder_workers, help="dsp serve --workers")
    add(
        "--corpus-share",
        type=float,
        default=defaults.corpus_share,
        help="share of exchange requests taken from the real corpus (openrtb/valid)",
    )
    add("--api-users", type=int, default=defaults.api_users, help="advertisers on the API")
    add("--json", type=Path, metavar="FILE", help="also write the figures' JSON here")
    return parser


def _locust_commands(options: Options, host: str, work: Path) -> tuple[list[str], list[list[str]]]:
    """The command of the headless locust (master) and those of its workers."""
    common = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", host]
    common += ["--bodies", str(work / "bodies.jsonl"), "--corpus-share", str(options.corpus_share)]
    common += ["--api-users", str(options.api_users), "--loglevel", "WARNING"]
    headless = ["--headless", "-u", str(options.users), "-r", str(options.spawn_rate)]
    headless += ["-t", f"{options.seconds}s", "--stop-timeout", "2", "--only-summary"]
    headless += ["--summary-json", str(work / "summary.json")]
    if options.workers <= 0:
        return common + headless, []
    port = str(free_port())
    master = common + headless + ["--master", "--master-bind-host", "127.0.0.1"]
    master += ["--master-bind-port", port, "--expect-workers", str(options.workers)]
    master += ["--expect-workers-max-wait", str(_MARGIN_S)]
    worker = common + ["--worker", "--master-host", "127.0.0.1", "--master-port", port]
    return master, [worker] * options.workers


@contextlib.contextmanager
def _process(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` in the repository root, its output in ``log``; stopped on the way out."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )  # fmt: skip
    try:
        yield process
    finally:
        stop_process(process, timeout_s=10)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-_TAIL:] if log.exists() else ""


def run_locust(options: Options, host: str, token: str, work: Path) -> dict[str, Any]:
    """Locust's run, bounded in time; its per-scenario summary."""
    master_command, worker_commands = _locust_commands(options, host, work)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "LOADTEST_API_TOKEN": token}
    limit = options.seconds + options.users / max(options.spawn_rate, 0.1) + _MARGIN_S
    master_log = work / "locust.log"
    with contextlib.ExitStack() as stack:
        for index, command in enumerate(worker_commands):
            stack.enter_context(_process(command, env, work / f"locust-worker-{index}.log"))
        master = stack.enter_context(_process(master_command, env, master_log))
        try:
            code = master.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"locust still running after {limit:.0f} s") from None
    summary_path = work / "summary.json"
    if code not in (0, 1) or not summary_path.exists():  # 1: some requests failed
        raise RuntimeError(f"locust exited with {code}:\n{_tail(master_log)}")
    summary: dict[str, Any] = orjson.loads(summary_path.read_bytes())
    return summary


def bidder_counters(port: int) -> dict[str, float]:
    """The ``dsp_*_total`` counters of (one process of) the bidder."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    counters = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name.startswith("dsp_") and name.endswith("_total"):
            counters[name.removeprefix("dsp_").removesuffix("_total")] = float(value)
    return counters


def _difference(after: dict[str, float], before: dict[str, float]) -> dict[str, int]:
    return {name: int(value - before.get(name, 0)) for name, value in sorted(after.items())}


def _describe(options: Options, port: int) -> str:
    mode = (
        f"distributed: a master and {options.workers} workers"
        if options.workers > 0
        else "one process"
    )
    return (
        f"loadtest: dsp serve on 127.0.0.1:{port} ({options.bidder_workers} worker(s)); "
        f"locust {options.users} users (spawn {options.spawn_rate:g}/s) for "
        f"{options.seconds} s, {mode}"
    )


def _bidder_line(counters: dict[str, int]) -> str:
    count = counters.get
    return (
        f"bidder: {count('bid_requests', 0):,} bid requests parsed, {count('shed', 0):,} shed "
        f"unread, {count('no_bids', 0):,} no-bids, {count('timeouts', 0):,} timed out; "
        f"{count('wins', 0):,} wins, {count('impressions', 0):,} impressions, "
        f"{count('clicks', 0):,} clicks"
    )


def load_test(options: Options) -> dict[str, Any]:
    """Seed, serve, load, report; every process started here is stopped before returning."""
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp, EmbeddedRedis() as url:
        work = Path(tmp)
        started = time.perf_counter()
        seeded: Seeded = seed_bidder(
            url, options.devices, options.campaigns, options.seed, work / "bodies.jsonl"
        )
        print(
            f"loadtest: {seeded.devices:,} devices, {seeded.campaigns:,} campaigns and an "
            f"advertiser stored, {seeded.templates:,} request templates, in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        with bidder_process(url, options.bidder_workers) as port:
            print(_describe(options, port), flush=True)
            before = bidder_counters(port)
            summary = run_locust(options, f"http://127.0.0.1:{port}", seeded.token, work)
            counters = _difference(bidder_counters(port), before)
    return {
        "options": asdict(options),
        "seeded": {"devices": seeded.devices, "campaigns": seeded.campaigns},
        **summary,
        # With several bidder processes, /metrics answers for whichever one took the call.
        "bidder": counters if options.bidder_workers == 1 else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging("WARNING")
    # The bidder it starts (inheriting the environment) listens on loopback and signs its
    # tracking links with its own loopback address, whatever the shell says.
    os.environ["DSP_HOST"] = "127.0.0.1"
    os.environ.pop("DSP_PUBLIC_URL", None)
    options = Options(
        users=args.users, spawn_rate=args.spawn_rate, seconds=args.seconds,
        devices=args.devices, campaigns=args.campaigns, seed=args.seed, workers=args.workers,
        bidder_workers=args.bidder_workers, corpus_share=args.corpus_share,
        api_users=args.api_users,
    )  # fmt: skip
    try:
        result = load_test(options)
    except RuntimeError as error:
        print(f"loadtest: {error}", file=sys.stderr)
        return 2
    print(table(result))
    if result["bidder"] is not None:
        print(_bidder_line(result["bidder"]))
    encoded = orjson.dumps(result)
    if args.json is not None:
        args.json.write_bytes(encoded + b"\n")
    print(encoded.decode())
    total = result["total"]
    return 0 if total["requests"] > 0 and total["failures"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
