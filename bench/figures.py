"""The figures of one benchmark run: printed as they are measured, then tabled and saved."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import orjson

UNIX_TIME_FIELD = "bench_unix_time"


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    value: float
    unit: str
    note: str


def _rounded(value: float) -> float | int:
    """Four significant digits at least, never rounding a large figure to a coarser unit."""
    if value.is_integer():
        return int(value)
    if abs(value) >= 1000:
        return round(value, 1)
    return float(f"{value:.4g}")


def _shown(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


class Figures:
    """Figures by name, in the order they were measured; the last value of a name wins."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out if out is not None else sys.stdout
        self._figures: dict[str, Figure] = {}

    def add(self, name: str, value: float, unit: str = "", note: str = "") -> float:
        figure = Figure(name, float(value), unit, note)
        self._figures[name] = figure
        self.say(f"  {name:<28} {_shown(figure.value):>12} {unit:<10} {note}".rstrip())
        return figure.value

    def say(self, message: str) -> None:
        print(message, file=self._out, flush=True)

    def values(self) -> dict[str, float | int]:
        return {name: _rounded(figure.value) for name, figure in self._figures.items()}

    def table(self) -> str:
        """A plain-text table of every figure of the run."""
        rows = [("figure", "value", "unit")]
        rows += [(f.name, _shown(f.value), f.unit) for f in self._figures.values()]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c}".rstrip() for a, b, c in rows]
        lines.insert(1, "-" * len(lines[0]))
        return "\n".join(lines)

    def write_json(self, path: Path, now: float | None = None) -> dict[str, float | int]:
        """This run's figures and the time of the run, replacing whatever ``path`` held."""
        data = {**self.values(), UNIX_TIME_FIELD: round(time.time() if now is None else now)}
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
        os.replace(partial, path)
        return data
