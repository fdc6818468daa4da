"""The machine's own CPU accounting: how much of a run the hypervisor took away.

On a virtual machine the host may deschedule a virtual CPU while it has work ("steal" in
``/proc/stat``). A stolen slice stalls whatever ran on that CPU for milliseconds, which no
code of ours can avoid: latency figures are read beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_STAT = Path("/proc/stat")
_STEAL = 7  # the eighth number of the "cpu" line: user nice system idle iowait irq softirq steal


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """The machine-wide CPU counters (in clock ticks) at one moment; empty off Linux."""

    ticks: tuple[int, ...]

    @classmethod
    def now(cls) -> CpuTimes:
        try:
            line = _STAT.read_text().splitlines()[0]
        except (OSError, IndexError):
            return cls(())
        return cls(tuple(int(value) for value in line.split()[1:]))


def steal_fraction(before: CpuTimes, after: CpuTimes) -> float:
    """Share of all CPU time between the two readings that the host stole (NaN: unknown)."""
    if len(before.ticks) <= _STEAL or len(after.ticks) != len(before.ticks):
        return float("nan")
    spent = [b - a for a, b in zip(before.ticks, after.ticks, strict=True)]
    total = sum(spent[: _STEAL + 1])  # guest time is counted inside user time already
    return spent[_STEAL] / total if total > 0 else float("nan")
