"""Process-local counters and a latency histogram, rendered in Prometheus text format."""

from __future__ import annotations

import bisect
from collections import Counter

_BUCKETS_MS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 250.0, 1000.0)  # not Final (infra.compiled)


class Metrics:
    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self._latency = [0] * (len(_BUCKETS_MS) + 1)
        self._latency_sum_ms = 0.0

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def observe_bid_ms(self, elapsed_ms: float) -> None:
        self._latency[bisect.bisect_left(_BUCKETS_MS, elapsed_ms)] += 1
        self._latency_sum_ms += elapsed_ms

    def render(self) -> str:
        lines = []
        for name, value in sorted(self.counters.items()):
            lines += [f"# TYPE dsp_{name}_total counter", f"dsp_{name}_total {value}"]
        lines.append("# TYPE dsp_bid_latency_ms histogram")
        cumulative = 0
        for bound, count in zip((*_BUCKETS_MS, float("inf")), self._latency, strict=True):
            cumulative += count
            label = "+Inf" if bound == float("inf") else f"{bound:g}"
            lines.append(f'dsp_bid_latency_ms_bucket{{le="{label}"}} {cumulative}')
        lines.append(f"dsp_bid_latency_ms_sum {self._latency_sum_ms:.3f}")
        lines.append(f"dsp_bid_latency_ms_count {cumulative}")
        return "\n".join(lines) + "\n"
