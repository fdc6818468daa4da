"""Even pacing against a simulated day, the controller on its own, and ``dsp pacing-sim``."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from dsp.budget.pacing import PacingController, PacingPlan
from dsp.budget.pacing_cli import add_pacing_command
from dsp.budget.simulation import DayConfig, simulate_day
from dsp.campaigns.model import Pacing


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_even_pacing_follows_the_plan_hour_by_hour_and_spends_the_budget(seed: int) -> None:
    day = simulate_day(DayConfig(seed=seed))
    held = [hour for hour in day.hours if hour.enough_traffic]
    assert len(held) >= 20
    assert all(abs(hour.error) <= 0.15 for hour in held), [round(h.error, 3) for h in held]
    assert 0.98 <= day.spent_share <= 1.0


@pytest.mark.parametrize(
    "change",
    [
        {"traffic_shift_h": 3.0},  # the day runs three hours behind the forecast
        {"traffic_noise": 0.3},  # traffic far noisier than forecast
        {"traffic_multiple": 1.5},  # some hours cannot buy their plan: others make it up
        {"report_delay_steps": 6},  # spend seen a minute late
    ],
    ids=["shifted", "noisy", "scarce", "delayed"],
)
def test_even_pacing_holds_when_the_day_differs_from_the_forecast(change: dict[str, Any]) -> None:
    day = simulate_day(dataclasses.replace(DayConfig(seed=4), **change))
    assert day.worst_error() <= 0.15
    assert 0.98 <= day.spent_share <= 1.0


def test_asap_spends_as_fast_as_traffic_allows_then_stops() -> None:
    day = simulate_day(DayConfig(pacing=Pacing.ASAP, seed=1))
    assert 0.999 <= day.spent_share <= 1.0
    first_hours = day.hours[:12]
    assert sum(hour.spent_micros for hour in first_hours) == day.spent_micros
    assert set(day.step_probability) == {1.0}


def test_the_controller_is_feedback_it_tracks_a_change_in_traffic() -> None:
    """Twice the traffic from noon: the probability halves, the spend rate stays on plan."""
    controller = PacingController(plan=PacingPlan.flat())
    budget, spent, step = 86_400_000, 0, 10.0  # plan: 1,000 micros a second, all day
    seconds = 0.0
    before = after = 0.0
    while seconds < 86_400 * 0.75:
        capacity = 4_000 if seconds < 43_200 else 8_000  # micros a second at full bidding
        spent += round(controller.update(seconds, spent, budget) * capacity * step)
        seconds += step
        if seconds == 43_200:
            before = controller.probability
        after = controller.probability
    assert before == pytest.approx(0.25, rel=0.05)
    assert after == pytest.approx(0.125, rel=0.05)
    assert spent == pytest.approx(budget * 0.75, rel=0.01)


def test_the_plan_follows_the_forecast_and_adds_up_to_the_budget() -> None:
    plan = PacingPlan.diurnal()
    hourly = plan.hourly_micros(123_456_789)
    assert sum(hourly) == 123_456_789 and len(hourly) == 24
    assert hourly.index(max(hourly)) == 20 and hourly.index(min(hourly)) == 4
    assert plan.share_by(0) == 0 and plan.share_by(86_400) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        PacingPlan((1.0,) * 23)


def test_pacing_sim_prints_the_hourly_plan_against_spend_and_draws_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="dsp")
    add_pacing_command(parser.add_subparsers(dest="command"))
    chart = tmp_path / "pacing.png"
    args = parser.parse_args(["pacing-sim", "--png", str(chart), "--seed", "2"])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.split() and line.split()[0].isdigit()]
    assert len(rows) == 24
    assert "of the daily budget" in out and "largest hourly deviation" in out
    assert chart.read_bytes().startswith(b"\x89PNG")
