"""The CTR report: the aggregator's counts, grouped by the dimensions asked for.

The counts come from the event log (``dsp.events.aggregate``): deduplicated notices, invalid
clicks kept apart. Building a report first counts what is still waiting in the stream, so
it is current. CTR comes with its Wilson score interval (95 %), which stays honest for the
small counts of a new creative or a rare tag.

By ``tag``, an event that matched several tags counts under each of them (so tag rows may
add up to more than the total), and events that matched none are under tag ``-``.

issue 12: conversions, in the row of the day (hour) they were reported, credited to the
campaign, creative and tags of the click (``click_conversions``) or impression
(``view_conversions``) they were attributed to. ``cvr_click`` is click conversions per
click, ``cvr_imp`` all conversions per impression, each with its Wilson interval; ``cpa_usd``
spend per conversion; ``roas`` conversion value per unit of spend.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import orjson
from redis.asyncio import Redis

from dmp.errors import DmpError
from dmp.taxonomy import Taxonomy
from dsp.campaigns.store import load_campaigns
from dsp.events.aggregate import Aggregator
from dsp.events.schema import ALL_TAGS, NO_TAG
from infra import keys

DIMENSIONS = ("campaign", "creative", "day", "hour", "tag")
REPORT_CONSUMER = "reports"  # the aggregator consumer reports catch up with
Z_95 = 1.959963984540054


def wilson(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when nothing was tried."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    center = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    return max(0.0, center - half), min(1.0, center + half)


@dataclass(slots=True)
class Row:
    key: tuple[str, ...]
    bids: int = 0
    wins: int = 0
    losses: int = 0
    impressions: int = 0
    clicks: int = 0
    invalid_clicks: int = 0
    spend_micros: int = 0
    name: str = field(default="")
    click_conversions: int = 0  # issue 12
    view_conversions: int = 0
    conversion_value_micros: int = 0

    @property
    def conversions(self) -> int:
        return self.click_conversions + self.view_conversions

    @property
    def cvr_click(self) -> float:
        """Conversions credited to clicks, per click."""
        return self.click_conversions / self.clicks if self.clicks else 0.0

    @property
    def cvr_imp(self) -> float:
        """Every conversion, per impression."""
        return self.conversions / self.impressions if self.impressions else 0.0

    @property
    def cpa(self) -> float:
        """USD spent per conversion."""
        return self.spend_micros / self.conversions / 1_000_000 if self.conversions else 0.0

    @property
    def roas(self) -> float:
        """Conversion value per unit of spend."""
        return self.conversion_value_micros / self.spend_micros if self.spend_micros else 0.0

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0

    @property
    def ctr_interval(self) -> tuple[float, float]:
        return wilson(self.clicks, self.impressions)

    @property
    def ecpm(self) -> float:
        """USD per thousand impressions."""
        return self.spend_micros / self.impressions / 1000 if self.impressions else 0.0

    @property
    def ecpc(self) -> float:
        """USD per click."""
        return self.spend_micros / self.clicks / 1_000_000 if self.clicks else 0.0

    def add(self, metric: str, value: int) -> None:
        if metric == "spend":
            self.spend_micros += value
        elif metric == "conversion_value":
            self.conversion_value_micros += value
        elif metric in _COUNTED:
            setattr(self, metric, getattr(self, metric) + value)

    def add_row(self, other: Row) -> None:
        for metric in _COUNTED:
            setattr(self, metric, getattr(self, metric) + getattr(other, metric))
        self.spend_micros += other.spend_micros
        self.conversion_value_micros += other.conversion_value_micros


_COUNTED = (
    "bids", "wins", "losses", "impressions", "clicks", "invalid_clicks",
    "click_conversions", "view_conversions",
)  # fmt: skip


def _key(by: Sequence[str], campaign: str, creative: str, hour: str, tag: str) -> tuple[str, ...]:
    values = {"campaign": campaign, "creative": creative, "day": hour[:8], "hour": hour, "tag": tag}
    return tuple(values[dimension] for dimension in by)


async def catch_up(redis: Redis, max_s: float | None = None) -> None:
    """Count what waits in the event stream (for at most ``max_s`` seconds)."""
    aggregator = Aggregator(redis, consumer=REPORT_CONSUMER)
    await aggregator.ensure_group()
    deadline = None if max_s is None else time.monotonic() + max_s
    while await aggregator.step():
        if deadline is not None and time.monotonic() > deadline:
            break


async def build_report(
    redis: Redis,
    by: Sequence[str] = ("campaign",),
    campaign_ids: Collection[str] | None = None,
    *,
    current: bool = True,
    catch_up_s: float | None = 5.0,
) -> list[Row]:
    """Rows grouped by ``by`` (a subset of DIMENSIONS, in that order), sorted by key.

    ``campaign_ids`` restricts the report to those campaigns (an advertiser's own);
    ``current`` counts the events still in the stream first (for at most ``catch_up_s``).
    """
    if current:
        await catch_up(redis, catch_up_s)
    _, campaigns = await load_campaigns(redis)
    names = {campaign.id: campaign.name for campaign in campaigns}
    members = await redis.smembers(keys.event_campaigns())
    counted = {c.decode() if isinstance(c, bytes) else str(c) for c in members}
    ids = sorted(set(names) | counted)
    if campaign_ids is not None:
        ids = [campaign_id for campaign_id in ids if campaign_id in campaign_ids]
    async with redis.pipeline(transaction=False) as pipe:
        for campaign_id in ids:
            pipe.smembers(keys.event_hours(campaign_id))
        hour_sets = await pipe.execute()
    cells = [
        (campaign_id, hour.decode())
        for campaign_id, hours in zip(ids, hour_sets, strict=True)
        for hour in sorted(hours)
    ]
    async with redis.pipeline(transaction=False) as pipe:
        for campaign_id, hour in cells:
            pipe.hgetall(keys.event_counts(campaign_id, hour))
        stats = await pipe.execute()
    by_tag = "tag" in by
    rows: dict[tuple[str, ...], Row] = {}
    for (campaign_id, hour), counters in zip(cells, stats, strict=True):
        for raw_field, raw_value in counters.items():
            creative, tag, metric = raw_field.decode().split("|")
            if (tag == ALL_TAGS) == by_tag:
                continue
            key = _key(by, campaign_id, creative, hour, tag)
            row = rows.get(key)
            if row is None:
                row = rows[key] = Row(key)
            row.add(metric, int(raw_value))
    result = sorted(rows.values(), key=lambda row: _sort_key(row.key, by))
    if by and by[0] == "campaign":
        for row in result:
            row.name = names.get(row.key[0], "")
    return result


def _sort_key(key: tuple[str, ...], by: Sequence[str]) -> tuple[tuple[int, str], ...]:
    # Tags sort by number, "-" (no tag) last; everything else as text.
    parts = []
    for dimension, value in zip(by, key, strict=True):
        if dimension == "tag":
            parts.append((int(value), "") if value.isdigit() else (1 << 62, value))
        else:
            parts.append((0, value))
    return tuple(parts)


def tag_label(tag: str, taxonomy: Taxonomy | None) -> str:
    if tag == NO_TAG or taxonomy is None or not tag.isdigit():
        return "(no tag)" if tag == NO_TAG else ""
    try:
        return taxonomy.tag(int(tag)).code
    except (DmpError, KeyError):
        return ""


def records(
    rows: Sequence[Row], by: Sequence[str], taxonomy: Taxonomy | None = None
) -> list[dict[str, object]]:
    """One flat record per row: the dimensions, then every figure."""
    found = []
    for row in rows:
        record: dict[str, object] = dict(zip(by, row.key, strict=True))
        if row.name:
            record["name"] = row.name
        if "tag" in by and taxonomy is not None:
            record["tag_code"] = tag_label(row.key[by.index("tag")], taxonomy)
        low, high = row.ctr_interval
        record.update(
            bids=row.bids,
            wins=row.wins,
            impressions=row.impressions,
            clicks=row.clicks,
            invalid_clicks=row.invalid_clicks,
            ctr=round(row.ctr, 6),
            ctr_low=round(low, 6),
            ctr_high=round(high, 6),
            spend_usd=round(row.spend_micros / 1_000_000, 6),
            ecpm_usd=round(row.ecpm, 4),
            ecpc_usd=round(row.ecpc, 4),
        )
        record.update(conversion_figures(row))
        found.append(record)
    return found


def conversion_figures(row: Row) -> dict[str, object]:
    """issue 12: a row's conversion figures, appended after the CTR report's."""
    click_low, click_high = wilson(row.click_conversions, row.clicks)
    imp_low, imp_high = wilson(row.conversions, row.impressions)
    return {
        "conversions": row.conversions,
        "click_conversions": row.click_conversions,
        "view_conversions": row.view_conversions,
        "conversion_value_usd": round(row.conversion_value_micros / 1_000_000, 6),
        "cvr_click": round(row.cvr_click, 6),
        "cvr_click_low": round(click_low, 6),
        "cvr_click_high": round(click_high, 6),
        "cvr_imp": round(row.cvr_imp, 6),
        "cvr_imp_low": round(imp_low, 6),
        "cvr_imp_high": round(imp_high, 6),
        "cpa_usd": round(row.cpa, 4),
        "roas": round(row.roas, 4),
    }


def total(rows: Sequence[Row], width: int) -> Row:
    summed = Row(key=("TOTAL",) + ("",) * (width - 1))
    for row in rows:
        summed.add_row(row)
    return summed


_EMPTY_COLUMNS = ("impressions", "clicks", "ctr", "ctr_low", "ctr_high")


def format_report(
    rows: Sequence[Row], by: Sequence[str], fmt: str = "table", taxonomy: Taxonomy | None = None
) -> str:
    """The report as ``table`` (with a total line, unless by tag), ``csv`` or ``json``."""
    found = records(rows, by, taxonomy)
    if fmt == "json":
        return orjson.dumps(found, option=orjson.OPT_INDENT_2).decode()
    if fmt == "csv":
        buffer = io.StringIO()
        columns = list(found[0]) if found else [*by, *_EMPTY_COLUMNS]
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(found)
        return buffer.getvalue()
    if rows and by and "tag" not in by:  # tag rows overlap: their sum is no total
        found += records([total(rows, len(by))], by)
    return _table(found)


def _cell(name: str, value: object) -> str:
    if name.startswith(("ctr", "cvr")) and isinstance(value, float):
        return f"{value:.3%}"
    if isinstance(value, float):
        return f"{value:,.4f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _table(found: list[dict[str, object]]) -> str:
    if not found:
        return "(no events yet)"
    columns = list(dict.fromkeys(name for record in found for name in record))
    cells = [[_cell(name, record.get(name, "")) for name in columns] for record in found]
    widths = [max(len(name), *(len(row[i]) for row in cells)) for i, name in enumerate(columns)]
    lines = ["  ".join(name.ljust(width) for name, width in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
