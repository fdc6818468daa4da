"""Even pacing: a feedback controller turning "spend the day's budget along the plan" into a
bid probability.

The plan spreads the daily budget over the advertiser's day in proportion to a traffic
forecast (a diurnal curve: an even spend per *request*, not per hour, so the campaign does
not starve in the evening peak and flood at night). The controller has two loops:

* outer, on the budget: the spend rate wanted now is what is left of the budget, spread over
  what is left of the forecast (``remaining x rate / remaining share``). Behind plan it asks
  for more, ahead for less, and it ends the day on the budget, not on the original plan.
* inner, a PI controller on the measured spend rate (an exponential moving average), acting
  on the log of the bid probability: multiplicative, so it moves as fast from 0.001 to 0.002
  as from 0.5 to 1, whatever the traffic volume.

ASAP campaigns bid with probability 1 whenever there is money.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import accumulate

from dsp.budget.days import DAY_S

# Share of a day's mobile requests per local hour (midnight first): low at night, a morning
# rise, a flat afternoon and an evening peak. Until the bidder learns each campaign's own
# curve, every even-paced campaign plans on this one.
DIURNAL: tuple[float, ...] = (
    3.2, 2.2, 1.5, 1.1, 1.0, 1.3, 2.2, 3.5, 4.6, 5.0, 5.2, 5.4,
    5.6, 5.3, 5.1, 5.0, 5.1, 5.4, 5.8, 6.2, 6.5, 6.3, 5.4, 4.2,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PacingPlan:
    """Shares of the daily budget per local hour, summing to 1."""

    weights: tuple[float, ...]
    _cumulative: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.weights) != 24 or any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
            raise ValueError("a pacing plan needs 24 non-negative hourly weights")
        total = sum(self.weights)
        shares = tuple(w / total for w in self.weights)
        object.__setattr__(self, "weights", shares)
        object.__setattr__(self, "_cumulative", (0.0, *accumulate(shares)))

    @classmethod
    def diurnal(cls) -> PacingPlan:
        return cls(DIURNAL)

    @classmethod
    def flat(cls) -> PacingPlan:
        return cls((1.0,) * 24)

    def share_by(self, seconds: float) -> float:
        """Share of the day's budget the plan has spent ``seconds`` after midnight."""
        seconds = min(max(seconds, 0.0), DAY_S)
        hour = min(int(seconds // 3600), 23)
        return self._cumulative[hour] + self.weights[hour] * (seconds - hour * 3600) / 3600

    def rate(self, seconds: float) -> float:
        """Share of the day's budget the plan spends per second at ``seconds``."""
        return self.weights[min(max(int(seconds // 3600), 0), 23)] / 3600

    def hourly_micros(self, budget_micros: int) -> list[int]:
        """The plan in micros per hour, rounded so the hours add up to the budget."""
        edges = [round(budget_micros * share) for share in self._cumulative]
        return [later - earlier for earlier, later in zip(edges, edges[1:], strict=False)]


@dataclass(slots=True)
class PacingController:
    """Bid probability of one even-paced campaign, updated from its spend so far today.

    ``update`` is called with the seconds since the advertiser's midnight and what the
    campaign has been charged today (by every bidder process); it may be called at any
    interval, from the refresher's fraction of a second to a simulation's minutes.
    """

    plan: PacingPlan = field(default_factory=PacingPlan.diurnal)
    rate_window_s: float = 60.0  # time constant of the measured spend rate
    gain_p: float = 1.0  # log-probability per unit of relative rate error
    gain_i: float = 1 / 60  # the same, per second of error
    min_horizon_s: float = 60.0  # the last of the budget is not spent faster than this
    warm_up_s: float = 30.0  # spend measured this long before the first estimate
    max_step_s: float = 10.0  # longer updates integrate as this long: stable at any interval
    floor: float = 1e-4  # lowest probability: keeps a trickle of bids to measure with
    probability: float = 1.0
    integral: float = 0.0  # log of the probability the integral term asks for
    rate: float | None = None  # micros per second, moving average
    _last: tuple[float, int] | None = None
    _start: tuple[float, int] | None = None  # where the current rate measurement began

    def desired_rate(self, seconds: float, spent: int, budget: int) -> float:
        """Micros per second that would spend what is left along what is left of the plan."""
        remaining = budget - spent
        if remaining <= 0:
            return 0.0
        planned_rate = self.plan.rate(seconds)
        left_share = max(1.0 - self.plan.share_by(seconds), planned_rate * self.min_horizon_s)
        if left_share <= 0:
            return remaining / self.min_horizon_s
        return remaining * planned_rate / left_share

    def update(self, seconds: float, spent: int, budget: int) -> float:
        """Take in the spend at ``seconds``; the bid probability from now on."""
        last, self._last = self._last, (seconds, spent)
        if last is None or seconds < last[0] or spent < last[1]:
            # First call, or a new day: measure afresh (the probability carries over).
            self.rate, self._start = None, (seconds, spent)
            return self.probability
        elapsed = seconds - last[0]
        if elapsed <= 0:
            return self.probability
        desired = self.desired_rate(seconds, spent, budget)
        if self.rate is None:
            self._warm_up(seconds, spent, desired)
        else:
            observed = (spent - last[1]) / elapsed
            self.rate += (observed - self.rate) * (1 - math.exp(-elapsed / self.rate_window_s))
            error = _relative_error(desired, self.rate)
            self.integral = self._clip(
                self.integral + self.gain_i * error * min(elapsed, self.max_step_s)
            )
            self.probability = math.exp(self._clip(self.integral + self.gain_p * error))
        if desired <= 0:
            self.probability = 0.0
        return self.probability

    def _warm_up(self, seconds: float, spent: int, desired: float) -> None:
        """After ``warm_up_s`` of measurement, start the integral where the plan would be met
        if the spend followed the probability in proportion (bumpless start)."""
        assert self._start is not None
        measured_s = seconds - self._start[0]
        if measured_s < self.warm_up_s:
            return
        self.rate = (spent - self._start[1]) / measured_s
        if self.rate > 0 and desired > 0:
            self.integral = self._clip(math.log(desired * self.probability / self.rate))
            self.probability = math.exp(self.integral)

    def _clip(self, log_probability: float) -> float:
        return min(max(log_probability, math.log(self.floor)), 0.0)


def _relative_error(desired: float, measured: float) -> float:
    """(desired - measured) over the larger of the two: -1 (far ahead) .. 1 (far behind)."""
    scale = max(desired, measured)
    return 0.0 if scale <= 0 else (desired - measured) / scale
