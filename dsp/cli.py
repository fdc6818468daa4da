"""``dsp``: the bidder, the demo, reports and campaign files."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson
import uvloop

from dsp.admin import ADMIN_COMMANDS, add_admin_commands, run_admin
from dsp.budget.pacing_cli import add_pacing_command
from dsp.campaigns.store import load_campaigns, save_campaigns
from dsp.ctr.cli import add_ctr_command
from dsp.errors import InvalidCampaign
from dsp.events.cli import add_events_command
from dsp.reporting.report import DIMENSIONS, build_report, format_report
from infra.embedded_redis import redis_url_or_embedded
from infra.logs import setup_logging
from infra.redis_client import redis_client
from infra.settings import Settings


def _dimensions(text: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in chosen if name not in DIMENSIONS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {','.join(DIMENSIONS)}")
    return tuple(name for name in DIMENSIONS if name in chosen)


def _redis_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url",
        help="Redis to use (default: $REDIS_URL, else an embedded server for this command)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dsp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the bidder, tracking endpoints and API")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--workers", type=int, help="bidder processes sharing the port (default 1)")
    serve.add_argument("--public-url", help="base URL of tracking links (default http://HOST:PORT)")
    _redis_option(serve)

    demo = commands.add_parser("demo", help="the main job end to end on an embedded Redis")
    demo.add_argument("--devices", type=int, default=100_000, help="DMP population size")
    demo.add_argument("--auctions", type=int, default=20_000, help="auctions to run")
    demo.add_argument("--qps", type=float, default=300.0, help="auctions per second")
    demo.add_argument("--seed", type=int, default=7, help="seed of the synthetic world")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")

    report = commands.add_parser(
        "report",
        help="CTR report by campaign, creative, day, hour, tag",
        description=(
            "Impressions, clicks, CTR with its Wilson 95 %% interval, spend, eCPM and eCPC from "
            "the event log's counts (events still in the stream are counted first)."
        ),
    )
    report.add_argument(
        "--by",
        type=_dimensions,
        default=("campaign",),
        help=f"comma-separated dimensions of {','.join(DIMENSIONS)} (default campaign)",
    )
    report.add_argument("--format", choices=("table", "csv", "json"), default="table")
    report.add_argument(
        "--png", type=Path, metavar="FILE", help="also draw CTR by hour (with band) and by tag"
    )
    _redis_option(report)

    campaigns = commands.add_parser("campaigns", help="load or list campaigns")
    campaigns.add_argument("action", choices=("load", "list"))
    campaigns.add_argument("file", nargs="?", type=Path, help="JSON array or JSON Lines (load)")
    _redis_option(campaigns)
    add_admin_commands(commands)
    add_pacing_command(commands)
    add_events_command(commands)
    add_ctr_command(commands)  # issue 8
    return parser


async def _report(url: str, by: Sequence[str], fmt: str, png: Path | None) -> str:
    from dmp.taxonomy import Taxonomy

    taxonomy = Taxonomy.default()
    redis = redis_client(url)
    try:
        text = format_report(await build_report(redis, by, catch_up_s=None), by, fmt, taxonomy)
        if png is not None:
            from dsp.reporting.charts import plot_ctr

            by_hour = await build_report(redis, ("hour",), current=False)
            by_tag = await build_report(redis, ("tag",), current=False)
            plot_ctr(by_hour, by_tag, png, taxonomy=taxonomy)
        return text
    finally:
        await redis.aclose()


def _read_payloads(path: Path) -> list[object]:
    text = path.read_bytes()
    if text.lstrip().startswith(b"["):
        loaded = orjson.loads(text)
        return list(loaded) if isinstance(loaded, list) else [loaded]
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


async def _campaigns(url: str, action: str, path: Path | None) -> str:
    redis = redis_client(url)
    try:
        if action == "load":
            if path is None:
                raise InvalidCampaign("file", "give the file to load")
            saved = await save_campaigns(redis, _read_payloads(path))
            return f"loaded {len(saved)} campaigns"
        _, stored = await load_campaigns(redis)
        return "\n".join(f"{c.id}\t{c.status}\t{c.cpm_micros}\t{c.name}" for c in stored)
    finally:
        await redis.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env(os.environ)
    # The demo talks to a person through its own lines; its logs only speak up for problems.
    level = "WARNING" if args.command == "demo" and "LOG_LEVEL" not in os.environ else None
    setup_logging(level or settings.log_level, json=settings.log_json)
    if args.command in ADMIN_COMMANDS:
        return run_admin(args, settings)
    if args.command == "pacing-sim":
        return int(args.run(args))
    if args.command == "events":
        return int(args.run(args, settings))
    if args.command == "ctr":  # issue 8
        return int(args.run(args, settings))
    redis_url = getattr(args, "redis_url", None) or settings.redis_url
    if args.command == "serve":
        from dsp.serve import serve

        serve(
            settings.replace(
                redis_url=redis_url, host=args.host, port=args.port, workers=args.workers,
                public_url=args.public_url,
            )
        )  # fmt: skip
        return 0
    if args.command == "demo":
        from dsp.demo import DemoConfig, run_demo

        config = DemoConfig(args.devices, args.auctions, args.qps, args.seed, not args.no_progress)
        return run_demo(config)
    with redis_url_or_embedded(redis_url) as url:
        try:
            if args.command == "report":
                print(uvloop.run(_report(url, args.by, args.format, args.png)))
            else:
                print(uvloop.run(_campaigns(url, args.action, args.file)))
        except (InvalidCampaign, OSError, orjson.JSONDecodeError) as error:
            print(f"dsp {args.command}: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
