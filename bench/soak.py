"""``python -m bench.soak`` (``make soak``): the bidder at half its maximum throughput for a
long time, its memory sampled and its latency measured minute by minute.

The bidder runs as deployed (``dsp serve``, one worker) over an embedded Redis holding a
DMP population and active campaigns. Its maximum throughput is measured first (a short
closed-loop run); then an open-loop load at half that rate runs for ``--seconds`` (30
minutes by default, ``SOAK_SECONDS`` for a short run), one load run per minute. The RSS of
the bidder process is sampled every few seconds. Figures are printed per minute and written
as JSON: p50/p99 per minute, throughput, late and failed answers, RSS, and the memory growth
from the end of the first minute (warm caches) to the last minute.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson
from tqdm import tqdm

from bench import bidding, servers
from bench.client import http_post
from bench.loadgen import LoadGenerator, Outcome
from infra.embedded_redis import EmbeddedRedis, die_with_parent, free_port
from infra.logs import setup_logging
from infra.processes import stop_process

DEFAULT_SECONDS = 1800
TMAX_S = bidding.TMAX_S


def rss_bytes(pid: int) -> int:
    """Resident set size of a live process (Linux ``/proc``); 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
            return int(answer.status) == 200
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class Bidder:
    """A ``dsp serve`` child process (one worker: the child itself is the bidder)."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None


@contextmanager
def bidder(
    redis_url: str, *, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[Bidder]:
    """``dsp serve`` on a free port against ``redis_url``; yields once it answers /healthz.

    Its error logs go to ``log`` when given (else to our stderr)."""
    port = free_port()
    command = [sys.executable, "-m", "dsp.cli", "serve", "--port", str(port)]
    command += ["--redis-url", redis_url]
    environ = {**os.environ, "LOG_LEVEL": "ERROR", **(env or {})}
    with contextlib.ExitStack() as files:
        stderr = files.enter_context(log.open("ab")) if log is not None else None
        child = subprocess.Popen(command, env=environ, stderr=stderr, preexec_fn=die_with_parent)
    try:
        deadline = time.monotonic() + 60
        while not (servers.listeners(port) >= 1 and _healthy(port)):
            if child.poll() is not None:
                raise RuntimeError(f"the bidder exited with {child.returncode} before listening")
            if time.monotonic() > deadline:
                raise RuntimeError("the bidder did not become healthy in 60 s")
            time.sleep(0.1)
        yield Bidder(port, child)
    finally:
        stop_process(child)


class MemorySampler:
    """RSS of one process every ``every_s`` seconds, in a thread, until stopped."""

    def __init__(self, pid: int, every_s: float) -> None:
        self.pid, self.every_s = pid, every_s
        self.samples: list[tuple[float, int]] = []  # (monotonic time, bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), rss_bytes(self.pid)))
            self._stop.wait(self.every_s)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> list[int]:
        return [rss for at, rss in self.samples if start <= at < end and rss]


@dataclass(frozen=True, slots=True)
class Minute:
    minute: int
    seconds: float
    rate: float
    answered_rps: float
    p50_ms: float
    p99_ms: float
    late_fraction: float
    errors: int  # answers other than 200/204, and connections lost with a request in flight
    dropped: int
    fill: float
    rss_mb: float  # median of the minute's samples
    load_avg: float  # the machine's 1-minute load average at the minute's end (contention)


@dataclass(slots=True)
class SoakResult:
    max_rps: float
    rate: float
    seconds: float
    devices: int
    campaigns: int
    minutes: list[Minute] = field(default_factory=list)
    rss_start_mb: float = 0.0  # first sample under load
    rss_warm_mb: float = 0.0  # median of the first minute
    rss_end_mb: float = 0.0  # median of the last minute
    memory_growth_pct: float = 0.0  # warm -> end
    p99_median_ms: float = 0.0
    p99_max_ms: float = 0.0
    errors: int = 0
    bidder_alive: bool = True

    def finish(self, sampler: MemorySampler) -> None:
        mb = 1024 * 1024
        first = next((rss for _, rss in sampler.samples if rss), 0)
        self.rss_start_mb = first / mb
        if self.minutes:
            self.rss_warm_mb = self.minutes[0].rss_mb
            self.rss_end_mb = self.minutes[-1].rss_mb
            if self.rss_warm_mb:
                self.memory_growth_pct = 100 * (self.rss_end_mb / self.rss_warm_mb - 1)
            p99s = [m.p99_ms for m in self.minutes]
            self.p99_median_ms = statistics.median(p99s)
            self.p99_max_ms = max(p99s)
            self.errors = sum(m.errors for m in self.minutes)


def _minute(index: int, outcome: Outcome, rate: float, rss: list[int]) -> Minute:
    return Minute(
        minute=index,
        seconds=outcome.seconds,
        rate=rate,
        answered_rps=outcome.rps,
        p50_ms=outcome.percentile_ms(50),
        p99_ms=outcome.percentile_ms(99),
        late_fraction=outcome.late_fraction,
        errors=outcome.errors,
        dropped=outcome.dropped,
        fill=outcome.bids / outcome.ok if outcome.ok else 0.0,
        rss_mb=statistics.median(rss) / (1024 * 1024) if rss else 0.0,
        load_avg=os.getloadavg()[0],
    )


@dataclass(frozen=True, slots=True)
class SoakOptions:
    seconds: float = DEFAULT_SECONDS
    minute_s: float = 60.0
    devices: int = 100_000
    campaigns: int = 300
    bodies: int = 2000
    connections: int = 64
    generator_workers: int = 1
    max_probe_s: float = 5.0
    sample_every_s: float = 2.0
    seed: int = 1


_DEFAULTS = SoakOptions()


def _say(text: str) -> None:
    tqdm.write(text, file=sys.stderr)


def _soak(
    generator: LoadGenerator, process: Bidder, options: SoakOptions, result: SoakResult
) -> None:
    with MemorySampler(process.pid, options.sample_every_s) as sampler:
        remaining, index = options.seconds, 0
        with tqdm(total=round(options.seconds), unit="s", desc="soak", file=sys.stderr) as bar:
            while remaining > 0.5 and process.alive():
                length = min(options.minute_s, remaining)
                started = time.monotonic()
                outcome = generator.run(
                    process.port,
                    connections=options.connections * 4,
                    rate=result.rate,
                    warmup_s=0.0,
                    duration_s=length,
                    deadline_s=TMAX_S,
                )
                minute = _minute(
                    index + 1, outcome, result.rate, sampler.between(started, time.monotonic())
                )
                result.minutes.append(minute)
                _say(
                    f"minute {minute.minute:>3}: {minute.answered_rps:>7,.0f}/s "
                    f"p50 {minute.p50_ms:6.2f} ms  p99 {minute.p99_ms:6.2f} ms  "
                    f"late {minute.late_fraction:.3%}  errors {minute.errors}  "
                    f"RSS {minute.rss_mb:.1f} MB  load {minute.load_avg:.1f}"
                )
                remaining -= length
                index += 1
                bar.update(round(length))
        result.bidder_alive = process.alive()
        result.finish(sampler)


def run_soak(options: SoakOptions) -> SoakResult:
    """Seed, start the bidder, measure its maximum, then soak it at half of that."""
    bid_options = bidding.BidOptions(
        devices=options.devices,
        campaigns=options.campaigns,
        bodies=options.bodies,
        seed=options.seed,
    )
    with EmbeddedRedis() as url:
        _say(f"seeding {options.devices:,} devices and {options.campaigns} campaigns")
        sample = bidding._seed(url, bid_options)
        requests = [http_post(body) for body in bidding.request_bodies(sample, options.seed)]
        with (
            bidder(url) as process,
            LoadGenerator(requests, options.generator_workers) as generator,
        ):
            probe = generator.run(
                process.port,
                connections=options.connections,
                warmup_s=1.0,
                duration_s=options.max_probe_s,
                deadline_s=TMAX_S,
            )
            _say(f"maximum throughput (closed loop): {probe.rps:,.0f}/s; soaking at half")
            result = SoakResult(
                max_rps=probe.rps,
                rate=probe.rps / 2,
                seconds=options.seconds,
                devices=options.devices,
                campaigns=options.campaigns,
            )
            _soak(generator, process, options, result)
    return result


def summary(result: SoakResult) -> str:
    return (
        f"soak {result.seconds:.0f} s at {result.rate:,.0f}/s (half of {result.max_rps:,.0f}/s): "
        f"RSS {result.rss_start_mb:.1f} MB at start, {result.rss_warm_mb:.1f} MB after minute 1, "
        f"{result.rss_end_mb:.1f} MB in the last minute -> "
        f"growth {result.memory_growth_pct:+.2f} %; "
        f"p99 per minute median {result.p99_median_ms:.2f} ms, max {result.p99_max_ms:.2f} ms; "
        f"errors {result.errors}; bidder alive: {result.bidder_alive}"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    default_s = float(os.environ.get("SOAK_SECONDS") or DEFAULT_SECONDS)
    parser.add_argument(
        "--seconds", type=float, default=default_s, help="soak length ($SOAK_SECONDS, else 1800)"
    )
    parser.add_argument("--minute", type=float, default=60.0, help="seconds per measured slice")
    parser.add_argument("--devices", type=int, default=_DEFAULTS.devices)
    parser.add_argument("--campaigns", type=int, default=_DEFAULTS.campaigns)
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    parser.add_argument(
        "--output", type=Path, default=Path("soak-results.json"), help="JSON file to write"
    )
    parser.add_argument(
        "--max-growth-pct",
        type=float,
        default=5.0,
        help="exit 1 when memory grows more than this (default 5)",
    )
    return parser


def _stop_on_sigterm() -> None:
    """SIGTERM (or SIGINT, which a shell's background job ignores) ends the run cleanly:
    the bidder, the load generator and Redis are stopped by their context managers."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging("WARNING", json=False)
    _stop_on_sigterm()
    options = SoakOptions(
        seconds=args.seconds,
        minute_s=args.minute,
        devices=args.devices,
        campaigns=args.campaigns,
        seed=args.seed,
    )
    result = run_soak(options)
    args.output.write_bytes(orjson.dumps(asdict(result), option=orjson.OPT_INDENT_2))
    print(summary(result))
    print(f"written to {args.output}")
    healthy = result.bidder_alive and result.errors == 0
    return 0 if healthy and result.memory_growth_pct <= args.max_growth_pct else 1


if __name__ == "__main__":
    raise SystemExit(main())
