"""``dsp events``: run the archiver and the aggregator, or recount an archive.

``dsp/cli.py`` wires it with ``add_events_command(commands)``; the handler is
``args.run(args, settings)``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

import uvloop
from tqdm import tqdm

from dsp.events.aggregate import Aggregator
from dsp.events.archive import Archiver
from dsp.events.recount import recount, recount_table
from infra.embedded_redis import redis_url_or_embedded
from infra.redis_client import redis_client
from infra.settings import Settings

COMMAND = "events"
_ACTIONS = ("run", "aggregate", "archive", "recount")


def add_events_command(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        COMMAND,
        help="event log: archive and count the event stream, or recount an archive",
        description=(
            "run: archive and count the event stream until stopped (SIGTERM/SIGINT). "
            "aggregate / archive: one of the two, --once to stop when the stream is drained. "
            "recount: count an archive directory again from its files alone."
        ),
    )
    parser.add_argument("action", choices=_ACTIONS)
    parser.add_argument("--dir", type=Path, help="archive directory (default: settings)")
    parser.add_argument("--once", action="store_true", help="stop when the stream is drained")
    parser.add_argument("--consumer", help="aggregator consumer name (default: host-pid)")
    parser.add_argument("--by", default="campaign", help="recount: comma-separated dimensions")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--redis-url",
        help="Redis to use (default: $REDIS_URL, else an embedded server for this command)",
    )
    parser.set_defaults(run=run_events)
    return parser


async def _serve(args: argparse.Namespace, settings: Settings, url: str) -> int:
    redis = redis_client(url)
    directory = args.dir or Path(settings.events_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    aggregator = Aggregator(
        redis, consumer=args.consumer, claim_idle_s=settings.events_claim_idle_s
    )
    archiver = Archiver(redis, directory)
    bar = tqdm(unit=" events", disable=args.no_progress or not args.once, file=sys.stderr)
    try:
        if args.once:
            if args.action in ("run", "archive"):
                await archiver.catch_up()
            if args.action in ("run", "aggregate"):
                await aggregator.catch_up(on_batch=bar.update)
            if args.action == "run":
                await archiver.trim()
        else:
            tasks = []
            if args.action in ("run", "archive"):
                tasks.append(asyncio.create_task(archiver.run(stop=stop)))
            if args.action in ("run", "aggregate"):
                tasks.append(asyncio.create_task(aggregator.run(stop=stop)))
            await asyncio.gather(*tasks)
    finally:
        bar.close()
        await redis.aclose()
    print(
        f"aggregated {aggregator.progress.events:,} events, "
        f"archived {archiver.progress.events:,} to {directory}"
    )
    return 0


def run_events(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "recount":
        directory = args.dir or Path(settings.events_dir)
        by = tuple(part.strip() for part in args.by.split(",") if part.strip())
        print(recount_table(recount(directory), by))
        return 0
    redis_url = args.redis_url or settings.redis_url
    with redis_url_or_embedded(redis_url) as url:
        return uvloop.run(_serve(args, settings, url))
