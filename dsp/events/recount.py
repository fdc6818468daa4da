"""Recount an archive from its files alone: the check on the aggregator and the report.

Deliberately shares nothing with the counting path: the standard library's gzip and json,
plain dictionaries, its own hour arithmetic and its own Wilson interval. The figures it
prints must equal the report's for the same events.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from statistics import NormalDist

# campaign, creative, hour (YYYYMMDDHH), tag: "*" every event once, "-" events with no tag
Key = tuple[str, str, str, str]
_METRIC = {
    "bid": "bids",
    "win": "wins",
    "bill": "bills",
    "loss": "losses",
    "imp": "impressions",
    "click": "clicks",
    "invalid_click": "invalid_clicks",
    "conversion": "click_conversions",  # issue 12
    "view_conversion": "view_conversions",
}
_Z = NormalDist().inv_cdf(0.975)


def recount(directory: Path) -> dict[Key, dict[str, int]]:
    """Counts per campaign, creative, hour and matched tag (and "*": all), from the files."""
    counts: dict[Key, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for path in sorted(directory.glob("events-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                if not line.strip():
                    continue
                event = json.loads(line)
                metric = _METRIC.get(event.get("type", ""))
                if metric is None:
                    continue
                when = datetime.fromtimestamp(event["ts"] // 1000, tz=UTC)
                hour = f"{when.year:04d}{when.month:02d}{when.day:02d}{when.hour:02d}"
                tags = [str(tag) for tag in event.get("tags") or []] or ["-"]
                spend = event.get("price", 0) if event["type"] in ("win", "bill") else 0
                value = event.get("price", 0) if metric.endswith("_conversions") else 0
                for tag in ["*", *tags]:
                    figures = counts[(event["campaign"], event.get("creative", ""), hour, tag)]
                    figures[metric] += 1
                    figures["spend"] += spend
                    figures["conversion_value"] += value
    return counts


def _interval(clicks: int, impressions: int) -> tuple[float, float]:
    if impressions <= 0:
        return 0.0, 1.0
    p = clicks / impressions
    z2 = _Z * _Z
    denominator = 1 + z2 / impressions
    center = (p + z2 / (2 * impressions)) / denominator
    half = (
        _Z * math.sqrt(p * (1 - p) / impressions + z2 / (4 * impressions * impressions))
    ) / denominator
    return max(0.0, center - half), min(1.0, center + half)


def _conversion_figures(figures: dict[str, int]) -> dict[str, object]:
    """issue 12: the conversion columns, computed here on their own like the rest."""
    by_click, by_view = figures["click_conversions"], figures["view_conversions"]
    conversions, value, spend = by_click + by_view, figures["conversion_value"], figures["spend"]
    clicks, impressions = figures["clicks"], figures["impressions"]
    click_low, click_high = _interval(by_click, clicks)
    imp_low, imp_high = _interval(conversions, impressions)
    return {
        "conversions": conversions,
        "click_conversions": by_click,
        "view_conversions": by_view,
        "conversion_value_usd": round(value / 1_000_000, 6),
        "cvr_click": round(by_click / clicks if clicks else 0.0, 6),
        "cvr_click_low": round(click_low, 6),
        "cvr_click_high": round(click_high, 6),
        "cvr_imp": round(conversions / impressions if impressions else 0.0, 6),
        "cvr_imp_low": round(imp_low, 6),
        "cvr_imp_high": round(imp_high, 6),
        "cpa_usd": round(spend / conversions / 1_000_000 if conversions else 0.0, 4),
        "roas": round(value / spend if spend else 0.0, 4),
    }


def _order(key: tuple[str, ...], by: tuple[str, ...]) -> tuple[tuple[int, str], ...]:
    return tuple(
        ((int(value), "") if value.isdigit() else (1 << 62, value)) if name == "tag" else (0, value)
        for name, value in zip(by, key, strict=True)
    )


def recount_table(counts: dict[Key, dict[str, int]], by: tuple[str, ...]) -> str:
    """The recount as tab-separated lines, a header first."""
    rows = recount_rows(counts, by)
    if not rows:
        return "(no events archived)"
    columns = list(rows[0])
    return "\n".join(["\t".join(columns)] + ["\t".join(str(r[c]) for c in columns) for r in rows])


def recount_rows(counts: dict[Key, dict[str, int]], by: tuple[str, ...]) -> list[dict[str, object]]:
    """Report-shaped records. Without ``tag`` in ``by``, an event counts once (not per tag)."""
    grouped: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    per_tag = "tag" in by
    for (campaign, creative, hour, tag), figures in counts.items():
        if (tag == "*") == per_tag:
            continue
        values = {"campaign": campaign, "creative": creative, "day": hour[:8], "hour": hour}
        values["tag"] = tag
        key = tuple(values[name] for name in by)
        for metric, value in figures.items():
            grouped[key][metric] += value
    rows = []
    for key, figures in sorted(grouped.items(), key=lambda item: _order(item[0], by)):
        impressions, clicks, spend = figures["impressions"], figures["clicks"], figures["spend"]
        low, high = _interval(clicks, impressions)
        record: dict[str, object] = dict(zip(by, key, strict=True))
        record.update(
            bids=figures["bids"],
            wins=figures["wins"],
            impressions=impressions,
            clicks=clicks,
            invalid_clicks=figures["invalid_clicks"],
            ctr=round(clicks / impressions if impressions else 0.0, 6),
            ctr_low=round(low, 6),
            ctr_high=round(high, 6),
            spend_usd=round(spend / 1_000_000, 6),
            ecpm_usd=round(spend / impressions / 1000 if impressions else 0.0, 4),
            ecpc_usd=round(spend / clicks / 1_000_000 if clicks else 0.0, 4),
        )
        record.update(_conversion_figures(figures))
        rows.append(record)
    return rows
