"""Closed-loop runs with ``wrk`` when it is installed: a Lua script rotates request bodies.

wrk cannot pace requests: open-loop runs use ``bench.pacer`` (or the built-in generator).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_MARK = "BENCH_JSON "
_SCRIPT = """
local bodies_path = "%(bodies)s"
local requests = {}
local next_index = 1

function init(args)
  local headers = {["Content-Type"] = "application/json"}
  for body in io.lines(bodies_path) do
    requests[#requests + 1] = wrk.format("POST", "/openrtb2/bid", headers, body)
  end
  next_index = math.random(#requests)
end

function request()
  next_index = next_index %% #requests + 1
  return requests[next_index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests":%%.0f,"duration_us":%%.0f,"errors":%%.0f,'
    .. '"p50_us":%%.0f,"p99_us":%%.0f,"p999_us":%%.0f}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"""


@dataclass(frozen=True, slots=True)
class WrkOutcome:
    rps: float
    errors: int
    p50_ms: float
    p99_ms: float
    p999_ms: float


def available() -> bool:
    return shutil.which("wrk") is not None


def _wrk(port: int, script: Path, threads: int, connections: int, seconds: float) -> WrkOutcome:
    wrk = shutil.which("wrk")
    assert wrk is not None
    command = [wrk, f"-t{threads}", f"-c{max(connections, threads)}"]
    command += [f"-d{max(1, round(seconds))}s", "-s", str(script)]
    command.append(f"http://127.0.0.1:{port}/openrtb2/bid")
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    line = next((ln for ln in output.splitlines() if ln.startswith(_MARK)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    data = json.loads(line.removeprefix(_MARK))
    errors = int(data["errors"])
    return WrkOutcome(
        rps=(int(data["requests"]) - errors) / (int(data["duration_us"]) / 1e6),
        errors=errors,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        p999_ms=data["p999_us"] / 1000,
    )


class Wrk:
    """``wrk`` loading the server with the same rotating bodies as the built-in generator."""

    def __init__(self, bodies: Sequence[bytes], threads: int) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-wrk-")
        folder = Path(self._tmp.name)
        (folder / "bodies.jsonl").write_bytes(b"\n".join(bodies) + b"\n")
        self._script = folder / "bodies.lua"
        self._script.write_text(_SCRIPT % {"bodies": folder / "bodies.jsonl", "mark": _MARK})
        self._threads = threads

    def run(self, port: int, *, connections: int, warmup_s: float, duration_s: float) -> WrkOutcome:
        _wrk(port, self._script, self._threads, connections, warmup_s)
        return _wrk(port, self._script, self._threads, connections, duration_s)

    def close(self) -> None:
        self._tmp.cleanup()
