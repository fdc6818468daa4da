"""Reverse analysis: what sets a list of devices apart from the whole population.

For every dimension, category and tag: how many of the analysed devices hold it (count),
their fraction of the analysed devices (share), the same fraction over the population, and
the lift, share / population share (above 1: over-represented in the list). Given as a
dict for JSON, a text table (dimensions and categories) and a PNG chart of the categories
of highest lift.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dmp.audience_index import AudienceIndex, Mask, popcount

LEVELS = (("dimension", "dimensions"), ("category", "categories"), ("tag", "tags"))
DEFAULT_TOP = 20


@dataclass(frozen=True, slots=True)
class Share:
    """One dimension, category or tag among the analysed devices and the population."""

    level: str
    code: str
    count: int
    share: float
    population_count: int
    population_share: float
    lift: float | None  # None when nobody in the population holds it or nothing was analysed

    def to_dict(self) -> dict[str, object]:
        return {
            "level": self.level,
            "code": self.code,
            "count": self.count,
            "share": self.share,
            "population_count": self.population_count,
            "population_share": self.population_share,
            "lift": self.lift,
        }


@dataclass(frozen=True, slots=True)
class Analysis:
    """Devices given, found in the DMP (``analysed``) and in it overall, and the shares."""

    given: int
    analysed: int
    population: int
    rows: tuple[Share, ...]

    def level(self, level: str) -> list[Share]:
        return [row for row in self.rows if row.level == level]

    def row(self, code: str) -> Share:
        for row in self.rows:
            if row.code == code:
                return row
        raise KeyError(code)

    def to_dict(self) -> dict[str, object]:
        """``{"given", "analysed", "population", "dimensions": [...], "categories": [...],
        "tags": [...]}``, each row a dict of ``Share``'s fields."""
        return {
            "given": self.given,
            "analysed": self.analysed,
            "population": self.population,
            **{plural: [row.to_dict() for row in self.level(level)] for level, plural in LEVELS},
        }


def _share(level: str, code: str, count: int, analysed: int, held: int, population: int) -> Share:
    share = count / analysed if analysed else 0.0
    population_share = held / population if population else 0.0
    lift = share / population_share if population_share and analysed else None
    return Share(level, code, count, share, held, population_share, lift)


def analyse_mask(index: AudienceIndex, mask: Mask, given: int) -> Analysis:
    """The analysis of the devices of ``mask``; ``given`` is how many IDs were asked about."""
    taxonomy = index.taxonomy
    analysed, population = popcount(mask), index.devices
    rows: list[Share] = []
    groups = [("dimension", d) for d in taxonomy.dimensions()]
    groups += [("category", c) for c in taxonomy.categories()]
    groups += [("tag", t.code) for t in taxonomy.tags]
    for level, code in groups:
        held = index.any_of(taxonomy.resolve(code))
        count = popcount(held & mask)
        rows.append(_share(level, code, count, analysed, popcount(held), population))
    return Analysis(given, analysed, population, tuple(rows))


async def analyse(index: AudienceIndex, digests: Iterable[bytes]) -> Analysis:
    """The analysis of devices given by their 8-byte primary digests (unknown ones skipped)."""
    packed = b"".join(dict.fromkeys(digests))
    return analyse_mask(index, index.mask_of(packed), given=len(packed) // 8)


# --- presentation ----------------------------------------------------------------------


def _percent(value: float) -> str:
    return f"{value:.1%}"


def _lift(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_table(analysis: Analysis) -> str:
    """Dimensions, each followed by its categories (indented): devices, shares and lift."""
    header = ("code", "devices", "share", "population", "lift")
    lines: list[tuple[str, ...]] = []
    categories = analysis.level("category")
    for dimension in analysis.level("dimension"):
        for row in [dimension, *(c for c in categories if c.code.startswith(dimension.code + "."))]:
            indent = "" if row.level == "dimension" else "  "
            lines.append(
                (
                    indent + row.code,
                    f"{row.count:,}",
                    _percent(row.share),
                    _percent(row.population_share),
                    _lift(row.lift),
                )
            )
    widths = [max(len(line[i]) for line in (header, *lines)) for i in range(len(header))]

    def cells(values: Sequence[str]) -> str:
        first = values[0].ljust(widths[0])
        return "  ".join(
            [first, *(v.rjust(w) for v, w in zip(values[1:], widths[1:], strict=True))]
        )

    title = (
        f"{analysis.analysed:,} of {analysis.given:,} devices found in the DMP "
        f"({analysis.population:,} devices in all)"
    )
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([title, "", cells(header), rule, *(cells(line) for line in lines)])


def write_png(analysis: Analysis, path: Path, top: int = DEFAULT_TOP) -> int:
    """A bar chart of the ``top`` categories by lift, each bar labelled with its share.

    Returns how many categories it shows (those the analysed devices hold at all).
    """
    shown = sorted(
        (row for row in analysis.level("category") if row.count and row.lift is not None),
        key=lambda row: (-(row.lift or 0.0), row.code),
    )[:top]
    figure = Figure(figsize=(9, 1.6 + 0.32 * max(1, len(shown))), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    labels = [row.code for row in reversed(shown)]
    lifts = [row.lift or 0.0 for row in reversed(shown)]
    colours = ["#4c72b0" if lift >= 1 else "#a0a0a0" for lift in lifts]
    bars = axes.barh(labels, lifts, color=colours)
    shares = [f"share {_percent(row.share)}" for row in reversed(shown)]
    axes.bar_label(bars, labels=shares, padding=3)
    axes.axvline(1.0, color="#c44e52", linestyle="--", linewidth=1)
    axes.set_xlabel("lift (share among the analysed devices / share in the population)")
    axes.set_title(
        f"Top {len(shown)} categories by lift: {analysis.analysed:,} devices "
        f"of {analysis.population:,}"
    )
    axes.margins(x=0.15)
    figure.savefig(path, format="png", dpi=100)
    return len(shown)
