"""Open-loop runs through ``pacer``, a small C program built from ``bench/pacer.c`` on first use.

The built-in generator (``bench.client``) spends about 50 us of CPU a request in Python; on
a 2-core machine it shares the CPU with the server under test and, at twice the bidder's
throughput, falls behind its own schedule. ``pacer`` keeps the same schedule, deadline and
tally at a few microseconds a request. Without a C compiler the bench falls back to the
built-in generator and says so.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import numpy as np
import orjson

from bench.loadgen import CONNECT_S, Outcome

SOURCE = Path(__file__).with_name("pacer.c")


class PacerUnavailable(RuntimeError):
    """``pacer`` could not be built here (no C compiler, or it failed)."""


def build(folder: Path, compiler: str | None = None) -> Path:
    """Compile ``pacer.c`` into ``folder``; the program's path."""
    cc = compiler or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise PacerUnavailable("no C compiler (cc or gcc) on PATH")
    program = folder / "pacer"
    try:
        subprocess.run(
            [cc, "-O2", "-o", str(program), str(SOURCE)],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        raise PacerUnavailable(f"building pacer failed: {detail.strip()}") from error
    return program


def requests_file(requests: Sequence[bytes]) -> bytes:
    """The requests as ``pacer`` reads them: each one after its length (uint32, little-endian)."""
    return b"".join(struct.pack("<I", len(request)) + request for request in requests)


class Pacer:
    """``with Pacer(requests) as pacer: pacer.run(port, ...)``; raises ``PacerUnavailable``."""

    def __init__(self, requests: Sequence[bytes], compiler: str | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-pacer-")
        folder = Path(self._tmp.name)
        try:
            self._program = build(folder, compiler)
        except PacerUnavailable:
            self._tmp.cleanup()
            raise
        self._requests = folder / "requests.bin"
        self._requests.write_bytes(requests_file(requests))
        self._out = folder / "latencies.bin"

    def __enter__(self) -> Pacer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._tmp.cleanup()

    def run(
        self,
        port: int,
        *,
        connections: int,
        rate: float,
        warmup_s: float = 1.0,
        duration_s: float = 5.0,
        deadline_s: float = 0.1,
    ) -> Outcome:
        """One open-loop run against ``127.0.0.1:port`` at ``rate`` requests a second."""
        start_at = time.monotonic() + CONNECT_S
        command = [str(self._program), str(port), str(connections), repr(float(rate))]
        command += [repr(start_at), repr(float(warmup_s)), repr(float(duration_s))]
        command += [repr(float(deadline_s)), str(self._requests), str(self._out)]
        limit = CONNECT_S + warmup_s + duration_s + deadline_s + 30
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit)
        if done.returncode != 0:
            raise RuntimeError(f"pacer failed ({done.returncode}): {done.stderr.strip()}")
        counts = orjson.loads(done.stdout)
        latencies = np.fromfile(self._out, dtype=np.float64)
        answered = int(counts["answered"])
        if len(latencies) != 2 * answered:
            raise RuntimeError(f"pacer wrote {len(latencies)} latencies for {answered} answers")
        return Outcome(
            seconds=duration_s,
            due=int(counts["due"]),
            answered=answered,
            ok=int(counts["ok"]),
            bids=int(counts["bids"]),
            on_time=int(counts["on_time"]),
            errors=int(counts["errors"]),
            dropped=int(counts["dropped"]),
            latencies_ms=latencies[:answered],
            issued_ms=latencies[answered:],
        )
