"""Locust's statistics folded into the figures the runner prints: per request, per scenario
(the part of the request name before ``:``) and in total.

Scenario figures merge the requests' response-time histograms (``StatsEntry.extend``), so a
scenario's p99 is the p99 of its requests, not an average of percentiles. Imported by the
locustfile only: importing locust patches the standard library (gevent).
"""

from __future__ import annotations

from typing import Any

from locust.stats import RequestStats, StatsEntry

PERCENTILES = {"p50_ms": 0.50, "p95_ms": 0.95, "p99_ms": 0.99}


def scenario_of(name: str) -> str:
    return name.split(":", 1)[0].strip()


def _figures(entry: StatsEntry, seconds: float) -> dict[str, Any]:
    answered = entry.num_requests > 0
    figures: dict[str, Any] = {
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "rps": round(entry.num_requests / seconds, 1) if seconds > 0 else 0.0,
    }
    for label, share in PERCENTILES.items():
        figures[label] = entry.get_response_time_percentile(share) if answered else None
    figures["max_ms"] = round(entry.max_response_time, 1) if answered else None
    return figures


def _duration_s(stats: RequestStats) -> float:
    if not stats.start_time or not stats.last_request_timestamp:
        return 0.0
    return max(0.0, float(stats.last_request_timestamp - stats.start_time))


def summarise(stats: RequestStats) -> dict[str, Any]:
    """Figures of a finished run (on the master in distributed mode)."""
    seconds = _duration_s(stats)
    entries = sorted(stats.entries.values(), key=lambda e: (e.name, e.method))
    scenarios: dict[str, StatsEntry] = {}
    for entry in entries:
        scenario = scenario_of(entry.name)
        if scenario not in scenarios:
            scenarios[scenario] = StatsEntry(stats, scenario, "")
        scenarios[scenario].extend(entry)
    errors = [
        {"name": error.name, "error": str(error.error), "occurrences": error.occurrences}
        for error in stats.errors.values()
    ]
    return {
        "duration_s": round(seconds, 2),
        "requests": {entry.name: _figures(entry, seconds) for entry in entries},
        "scenarios": {name: _figures(entry, seconds) for name, entry in scenarios.items()},
        "total": _figures(stats.total, seconds),
        "errors": errors,
    }
