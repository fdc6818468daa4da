"""``adx-mock``: the exchange simulator's command line.

    adx-mock population --devices 10000 --seed 1 --out population.jsonl
    adx-mock run --dsp http://127.0.0.1:8080/openrtb2/bid --qps 200 --duration 10
    adx-mock replay FILE --dsp http://127.0.0.1:8080/openrtb2/bid --qps 200
    adx-mock experiment --seed 1

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
from adx_mock.experiment import ExperimentConfig, format_table, run_experiment, summary_line
from adx_mock.population import generate_population, read_population, write_population
from adx_mock.replay import FORMATS, ReplayStats, read_requests
from adx_mock.runner import AUCTION_TYPES, RunConfig, run
from dmp.taxonomy import Taxonomy
from dsp.ctr.training import TrainingError
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
    _add_replay(commands)
    _add_experiment(commands)
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


def _add_replay(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "replay",
        help="replay recorded bid requests (OpenRTB JSON Lines or RTBkit logs) against DSPs",
        description="Send the bid requests of FILE, in order, to every --dsp and run the "
        "auctions as `run` does. FILE is OpenRTB JSON Lines or an RTBkit bid-request log "
        "(e.g. ../shared/corpus/logs/*.xz), plain, .gz or .xz.",
    )
    cmd.add_argument("file", type=Path, help="requests to replay")
    cmd.add_argument(
        "--format", choices=FORMATS, default="auto", help="file format (default: auto)"
    )
    cmd.add_argument(
        "--dsp", action="append", required=True, metavar="URL", help="bid endpoint (repeatable)"
    )
    cmd.add_argument("--qps", type=float, default=200.0, help="requests per second (default 200)")
    cmd.add_argument("--requests", type=int, help="stop after this many (default: the whole file)")
    cmd.add_argument("--tmax", type=int, default=100, help="DSP time limit in ms (default 100)")
    cmd.add_argument(
        "--auction", choices=sorted(AUCTION_TYPES), default="second", help="default second"
    )
    cmd.add_argument("--seed", type=int, default=1, help="seed of ties and user behaviour")
    cmd.add_argument("--click-rate", type=float, default=0.02, help="clicks per rendered ad")
    cmd.add_argument("--render-rate", type=float, default=0.95, help="rendered share of wins")
    cmd.add_argument("--concurrency", type=int, default=256, help="auctions in flight at most")
    cmd.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_experiment(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = ExperimentConfig()
    cmd = commands.add_parser(
        "experiment",
        help="compare bid strategies on the same traffic and budget in the simulated market",
        description="Simulate a week of history (fixed-CPM campaigns, archived events), "
        "train the CTR model from it, then play the same fresh traffic with the same budget "
        "for untargeted fixed CPM, tag-targeted fixed CPM, tag-targeted target-CPC x pCTR "
        "and tag-targeted target-CPA x pCTR x pCVR bidding (the pCVR model trained from the "
        "history's conversions); print CTR, clicks, spend, CPC, conversions, CPA and "
        "conversions per $ budget of each, and the lift ratios.",
    )
    cmd.add_argument("--seed", type=int, default=defaults.seed, help="market seed (default 1)")
    cmd.add_argument(
        "--devices", type=int, default=defaults.devices, help=f"default {defaults.devices}"
    )
    cmd.add_argument(
        "--history-days",
        type=int,
        default=defaults.history_days,
        help=f"days of history (default {defaults.history_days})",
    )
    cmd.add_argument(
        "--history-requests",
        type=int,
        default=defaults.history_requests_per_day,
        help=f"requests per history day (default {defaults.history_requests_per_day})",
    )
    cmd.add_argument(
        "--test-requests",
        type=int,
        default=defaults.test_requests,
        help=f"requests of the test traffic (default {defaults.test_requests})",
    )
    cmd.add_argument(
        "--budget",
        type=float,
        default=defaults.budget_micros / 1_000_000,
        help="budget of each strategy, USD (default %(default)s)",
    )
    cmd.add_argument(
        "--cpm",
        type=float,
        default=defaults.cpm_micros / 1_000_000,
        help="CPM of the fixed strategies, USD (default %(default)s)",
    )
    cmd.add_argument(
        "--auction", choices=sorted(AUCTION_TYPES), default="second", help="default second"
    )
    cmd.add_argument(
        "--targeting",
        default=defaults.targeting,
        help="tag expression of the targeted strategies (default %(default)s)",
    )
    cmd.add_argument(
        "--ad-category",
        default=defaults.ad_category,
        help="IAB category of the ads: the market's click and conversion rates depend on it "
        "(default %(default)s)",
    )
    cmd.add_argument(
        "--cvr-l2",
        type=float,
        default=defaults.cvr_l2,
        help="L2 shrinkage of the pCVR model (default %(default)s)",
    )
    cmd.add_argument("--archive", type=Path, help="keep the history's event archive here")
    cmd.add_argument("--model", type=Path, help="keep the trained model file here")
    cmd.add_argument("--cvr-model", type=Path, help="keep the trained pCVR model file here")
    cmd.add_argument("--calibration-png", type=Path, help="write the model's calibration chart")
    cmd.add_argument("--json", action="store_true", help="print only the JSON summary")
    cmd.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``adx-mock`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level.upper())
    try:
        if args.command == "population":
            return _population(parser, args)
        if args.command == "replay":
            return _replay(parser, args)
        if args.command == "experiment":
            return _experiment(parser, args)
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


def _replay(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    args.duration, args.devices = None, None
    _check_run_args(parser, args)
    stats = ReplayStats()
    requests = list(read_requests(args.file, args.format, tmax_ms=args.tmax, stats=stats))
    if not requests:
        print(f"adx-mock: error: no bid requests in {args.file}", file=sys.stderr)
        return EXIT_USAGE
    config = RunConfig(
        dsp_urls=args.dsp,
        population=(),
        qps=args.qps,
        duration_s=None,
        max_requests=args.requests or len(requests),
        tmax_ms=args.tmax,
        auction=args.auction,
        seed=args.seed,
        click_rate=args.click_rate,
        render_rate=args.render_rate,
        concurrency=args.concurrency,
        replay=requests,
    )
    log.info(
        "replay starting",
        extra={"file": str(args.file), "requests": config.total_requests, "skipped": stats.skipped},
    )
    summary = uvloop.run(run(config, progress=not args.no_progress))
    out = summary.to_dict() | {"replay": {"file": str(args.file), "skipped": stats.skipped}}
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    sys.stdout.flush()
    return EXIT_OK


def _experiment(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    positive = {
        "--devices": args.devices,
        "--history-days": args.history_days - 1,  # one day is held out: at least two
        "--history-requests": args.history_requests,
        "--test-requests": args.test_requests,
        "--budget": args.budget,
        "--cpm": args.cpm,
    }
    for flag, value in positive.items():
        if not value > 0:
            parser.error(f"{flag} is too small")
    if args.cvr_l2 < 0:
        parser.error("--cvr-l2 must be >= 0")
    config = ExperimentConfig(
        devices=args.devices,
        seed=args.seed,
        history_days=args.history_days,
        history_requests_per_day=args.history_requests,
        test_requests=args.test_requests,
        budget_micros=round(args.budget * 1_000_000),
        cpm_micros=round(args.cpm * 1_000_000),
        auction=args.auction,
        targeting=args.targeting,
        ad_category=args.ad_category,
        cvr_l2=args.cvr_l2,
        archive_dir=args.archive,
        model_path=args.model,
        cvr_model_path=args.cvr_model,
        calibration_png=args.calibration_png,
    )
    try:
        result = run_experiment(config, progress=not args.no_progress)
    except TrainingError as error:  # e.g. a history too small to hold a conversion
        print(f"adx-mock: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if not args.json:
        print(format_table(result))
    sys.stdout.write(summary_line(result).decode() + "\n")
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
