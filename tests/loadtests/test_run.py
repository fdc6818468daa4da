"""``python -m loadtests.run`` end to end, tiny: seeded bidder, three scenarios, no failures."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_run_reports_every_scenario_without_failures(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    command = [sys.executable, "-m", "loadtests.run", "--users", "5", "--spawn-rate", "5"]
    command += ["--seconds", "3", "--devices", "1000", "--campaigns", "50"]
    command += ["--corpus-share", "0.5", "--json", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr

    figures = orjson.loads(out.read_bytes())
    assert orjson.loads(done.stdout.splitlines()[-1]) == figures  # the JSON line comes last
    total, scenarios, requests = figures["total"], figures["scenarios"], figures["requests"]
    assert total["requests"] > 0 and total["failures"] == 0 and total["rps"] > 0
    assert set(scenarios) == {"exchange", "tracking", "api"}
    assert total["requests"] == sum(s["requests"] for s in scenarios.values())
    for name in ("exchange: bid synthetic", "exchange: bid corpus", "tracking: win"):
        assert requests[name]["requests"] > 0, name
    assert requests["api: create campaign"]["requests"] == 1
    assert total["p50_ms"] <= total["p95_ms"] <= total["p99_ms"]
    # what the locust side counted, the bidder saw: every bid request answered, wins charged
    bidder = figures["bidder"]
    sent = sum(r["requests"] for n, r in requests.items() if "bid" in n.split(":")[1])
    assert bidder["bid_requests"] + bidder.get("shed", 0) == sent
    assert bidder["wins"] == requests["tracking: win"]["requests"]
    for scenario in ("exchange", "tracking", "api", "total"):
        assert re.search(rf"^\s*{scenario}\s+[\d,]+\s+0\s", done.stdout, re.M), scenario

    # everything it started is gone: the bidder's port no longer answers
    port = int(re.findall(r"dsp serve on 127\.0\.0\.1:(\d+)", done.stdout)[0])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
