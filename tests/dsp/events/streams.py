"""Synthetic events in the stream, and their true counts worked out the plain way."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from typing import Any

from redis.asyncio import Redis

from dsp.events.schema import BATCH_FIELD, ENTRY_FIELD, encode, encode_batch
from infra import keys

Truth = dict[str, dict[str, int]]  # "campaign:hour" -> field -> count, as kept in Redis
_METRIC = {"bid": "bids", "win": "wins", "loss": "losses", "imp": "impressions",
           "click": "clicks", "invalid_click": "invalid_clicks"}  # fmt: skip


def events(count: int, seed: int = 1, start_ms: int | None = None) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = start_ms if start_ms is not None else int(time.time() * 1000) - 3 * 3_600_000
    found = []
    for n in range(count):
        kind = rng.choice(["bid", "bid", "bid", "loss", "loss", "win", "imp", "click"])
        found.append({
            "type": kind, "ts": start + n * 997, "auction": f"a{n}", "imp": "1",
            "campaign": f"c{rng.randrange(3)}", "creative": f"cr{rng.randrange(2)}",
            "device": f"{rng.randrange(1 << 64):016x}",
            "tags": sorted(rng.sample(range(1, 9), rng.randrange(3))),
            "price": rng.randrange(1, 5000) if kind in ("win", "bid") else 0,
        })  # fmt: skip
    return found


def truth(found: list[dict[str, Any]]) -> Truth:
    counts: Truth = defaultdict(lambda: defaultdict(int))
    for event in found:
        hour = time.strftime("%Y%m%d%H", time.gmtime(event["ts"] // 1000))
        metric = _METRIC[event["type"]]
        for tag in ["*", *(str(t) for t in event["tags"])] if event["tags"] else ["*", "-"]:
            prefix = f"{event['creative']}|{tag}|"
            fields = counts[f"{event['campaign']}:{hour}"]
            fields[prefix + metric] += 1
            if event["type"] == "win":
                fields[prefix + "spend"] += event["price"]
    return {campaign: dict(fields) for campaign, fields in counts.items()}


async def fill(redis: Redis, found: list[dict[str, Any]], batch: int = 50) -> None:
    """Bids and losses in Arrow batches (as the bidder's buffer sends them), the rest one
    JSON event per entry (as the ledger adds them), interleaved in time order."""
    pending: list[dict[str, Any]] = []
    async with redis.pipeline(transaction=False) as pipe:
        for event in found:
            if event["type"] in ("bid", "loss"):
                pending.append(event)
                if len(pending) == batch:
                    pipe.xadd(keys.EVENTS, {BATCH_FIELD: encode_batch(pending)})
                    pending = []
            else:
                pipe.xadd(keys.EVENTS, {ENTRY_FIELD: encode([event])})
        if pending:
            pipe.xadd(keys.EVENTS, {BATCH_FIELD: encode_batch(pending)})
        await pipe.execute()


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def stored(redis: Redis) -> Truth:
    campaigns = sorted(text(c) for c in await redis.smembers(keys.event_campaigns()))
    counts: Truth = {}
    for campaign in campaigns:
        for hour in sorted(text(h) for h in await redis.smembers(keys.event_hours(campaign))):
            raw = await redis.hgetall(keys.event_counts(campaign, hour))
            counts[f"{campaign}:{hour}"] = {text(k): int(v) for k, v in raw.items()}
    return counts
