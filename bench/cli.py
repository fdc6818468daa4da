"""``python -m bench``: run benchmark groups, print their figures, save them as JSON."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import uvloop

from bench import bidding, events, profiles, targeting
from bench.figures import UNIX_TIME_FIELD, Figures
from dmp.audience_bench import bench_audience_size_ms
from infra.logs import setup_logging

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "bench-results.json"


@dataclass(frozen=True, slots=True)
class Options:
    devices: int = 1_000_000
    ingest_devices: int = 200_000
    bid_devices: int = 1_000_000
    seed: int = 1
    connections: int = 64
    generator_workers: int = 2
    warmup_s: float = 1.0
    duration_s: float = 5.0
    events: int = 10_000_000


DEFAULTS = Options()


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    about: str
    figures: tuple[str, ...]
    run: Callable[[Figures, Options], None]


def _targeting(figures: Figures, options: Options) -> None:
    targeting.run_targeting(figures, seed=options.seed)


def _dmp(figures: Figures, options: Options) -> None:
    profiles.run_dmp(
        figures, stored=options.devices, ingested=options.ingest_devices, seed=options.seed
    )


AUDIENCE_FIGURES = ("audience_size_ms",)


def _audience(figures: Figures, options: Options) -> None:
    count = max(options.devices, 1_000_000)
    figures.say(f"audience: exact size of a 10-tag expression over {count:,} devices")
    size_ms = uvloop.run(bench_audience_size_ms(count))
    figures.add(AUDIENCE_FIGURES[0], size_ms, "ms", f"median of 20, {count:,} devices")


def _bid(figures: Figures, options: Options) -> None:
    bid_options = bidding.BidOptions(
        devices=options.bid_devices,
        connections=options.connections,
        generator_workers=options.generator_workers,
        warmup_s=options.warmup_s,
        duration_s=options.duration_s,
        seed=options.seed,
    )
    bidding.run_bid(figures, bid_options)


def _events(figures: Figures, options: Options) -> None:
    events.run_events(figures, count=options.events, seed=options.seed)


GROUPS = (
    Group(
        "targeting", "decide() per request, 100 vs 10,000 campaigns", targeting.FIGURES, _targeting
    ),
    Group("dmp", "Redis bytes per device; bulk ingest throughput", profiles.FIGURES, _dmp),
    Group("audience", "exact audience size over 1M devices", AUDIENCE_FIGURES, _audience),
    Group("bid", "bidder vs bare aiohttp under load; latency; 2 workers", bidding.FIGURES, _bid),
    Group("events", "aggregator through 10M stream events", events.FIGURES, _events),
)


def select(names: str | None, groups: Sequence[Group] = GROUPS) -> list[Group]:
    """The groups producing the named figures or named themselves, in their usual order."""
    if not names:
        return list(groups)
    wanted = {name.strip() for name in names.split(",") if name.strip()}
    known = {g.name for g in groups} | {f for g in groups for f in g.figures}
    unknown = sorted(wanted - known)
    if unknown:
        raise ValueError(f"unknown benchmark or figure: {', '.join(unknown)}")
    return [g for g in groups if g.name in wanted or wanted & set(g.figures)]


_DESCRIPTION = """\
Run benchmarks, print each figure as it is measured, then a table, and write this
run's figures (only those) to a JSON file as one flat object name -> number.

Every group starts what it needs (an embedded Redis, a bidder, reference servers) on
loopback and stops it again. --only takes group or figure names and runs the groups that
produce them; `BENCH=targeting,bid_rps make bench` passes it through make.

Throughput in the 'bid' group: three closed-loop rounds, each the bare server then the
bidder; the figures are those of the round with the median ratio (all rounds are printed).
Latency in the 'bid' group: bid_p50/p99/p999_ms come from the closed-loop run at full
load, so they are mostly queueing (connections / throughput); bid_p99_ms_half_load is
open loop at half the measured throughput, timed from when each request fell due, over
three runs alternating with the bare server at the same rate (bare_p99_ms_half_load).
host_steal_half_load is the share of CPU time the hypervisor took meanwhile: on a shared
virtual machine it stalls both servers, and their tails grow with it."""

# flag, Options field, kind, help
_NUMBERS: tuple[tuple[str, str, type[int] | type[float], str], ...] = (
    ("--devices", "devices", int, "devices stored by 'dmp' for dmp_bytes_per_device"),
    ("--ingest-devices", "ingest_devices", int, "devices in the file 'dmp' ingests"),
    ("--bid-devices", "bid_devices", int, "DMP population the bidder of 'bid' looks up"),
    ("--connections", "connections", int, "closed-loop connections of 'bid'"),
    ("--generator-workers", "generator_workers", int, "load generator processes"),
    ("--duration", "duration_s", float, "seconds measured per load run"),
    ("--warmup", "warmup_s", float, "seconds of warm-up per load run"),
    ("--seed", "seed", int, "seed of every synthetic input"),
    ("--events", "events", int, "events 'events' puts in the stream and aggregates"),
)


def _epilog() -> str:
    lines = ["groups and the figures they produce:"]
    for group in GROUPS:
        lines.append(f"  {group.name:<10} {group.about}")
        lines += [f"      {name}" for name in group.figures]
    lines.append(f"The JSON file also holds {UNIX_TIME_FIELD}, the time of the run.")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=_DESCRIPTION,
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--only", metavar="NAMES", help="comma-separated group or figure names")
    for flag, name, kind, text in _NUMBERS:
        default = getattr(DEFAULTS, name)
        parser.add_argument(
            flag, dest=name, type=kind, default=default, metavar="N", help=f"{text} ({default:,})"
        )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        metavar="PATH",
        help="JSON file to write (default: bench-results.json at the repository root)",
    )
    return parser


def run_groups(groups: Sequence[Group], options: Options, figures: Figures) -> list[str]:
    """Run each group in turn; the names of those that failed (the others still run)."""
    failed = []
    for group in groups:
        figures.say(f"== {group.name}: {group.about}")
        started = time.perf_counter()
        try:
            group.run(figures, options)
        except Exception as error:  # one broken group must not cost the other figures
            figures.say(f"!! {group.name} failed: {type(error).__name__}: {error}")
            failed.append(group.name)
        figures.say(f"== {group.name} took {time.perf_counter() - started:.0f} s")
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        groups = select(args.only)
    except ValueError as error:
        parser.error(str(error))
    setup_logging("WARNING", json=False)
    options = Options(**{name: getattr(args, name) for _, name, _, _ in _NUMBERS})
    figures = Figures()
    failed = run_groups(groups, options, figures)
    figures.say("\n" + figures.table())
    figures.write_json(args.output)
    figures.say(f"\nfigures written to {args.output}")
    if failed:
        figures.say(f"failed: {', '.join(failed)}")
    return 1 if failed else 0
