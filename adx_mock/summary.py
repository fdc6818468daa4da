"""What a simulator run counted: the live ``Tally`` and the final ``Summary`` built from it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

MICROS_PER_UNIT = 1_000_000
IMPRESSIONS_PER_CPM = 1000


@dataclass(slots=True)
class DspTally:
    """Counters of one DSP; ``spend_micros`` is what its rendered impressions cost."""

    bids: int = 0
    no_bids: int = 0
    timeouts: int = 0
    errors: int = 0
    wins: int = 0
    impressions: int = 0
    clicks: int = 0
    spend_micros: int = 0

    def to_dict(self) -> dict[str, int | float]:
        return {
            "bids": self.bids,
            "no_bids": self.no_bids,
            "timeouts": self.timeouts,
            "errors": self.errors,
            "wins": self.wins,
            "impressions": self.impressions,
            "clicks": self.clicks,
            "spend": round(self.spend_micros / MICROS_PER_UNIT, 6),
        }


@dataclass(frozen=True, slots=True)
class Summary:
    """The figures of a run; ``to_dict`` is the JSON the CLI prints.

    ``bids``, ``no_bids``, ``timeouts`` and ``errors`` count DSP answers (one request goes
    to every DSP); ``spend`` is in currency units (the clearing CPM / 1000 per impression);
    ``latency_ms`` covers answers that arrived in time; ``status`` counts HTTP statuses (and
    ``timeout``/``error``) per kind of call: ``bid``, ``win``, ``billing``, ``imp``,
    ``click``, ``loss``, plus ``markup`` parse failures.
    """

    requests: int
    bids: int
    no_bids: int
    timeouts: int
    errors: int
    wins: int
    impressions: int
    clicks: int
    spend: float
    latency_ms: Mapping[str, float | None]
    per_dsp: Mapping[str, Mapping[str, int | float]]
    duration_s: float
    achieved_qps: float
    status: Mapping[str, Mapping[str, int]]

    def to_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "bids": self.bids,
            "no_bids": self.no_bids,
            "timeouts": self.timeouts,
            "errors": self.errors,
            "wins": self.wins,
            "impressions": self.impressions,
            "clicks": self.clicks,
            "spend": self.spend,
            "latency_ms": dict(self.latency_ms),
            "per_dsp": {url: dict(counts) for url, counts in self.per_dsp.items()},
            "duration_s": self.duration_s,
            "achieved_qps": self.achieved_qps,
            "status": {kind: dict(counts) for kind, counts in self.status.items()},
        }


@dataclass(slots=True)
class Tally:
    """Counters updated as a run goes; the event loop is single-threaded, so no locks."""

    dsp_urls: Sequence[str]
    requests: int = 0
    per_dsp: dict[str, DspTally] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    status: dict[str, Counter[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.per_dsp = {url: DspTally() for url in self.dsp_urls}

    def dsp(self, url: str) -> DspTally:
        return self.per_dsp[url]

    def count_status(self, kind: str, status: int | str) -> None:
        self.status.setdefault(kind, Counter())[str(status)] += 1

    def impression(self, url: str, clearing_cpm: float) -> None:
        dsp = self.per_dsp[url]
        dsp.impressions += 1
        dsp.spend_micros += round(clearing_cpm * MICROS_PER_UNIT / IMPRESSIONS_PER_CPM)

    def summary(self, duration_s: float) -> Summary:
        """The final figures of a run that took ``duration_s`` seconds."""
        dsps = self.per_dsp.values()
        spend_micros = sum(d.spend_micros for d in dsps)
        return Summary(
            requests=self.requests,
            bids=sum(d.bids for d in dsps),
            no_bids=sum(d.no_bids for d in dsps),
            timeouts=sum(d.timeouts for d in dsps),
            errors=sum(d.errors for d in dsps),
            wins=sum(d.wins for d in dsps),
            impressions=sum(d.impressions for d in dsps),
            clicks=sum(d.clicks for d in dsps),
            spend=round(spend_micros / MICROS_PER_UNIT, 6),
            latency_ms=latency_figures(self.latencies_ms),
            per_dsp={url: d.to_dict() for url, d in self.per_dsp.items()},
            duration_s=round(duration_s, 3),
            achieved_qps=round(self.requests / duration_s, 1) if duration_s > 0 else 0.0,
            status={kind: dict(sorted(c.items())) for kind, c in sorted(self.status.items())},
        )


def latency_figures(samples_ms: Sequence[float]) -> dict[str, float | None]:
    """p50, p99 and max in milliseconds; None for each when nothing was answered."""
    if not samples_ms:
        return {"p50": None, "p99": None, "max": None}
    values = np.asarray(samples_ms, dtype=np.float64)
    p50, p99 = np.percentile(values, [50, 99])
    return {
        "p50": round(float(p50), 3),
        "p99": round(float(p99), 3),
        "max": round(float(values.max()), 3),
    }
