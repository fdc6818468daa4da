"""The benchmark harness end to end on tiny inputs: figures come out and land in the file."""

from __future__ import annotations

import io
import math
from pathlib import Path

import orjson
import pytest

from bench.cli import main, select
from bench.client import http_post
from bench.figures import UNIX_TIME_FIELD, Figures
from bench.host import CpuTimes, steal_fraction
from bench.loadgen import LoadGenerator, pooled
from bench.servers import run_canned, server_process
from bench.targeting import FIGURES, run_targeting


def test_targeting_group_writes_positive_figures(tmp_path: Path) -> None:
    out = io.StringIO()
    figures = Figures(out)
    run_targeting(figures, small=20, large=200, population=200, requests=300, repeats=2)
    path = tmp_path / "bench-results.json"
    figures.write_json(path)

    saved = orjson.loads(path.read_bytes())
    assert set(saved) == {*FIGURES, UNIX_TIME_FIELD}
    for name in FIGURES:
        value = saved[name]
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, name
        assert name in out.getvalue()
    assert "targeting_us_10k_campaigns" in figures.table()


def test_only_picks_groups_by_group_or_figure_name() -> None:
    assert [g.name for g in select("bid_p99_ms,targeting")] == ["targeting", "bid"]
    assert [g.name for g in select(None)] == ["targeting", "dmp", "audience", "bid", "events"]
    assert [g.name for g in select("audience_size_ms")] == ["audience"]
    with pytest.raises(ValueError, match="nonsense"):
        select("nonsense")


def test_unknown_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--only", "nonsense"])
    assert exit_info.value.code == 2
    assert "unknown benchmark or figure: nonsense" in capsys.readouterr().err


def test_load_generator_closed_and_open_loop_against_canned_server() -> None:
    requests = [http_post(b'{"id":"1"}'), http_post(b'{"id":"2","imp":[]}')]
    with server_process(run_canned) as port, LoadGenerator(requests, workers=2) as generator:
        closed = generator.run(port, connections=4, warmup_s=0.2, duration_s=0.5)
        paced = generator.run(port, connections=4, rate=200, warmup_s=0.2, duration_s=0.5)

    assert closed.rps > 100 and closed.errors == 0
    assert closed.answered == closed.ok == len(closed.latencies_ms) and closed.bids == 0
    assert 80 <= paced.due <= 120 and paced.errors == 0 and paced.dropped == 0
    assert paced.late_fraction < 0.5 and paced.percentile_ms(50) < 100
    # Timed from when the generator issued each request, never more than from when it fell due
    assert len(paced.issued_ms) == len(paced.latencies_ms) == paced.answered
    assert (paced.issued_ms <= paced.latencies_ms + 1e-9).all()
    both = pooled([closed, paced])
    assert both.answered == closed.answered + paced.answered
    assert sorted(both.latencies_ms) == sorted([*closed.latencies_ms, *paced.latencies_ms])


def test_steal_is_the_hypervisor_s_share_of_all_cpu_time() -> None:
    before = CpuTimes((100, 0, 50, 800, 0, 0, 0, 10, 0, 0))
    after = CpuTimes((160, 0, 70, 900, 0, 0, 0, 30, 5, 0))  # guest time is inside user time
    assert steal_fraction(before, after) == pytest.approx(20 / 200)
    assert math.isnan(steal_fraction(CpuTimes(()), after))
    assert CpuTimes.now().ticks == () or len(CpuTimes.now().ticks) >= 8
