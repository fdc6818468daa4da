"""The ``events`` benchmark on a tiny stream: it counts everything and writes its figures."""

from __future__ import annotations

import io
from pathlib import Path

import orjson

from bench.cli import main
from bench.events import FIGURES, run_events
from bench.figures import Figures


def test_events_group_aggregates_a_small_stream_and_writes_positive_figures(
    tmp_path: Path,
) -> None:
    out = io.StringIO()
    figures = Figures(out)
    run_events(figures, count=20_000, seed=3)  # raises if a count differs from the generator's
    path = tmp_path / "bench-results.json"
    saved = figures.write_json(path)
    assert all(saved[name] > 0 for name in FIGURES)
    assert "aggregate_events_per_s" in out.getvalue()


def test_only_events_runs_from_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    assert main(["--only", "events", "--events", "5000", "--output", str(path)]) == 0
    assert set(orjson.loads(path.read_bytes())) >= set(FIGURES)
