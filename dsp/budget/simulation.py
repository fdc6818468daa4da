"""A simulated day on an accelerated clock: the pacing controller against synthetic traffic.

Nothing sleeps. The day is cut into steps of ``step_s`` simulated seconds; each step draws
the requests the campaign could bid on (a diurnal curve that differs from the controller's
forecast: shifted, noisy, with a win rate that drifts over the day), bids on each with the
controller's probability while the budget has money for the bid, draws the wins and their
second-price clearing prices, and reports the charges to the controller one step late, as
notices and the refresher would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dsp.budget.days import DAY_S, max_cost_micros
from dsp.budget.pacing import DIURNAL, PacingController, PacingPlan
from dsp.campaigns.model import Pacing

# Clearing prices of a second-price auction, as a share of our bid: uniform in this range.
CLEARING_RANGE = (0.4, 1.0)


@dataclass(frozen=True, slots=True)
class DayConfig:
    """One simulated day of one campaign.

    ``traffic_multiple`` is what the day's traffic could buy at full bidding, in budgets: 1
    means the campaign must win every auction it can to spend its budget.
    """

    budget_micros: int = 500_000_000
    cpm_micros: int = 2_000_000
    pacing: Pacing = Pacing.EVEN
    traffic_multiple: float = 3.0
    forecast: tuple[float, ...] = DIURNAL
    traffic_shift_h: float = 1.0  # the day's real curve lags the forecast by this much
    traffic_noise: float = 0.15  # hour-to-hour deviation of traffic from the shifted curve
    win_rate: float = 0.3  # mean share of bids won; it drifts +-30 % over the day
    step_s: float = 10.0
    report_delay_steps: int = 1
    seed: int = 1

    def __post_init__(self) -> None:
        if self.budget_micros <= 0 or self.cpm_micros <= 0 or self.traffic_multiple <= 0:
            raise ValueError("budget, CPM and traffic must be positive")
        if not 0 < self.step_s <= 3600 or 3600 % self.step_s:
            raise ValueError("step_s must divide an hour")


@dataclass(frozen=True, slots=True)
class HourResult:
    hour: int
    plan_micros: int
    spent_micros: int
    potential_micros: int  # what bidding on every request would have spent
    probability: float  # mean bid probability over the hour

    @property
    def error(self) -> float:
        """Relative deviation of the spend from the plan."""
        return (self.spent_micros - self.plan_micros) / self.plan_micros if self.plan_micros else 0

    @property
    def enough_traffic(self) -> bool:
        """Whether the hour's traffic could have bought its plan with room to spare."""
        return self.potential_micros >= 1.25 * self.plan_micros


@dataclass(frozen=True, slots=True)
class DayResult:
    config: DayConfig
    hours: tuple[HourResult, ...]
    spent_micros: int
    step_hours: tuple[float, ...] = field(repr=False)  # time of each step, hours after midnight
    step_probability: tuple[float, ...] = field(repr=False)

    @property
    def spent_share(self) -> float:
        return self.spent_micros / self.config.budget_micros

    def worst_error(self) -> float:
        """The largest relative deviation from plan over the hours with enough traffic."""
        return max((abs(h.error) for h in self.hours if h.enough_traffic), default=0.0)


@dataclass(slots=True)
class _Hour:
    spent: int = 0
    potential: float = 0.0
    probability: float = 0.0
    steps: int = 0


def _curve(config: DayConfig, rng: np.random.Generator) -> np.ndarray:
    """Requests per second for each hour: the forecast, shifted, with noise."""
    weights = np.asarray(PacingPlan(config.forecast).weights)
    hours = np.arange(24)
    shifted = np.interp(hours - config.traffic_shift_h, hours, weights, period=24)
    noisy = shifted * rng.lognormal(0.0, config.traffic_noise, 24)
    mean_cost = config.cpm_micros * sum(CLEARING_RANGE) / 2 / 1000
    requests = config.traffic_multiple * config.budget_micros / (config.win_rate * mean_cost)
    return np.asarray(noisy / noisy.sum() * requests / 3600)


def _win_rate(config: DayConfig, seconds: float) -> float:
    # Competition is fiercer in the evening: the rate drifts around its mean over the day.
    return config.win_rate * (1 + 0.3 * math.sin(2 * math.pi * (seconds / DAY_S - 0.3)))


class _Market:
    """Draws one step's requests, bids, wins and charges."""

    def __init__(self, config: DayConfig) -> None:
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self.curve = _curve(config, self.rng)
        self.max_cost = max_cost_micros(config.cpm_micros)

    def step(self, seconds: float, probability: float, money: int) -> tuple[int, float]:
        """(micros charged, micros bidding on everything would have cost) for one step."""
        config, rng = self.config, self.rng
        requests = int(rng.poisson(self.curve[int(seconds // 3600)] * config.step_s))
        win_rate = _win_rate(config, seconds)
        potential = requests * win_rate * config.cpm_micros * sum(CLEARING_RANGE) / 2 / 1000
        # A bid is only made against money set aside for it: at most money // max cost bids.
        bids = min(int(rng.binomial(requests, probability)), money // self.max_cost)
        wins = int(rng.binomial(bids, win_rate))
        prices = rng.uniform(*CLEARING_RANGE, wins) * config.cpm_micros / 1000
        return int(np.rint(prices).sum()), potential


def simulate_day(config: DayConfig) -> DayResult:
    """Run one day step by step; the hourly plan against the spend, and the probability."""
    plan = PacingPlan(config.forecast)
    controller = PacingController(plan=plan)
    market = _Market(config)
    steps = int(DAY_S / config.step_s)
    hours = [_Hour() for _ in range(24)]
    reported = [0] * (config.report_delay_steps + 1)  # spend as the controller will see it
    spent, times, probabilities = 0, [], []
    probability = 1.0
    for step in range(steps):
        seconds = step * config.step_s
        if config.pacing is Pacing.EVEN:
            probability = controller.update(seconds, reported[0], config.budget_micros)
        charged, potential = market.step(seconds, probability, config.budget_micros - spent)
        spent += charged
        reported = [*reported[1:], spent]
        hour = hours[int(seconds // 3600)]
        hour.spent += charged
        hour.potential += potential
        hour.probability += probability
        hour.steps += 1
        times.append(seconds / 3600)
        probabilities.append(probability)
    planned = plan.hourly_micros(config.budget_micros)
    results = tuple(
        HourResult(h, planned[h], hour.spent, round(hour.potential), hour.probability / hour.steps)
        for h, hour in enumerate(hours)
    )
    return DayResult(config, results, spent, tuple(times), tuple(probabilities))
