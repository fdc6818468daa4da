"""Group ``events``: the aggregator counting 10,000,000 events from the stream.

The stream is filled first (not timed) the way production fills it: bid and loss events in
Arrow batches of up to 1,000 (the bidder's buffer), wins, impressions and clicks one JSON
event per entry (the ledger's script), interleaved. The mix follows an auction: every bid
is lost or won (10 %), 95 % of wins show, 1 % of impressions are clicked; 100 campaigns of
3 creatives over a day of hours, each campaign matching up to 3 of its 6 tags.

Timed: ``Aggregator.catch_up`` from the first entry to the last, counts applied and
acknowledged in Redis; the counts are then checked against the generator's own totals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import uvloop
from redis.asyncio import Redis
from tqdm import tqdm

from bench.figures import Figures
from dsp.events.aggregate import Aggregator
from dsp.events.schema import BATCH_FIELD, BATCH_SCHEMA, ENTRY_FIELD, encode_table
from infra import keys
from infra.embedded_redis import EmbeddedRedis

FIGURES = ("aggregate_10m_events_s", "aggregate_events_per_s")
CAMPAIGNS = 100
CREATIVES = 3
DAY_MS = 86_400_000
WIN_RATE, SHOW_RATE, CLICK_RATE = 0.10, 0.95, 0.01
_BIDS_PER_CHUNK = 1000


@dataclass(slots=True)
class Filled:
    events: int = 0
    bids: int = 0
    impressions: int = 0
    clicks: int = 0
    entries: int = 0


def _lists(rng: np.random.Generator, pool: np.ndarray, rows: int, most: int) -> pa.ListArray:
    lengths = rng.integers(0, most + 1, rows)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = pool[rng.integers(0, len(pool), int(offsets[-1]))]
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


class _World:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.campaigns = np.array([f"cmp_{n:04d}" for n in range(CAMPAIGNS)], dtype=object)
        self.creatives = np.array([f"cr{n}" for n in range(CREATIVES)], dtype=object)
        self.tag_sets = self.rng.integers(1, 400, (CAMPAIGNS, 6))
        self.devices = np.array([f"{d:016x}" for d in self.rng.integers(0, 1 << 62, 50_000)])
        self.cats = np.array(["IAB1", "IAB2", "IAB3", "IAB9", "IAB17", "IAB19"], dtype=object)
        self.start_ms = int(time.time() * 1000) // 3_600_000 * 3_600_000 - DAY_MS
        self.auction = 0

    def chunk(self, bids: int, step_ms: float) -> tuple[pa.Table, list[bytes], Filled]:
        """Bids with their losses (a table) and the notices of the won ones (JSON lines)."""
        rng = self.rng
        first = self.auction
        self.auction += bids
        ts = (self.start_ms + (np.arange(first, first + bids) * step_ms)).astype(np.int64)
        campaign = rng.integers(0, CAMPAIGNS, bids)
        creative = rng.integers(0, CREATIVES, bids)
        lengths = rng.integers(0, 4, bids)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        owner = np.repeat(campaign, lengths)
        tag_values = self.tag_sets[owner, rng.integers(0, 6, len(owner))]
        tags = pa.ListArray.from_arrays(pa.array(offsets), pa.array(tag_values, pa.int64()))
        device = self.devices[rng.integers(0, len(self.devices), bids)]
        auction = [f"a{n}" for n in range(first, first + bids)]
        price = rng.integers(500_000, 5_000_000, bids)
        won = rng.random(bids) < WIN_RATE
        lost = ~won
        columns = {
            "type": pa.array(["bid"] * bids + ["loss"] * int(lost.sum())),
            "ts": pa.array(np.concatenate([ts, ts[lost] + 80])),
            "auction": pa.array(auction + [a for a, x in zip(auction, lost, strict=True) if x]),
            "imp": pa.array(["1"] * (bids + int(lost.sum()))),
            "campaign": pa.array(np.concatenate([self.campaigns[campaign],
                                                 self.campaigns[campaign[lost]]])),
            "creative": pa.array(np.concatenate([self.creatives[creative],
                                                 self.creatives[creative[lost]]])),
            "device": pa.array(np.concatenate([device, device[lost]])),
            "tags": pa.concat_arrays([tags, tags.take(pa.array(np.flatnonzero(lost)))]),
            "price": pa.array(np.concatenate([price, np.zeros(int(lost.sum()), np.int64)])),
        }  # fmt: skip
        rows = len(columns["type"])
        columns["site_cat"] = _lists(rng, self.cats, rows, 2)
        columns["os"] = pa.array(["android"] * rows)
        columns["w"] = pa.array(np.full(rows, 320, np.int32))
        columns["h"] = pa.array(np.full(rows, 50, np.int32))
        columns["reason"] = pa.array([None] * bids + ["102"] * int(lost.sum()), pa.string())
        columns["scores"] = pa.nulls(rows, pa.list_(pa.int32()))  # issue 12: unscored
        table = pa.table(columns, schema=BATCH_SCHEMA)
        notices: list[bytes] = []
        filled = Filled(events=rows, bids=bids)
        shown = rng.random(bids) < SHOW_RATE
        clicked = rng.random(bids) < CLICK_RATE
        tag_lists = tags.to_pylist()
        for i in np.flatnonzero(won):
            head = (
                f'"ts":{ts[i] + 90},"auction":"{auction[i]}","imp":"1",'
                f'"campaign":"{self.campaigns[campaign[i]]}",'
                f'"creative":"{self.creatives[creative[i]]}","device":"{device[i]}",'
                f'"tags":[{",".join(map(str, tag_lists[i]))}]'
            )
            notices.append(f'{{"type":"win",{head},"price":{price[i] // 2000}}}'.encode())
            if shown[i]:
                notices.append(f'{{"type":"imp",{head},"price":0}}'.encode())
                filled.impressions += 1
                if clicked[i]:
                    notices.append(f'{{"type":"click",{head},"price":0}}'.encode())
                    filled.clicks += 1
        filled.events += len(notices)
        return table, notices, filled


async def fill_stream(redis: Redis, count: int, seed: int, progress: bool = True) -> Filled:
    """About ``count`` events into the stream, as production lays them out."""
    world = _World(seed)
    per_bid = 1 + (1 - WIN_RATE) + WIN_RATE * (1 + SHOW_RATE * (1 + CLICK_RATE))
    bids_total = max(1, round(count / per_bid))
    step_ms = DAY_MS / bids_total
    total = Filled()
    bar = tqdm(total=count, unit=" events", desc="filling the stream", disable=not progress)
    pipe = redis.pipeline(transaction=False)
    queued = 0
    while total.bids < bids_total:
        bids = min(_BIDS_PER_CHUNK, bids_total - total.bids)
        table, notices, filled = world.chunk(bids, step_ms)
        for start in range(0, table.num_rows, 1000):
            pipe.xadd(keys.EVENTS, {BATCH_FIELD: encode_table(table.slice(start, 1000))})
            total.entries += 1
        for notice in notices:
            pipe.xadd(keys.EVENTS, {ENTRY_FIELD: notice})
        total.entries += len(notices)
        queued += len(notices) + 2
        if queued >= 20_000:
            await pipe.execute()
            queued = 0
        for name in ("events", "bids", "impressions", "clicks"):
            setattr(total, name, getattr(total, name) + getattr(filled, name))
        bar.update(filled.events)
    await pipe.execute()
    bar.close()
    return total


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _counted(redis: Redis) -> tuple[int, int, int]:
    bids = impressions = clicks = 0
    stats = []
    for raw in await redis.smembers(keys.event_campaigns()):
        campaign = _text(raw)
        for hour in await redis.smembers(keys.event_hours(campaign)):
            stats.append(await redis.hgetall(keys.event_counts(campaign, _text(hour))))
    for fields in stats:
        for name, value in fields.items():
            _, tag, metric = _text(name).split("|")
            if tag != "*":
                continue
            if metric == "bids":
                bids += int(value)
            elif metric == "impressions":
                impressions += int(value)
            elif metric == "clicks":
                clicks += int(value)
    return bids, impressions, clicks


async def measure_aggregation(
    url: str, count: int, seed: int, progress: bool = True
) -> tuple[Filled, float, int]:
    """Fill the stream, then time the aggregator through it: (filled, seconds, events)."""
    redis = Redis.from_url(url)
    try:
        filled = await fill_stream(redis, count, seed, progress)
        aggregator = Aggregator(redis, consumer="bench")
        await aggregator.ensure_group()
        bar = tqdm(total=filled.events, unit=" events", desc="aggregating", disable=not progress)
        started = time.perf_counter()
        done = await aggregator.catch_up(on_batch=bar.update)
        seconds = time.perf_counter() - started
        bar.close()
        counted = await _counted(redis)
        expected = (filled.bids, filled.impressions, filled.clicks)
        if counted != expected or done.events != filled.events:
            raise AssertionError(f"counted {counted} of {done.events}, expected {expected}")
        return filled, seconds, done.events
    finally:
        await redis.aclose()


def run_events(figures: Figures, count: int = 10_000_000, seed: int = 1) -> None:
    figures.say(f"events: the aggregator through {count:,} events in the stream")
    with EmbeddedRedis() as url:
        filled, seconds, events = uvloop.run(measure_aggregation(url, count, seed))
    note = f"{events:,} events in {filled.entries:,} entries"
    scaled = seconds * 10_000_000 / max(events, 1)
    figures.add(FIGURES[0], scaled, "s", note + ("" if events >= 10_000_000 else ", scaled"))
    figures.add(FIGURES[1], events / seconds, "events/s", note)
