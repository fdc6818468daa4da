"""The load run's figures as a table: each scenario, its requests under it, then the total."""

from __future__ import annotations

from typing import Any

_HEAD = f"{'scenario / request':<34}{'requests':>10}{'failures':>10}{'req/s':>10}"
_HEAD += f"{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"


def _ms(value: object) -> str:
    return "-" if value is None else f"{value:g}"


def _row(label: str, figures: dict[str, Any]) -> str:
    return (
        f"{label:<34}{figures['requests']:>10,}{figures['failures']:>10,}{figures['rps']:>10,.1f}"
        f"{_ms(figures['p50_ms']):>8}{_ms(figures['p95_ms']):>8}{_ms(figures['p99_ms']):>8}"
    )


def table(summary: dict[str, Any]) -> str:
    """``summary`` as written by the locustfile (``loadtests.stats.summarise``)."""
    lines = [_HEAD, "-" * len(_HEAD)]
    requests: dict[str, dict[str, Any]] = summary["requests"]
    for scenario, figures in summary["scenarios"].items():
        lines.append(_row(scenario, figures))
        for name, own in requests.items():
            if name.split(":", 1)[0].strip() == scenario and name != scenario:
                lines.append(_row("  " + name.split(":", 1)[-1].strip(), own))
    lines += ["-" * len(_HEAD), _row("total", summary["total"])]
    for error in summary.get("errors", []):
        lines.append(f"failure x{error['occurrences']}: {error['name']}: {error['error']}")
    return "\n".join(lines)
