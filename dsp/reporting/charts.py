"""The report's PNG: CTR hour by hour with its 95 % interval band, and CTR by tag."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from dmp.taxonomy import Taxonomy
from dsp.reporting.report import Row, tag_label

MAX_TAGS = 20  # the tags with most impressions; a chart of hundreds of bars reads as noise


def plot_ctr(
    by_hour: Sequence[Row],
    by_tag: Sequence[Row],
    path: Path,
    *,
    title: str = "",
    taxonomy: Taxonomy | None = None,
) -> None:
    """``by_hour`` rows keyed (hour,), ``by_tag`` rows keyed (tag,)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 8), layout="constrained")
    FigureCanvasAgg(figure)
    over_time, per_tag = figure.subplots(2, 1, height_ratios=(1, 1))
    hours = [datetime.strptime(row.key[0], "%Y%m%d%H").replace(tzinfo=UTC) for row in by_hour]
    ctr = [100 * row.ctr for row in by_hour]
    low = [100 * row.ctr_interval[0] for row in by_hour]
    high = [100 * row.ctr_interval[1] for row in by_hour]
    if hours:
        over_time.fill_between(hours, low, high, step="mid", color="#4c72b0", alpha=0.25,
                               label="95 % interval (Wilson)")  # fmt: skip
        over_time.step(hours, ctr, where="mid", color="#4c72b0", label="CTR")
        over_time.plot(hours, ctr, "o", color="#4c72b0", markersize=3)
        over_time.legend(loc="upper left")
    over_time.set_ylabel("CTR %")
    over_time.set_title(f"{title}: CTR by hour (UTC)" if title else "CTR by hour (UTC)")
    over_time.set_ylim(bottom=0)
    shown = sorted(by_tag, key=lambda row: -row.impressions)[:MAX_TAGS]
    shown.sort(key=lambda row: -row.ctr)
    labels = [tag_label(row.key[0], taxonomy) or row.key[0] for row in shown]
    values = [100 * row.ctr for row in shown]
    errors = [
        [100 * (row.ctr - row.ctr_interval[0]) for row in shown],
        [100 * (row.ctr_interval[1] - row.ctr) for row in shown],
    ]
    if shown:
        positions = range(len(shown))
        per_tag.barh(positions, values, xerr=errors, color="#55a868", ecolor="#333333",
                     capsize=2)  # fmt: skip
        per_tag.set_yticks(list(positions), labels, fontsize=8)
        per_tag.invert_yaxis()
    per_tag.set_xlabel("CTR % (bars: 95 % interval)")
    per_tag.set_title(f"CTR by matched tag (the {MAX_TAGS} with most impressions)")
    per_tag.set_xlim(left=0)
    figure.savefig(path, dpi=100)
