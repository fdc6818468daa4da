"""``adx-mock``: the exchange simulator's command line.

    adx-mock population --devices 10000 --seed 1 --out population.jsonl
    adx-mock run --dsp http://127.0.0.1:8080/openrtb2/bid --qps 200 --duration 10

``run`` prints its JSON summary as the last line of stdout; logs go to stderr. Exit codes:
0 a completed run, 1 a failure while running, 2 bad arguments or input files.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson
import uvloop

from adx_mock.errors import AdxMockError
from adx_mock.population import generate_population, read_population, write_population
from adx_mock.runner import AUCTION_TYPES, RunConfig, run
from dmp.taxonomy import Taxonomy
from infra.logs import setup_logging

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_DEVICES = 10_000
DEFAULT_DURATION_S = 10.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adx-mock",
        description="Ad exchange simulator: synthetic devices, OpenRTB 2.6 auctions, "
        "win notices, impressions and clicks against one or more DSPs.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_population(commands)
    _add_run(commands)
    return parser


def _add_population(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "population",
        help="write a synthetic device population (DMP ingest JSON Lines)",
        description="Write a seeded synthetic device population in the DMP ingest "
        "JSON Lines format; the same --devices and --seed always give the same file.",
    )
    cmd.add_argument("--devices", type=int, default=DEFAULT_DEVICES, help="number of devices")
    cmd.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    cmd.add_argument("--out", type=Path, required=True, help="output file (.jsonl)")
    cmd.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "run",
        help="run auctions against DSPs and print a JSON summary",
        description="Send OpenRTB 2.6 bid requests to every --dsp on an open-loop schedule, "
        "run the auctions, call win, billing, impression, click and loss URLs, and print "
        "a JSON summary as the last line of stdout.",
    )
    cmd.add_argument(
        "--dsp", action="append", required=True, metavar="URL", help="bid endpoint (repeatable)"
    )
    cmd.add_argument("--qps", type=float, default=200.0, help="requests per second (default 200)")
    cmd.add_argument(
        "--duration",
        type=float,
        help=f"seconds to run (default {DEFAULT_DURATION_S:g} unless --requests is given)",
    )
    cmd.add_argument("--requests", type=int, help="stop after this many requests")
    cmd.add_argument("--tmax", type=int, default=100, help="DSP time limit in ms (default 100)")
    cmd.add_argument(
        "--auction",
        choices=sorted(AUCTION_TYPES),
        default="second",
        help="first or second price (default second)",
    )
    cmd.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    source = cmd.add_mutually_exclusive_group()
    source.add_argument("--population", type=Path, help="population file (JSON Lines)")
    source.add_argument(
        "--devices",
        type=int,
        help="regenerate the population of `population --devices N --seed S` "
        f"(default {DEFAULT_DEVICES} when no --population is given)",
    )
    cmd.add_argument("--click-rate", type=float, default=0.02, help="clicks per rendered ad")
    cmd.add_argument("--render-rate", type=float, default=0.95, help="rendered share of wins")
    cmd.add_argument("--concurrency", type=int, default=256, help="auctions in flight at most")
    cmd.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``adx-mock`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level.upper())
    try:
        if args.command == "population":
            return _population(parser, args)
        return _run(parser, args)
    except AdxMockError as exc:
        print(f"adx-mock: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _population(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.devices < 0:
        parser.error("--devices must be >= 0")
    try:
        count = write_population(
            args.out, args.devices, args.seed, Taxonomy.default(), progress=not args.no_progress
        )
    except OSError as exc:
        print(f"adx-mock: error: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    log.info(
        "population written", extra={"devices": count, "seed": args.seed, "out": str(args.out)}
    )
    print(orjson.dumps({"devices": count, "seed": args.seed, "out": str(args.out)}).decode())
    return EXIT_OK


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.duration is None and args.requests is None:
        args.duration = DEFAULT_DURATION_S
    _check_run_args(parser, args)
    if args.population is not None:
        population = read_population(args.population)
    else:
        devices = DEFAULT_DEVICES if args.devices is None else args.devices
        population = list(generate_population(devices, args.seed, Taxonomy.default()))
    config = RunConfig(
        dsp_urls=args.dsp,
        population=population,
        qps=args.qps,
        duration_s=args.duration,
        max_requests=args.requests,
        tmax_ms=args.tmax,
        auction=args.auction,
        seed=args.seed,
        click_rate=args.click_rate,
        render_rate=args.render_rate,
        concurrency=args.concurrency,
    )
    log.info(
        "run starting",
        extra={"dsps": args.dsp, "qps": args.qps, "requests": config.total_requests},
    )
    summary = uvloop.run(run(config, progress=not args.no_progress))
    log.info("run finished", extra={"requests": summary.requests, "wins": summary.wins})
    sys.stdout.write(orjson.dumps(summary.to_dict()).decode() + "\n")
    sys.stdout.flush()
    return EXIT_OK


def _check_run_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse impossible values with argparse's usage message and exit code 2."""
    positive = {"--qps": args.qps, "--tmax": args.tmax, "--concurrency": args.concurrency}
    if args.duration is not None:
        positive["--duration"] = args.duration
    if args.requests is not None:
        positive["--requests"] = args.requests
    if args.devices is not None:
        positive["--devices"] = args.devices
    for flag, value in positive.items():
        if not value > 0:
            parser.error(f"{flag} must be > 0, got {value}")
    for flag, rate in (("--click-rate", args.click_rate), ("--render-rate", args.render_rate)):
        if not 0.0 <= rate <= 1.0:
            parser.error(f"{flag} must be between 0 and 1, got {rate}")
    for url in args.dsp:
        if not url.startswith(("http://", "https://")):
            parser.error(f"--dsp must be an http(s) URL, got {url!r}")


if __name__ == "__main__":
    sys.exit(main())
