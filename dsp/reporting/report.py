"""The CTR report: counters kept by the tracking ledger, grouped by the dimensions asked for."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import orjson
from redis.asyncio import Redis

from dsp.campaigns.store import load_campaigns
from infra import keys

DIMENSIONS = ("campaign", "creative", "day", "hour")
_METRICS = ("win", "imp", "click", "spend")


@dataclass(slots=True)
class Row:
    key: tuple[str, ...]
    wins: int = 0
    impressions: int = 0
    clicks: int = 0
    spend_micros: int = 0
    name: str = field(default="")

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0

    @property
    def ecpm(self) -> float:
        """USD per thousand impressions."""
        return self.spend_micros / self.impressions / 1000 if self.impressions else 0.0

    @property
    def ecpc(self) -> float:
        """USD per click."""
        return self.spend_micros / self.clicks / 1_000_000 if self.clicks else 0.0

    def add(self, metric: str, value: int) -> None:
        if metric == "win":
            self.wins += value
        elif metric == "imp":
            self.impressions += value
        elif metric == "click":
            self.clicks += value
        elif metric == "spend":
            self.spend_micros += value


def _key(by: Sequence[str], campaign: str, creative: str, hour: str) -> tuple[str, ...]:
    values = {"campaign": campaign, "creative": creative, "day": hour[:8], "hour": hour}
    return tuple(values[dimension] for dimension in by)


async def build_report(
    redis: Redis, by: Sequence[str] = ("campaign",), campaign_ids: Collection[str] | None = None
) -> list[Row]:
    """Rows grouped by ``by`` (a subset of DIMENSIONS, in that order), sorted by key.

    ``campaign_ids`` restricts the report to those campaigns (an advertiser's own).
    """
    _, campaigns = await load_campaigns(redis)
    if campaign_ids is not None:
        campaigns = [campaign for campaign in campaigns if campaign.id in campaign_ids]
    names = {campaign.id: campaign.name for campaign in campaigns}
    async with redis.pipeline(transaction=False) as pipe:
        for campaign in campaigns:
            pipe.hgetall(keys.campaign_stats(campaign.id))
        stats = await pipe.execute()
    rows: dict[tuple[str, ...], Row] = {}
    for campaign, counters in zip(campaigns, stats, strict=True):
        for raw_field, raw_value in counters.items():
            hour, creative, metric = raw_field.decode().split("|")
            key = _key(by, campaign.id, creative, hour)
            row = rows.setdefault(key, Row(key))
            row.add(metric, int(raw_value))
    result = sorted(rows.values(), key=lambda row: row.key)
    if by and by[0] == "campaign":
        for row in result:
            row.name = names.get(row.key[0], "")
    return result


def _records(rows: Sequence[Row], by: Sequence[str]) -> list[dict[str, object]]:
    records = []
    for row in rows:
        record: dict[str, object] = dict(zip(by, row.key, strict=True))
        if row.name:
            record["name"] = row.name
        record.update(
            wins=row.wins,
            impressions=row.impressions,
            clicks=row.clicks,
            ctr=round(row.ctr, 6),
            spend_usd=round(row.spend_micros / 1_000_000, 6),
            ecpm_usd=round(row.ecpm, 4),
            ecpc_usd=round(row.ecpc, 4),
        )
        records.append(record)
    return records


def _total(rows: Sequence[Row], width: int) -> Row:
    total = Row(key=("TOTAL",) + ("",) * (width - 1))
    for row in rows:
        total.wins += row.wins
        total.impressions += row.impressions
        total.clicks += row.clicks
        total.spend_micros += row.spend_micros
    return total


def format_report(rows: Sequence[Row], by: Sequence[str], fmt: str = "table") -> str:
    """The report as ``table`` (with a total line), ``csv`` or ``json``."""
    records = _records(rows, by)
    if fmt == "json":
        return orjson.dumps(records, option=orjson.OPT_INDENT_2).decode()
    if fmt == "csv":
        buffer = io.StringIO()
        columns = list(records[0]) if records else [*by, "impressions", "clicks", "ctr"]
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return buffer.getvalue()
    if rows and by:
        records += _records([_total(rows, len(by))], by)
    return _table(records)


def _cell(name: str, value: object) -> str:
    if name == "ctr" and isinstance(value, float):
        return f"{value:.3%}"
    if isinstance(value, float):
        return f"{value:,.4f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _table(records: list[dict[str, object]]) -> str:
    if not records:
        return "(no events yet)"
    columns = list(dict.fromkeys(name for record in records for name in record))
    cells = [[_cell(name, record.get(name, "")) for name in columns] for record in records]
    widths = [max(len(name), *(len(row[i]) for row in cells)) for i, name in enumerate(columns)]
    lines = ["  ".join(name.ljust(width) for name, width in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
