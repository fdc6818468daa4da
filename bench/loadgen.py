"""The built-in load generator: worker processes running ``bench.client``, merged results.

The workers are started once and kept for a whole group (each holds the pre-encoded
requests); every run hands each worker its share of connections and of the rate, and a
start time on the shared monotonic clock, so all workers load the server together.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType

import numpy as np
import uvloop

from bench.client import Load, Tally, run_load

# Time a generator gets to start and open its connections before the shared start.
CONNECT_S = 0.5


@dataclass(frozen=True, slots=True)
class Outcome:
    """The merged tallies of one run's measured window."""

    seconds: float
    due: int
    answered: int
    ok: int
    bids: int
    on_time: int
    errors: int
    dropped: int
    latencies_ms: np.ndarray  # from when each request fell due
    issued_ms: np.ndarray  # from when the generator issued it: its own lateness left out

    @property
    def rps(self) -> float:
        """Answers with 200 or 204 per second."""
        return self.ok / self.seconds

    @property
    def late_fraction(self) -> float:
        """Share of requests not answered with 200/204 within the deadline (dropped ones too)."""
        return 1 - self.on_time / self.due if self.due else 1.0

    def percentile_ms(self, q: float) -> float:
        if not len(self.latencies_ms):
            return float("nan")
        return float(np.percentile(self.latencies_ms, q))

    def issued_percentile_ms(self, q: float) -> float:
        """Latency from when the generator issued each request (a wait for a connection counts)."""
        if not len(self.issued_ms):
            return float("nan")
        return float(np.percentile(self.issued_ms, q))


def pooled(outcomes: Sequence[Outcome]) -> Outcome:
    """Several runs' outcomes as one: counts added, latencies pooled."""
    return _summed(outcomes, sum(o.seconds for o in outcomes))


def _joined(parts: Sequence[Sequence[float] | np.ndarray]) -> np.ndarray:
    if not parts:
        return np.empty(0)
    return np.concatenate([np.asarray(part, dtype=np.float64) for part in parts])


def _summed(parts: Sequence[Tally] | Sequence[Outcome], seconds: float) -> Outcome:
    """Workers' tallies, or runs' outcomes, added up over ``seconds``."""
    return Outcome(
        seconds=seconds,
        due=sum(p.due for p in parts),
        answered=sum(p.answered for p in parts),
        ok=sum(p.ok for p in parts),
        bids=sum(p.bids for p in parts),
        on_time=sum(p.on_time for p in parts),
        errors=sum(p.errors for p in parts),
        dropped=sum(p.dropped for p in parts),
        latencies_ms=_joined([p.latencies_ms for p in parts]),
        issued_ms=_joined([p.issued_ms for p in parts]),
    )


def _worker(pipe: Connection, requests: Sequence[bytes]) -> None:
    """A worker process: one run per ``Load`` received, until it receives None."""
    while (load := pipe.recv()) is not None:
        try:
            pipe.send(uvloop.run(run_load(load, requests)))
        except Exception as error:  # the parent reports it and stops the group
            pipe.send(f"{type(error).__name__}: {error}")


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (i < total % parts) for i in range(parts)]


class LoadGenerator:
    """``with LoadGenerator(requests, workers) as generator: generator.run(port, ...)``."""

    def __init__(self, requests: Sequence[bytes], workers: int) -> None:
        self._requests = list(requests)
        self._count = max(1, workers)
        self._workers: list[tuple[BaseProcess, Connection]] = []

    def __enter__(self) -> LoadGenerator:
        context = multiprocessing.get_context("spawn")
        for index in range(self._count):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_worker, args=(theirs, self._requests), name=f"loadgen-{index}", daemon=True
            )
            process.start()
            self._workers.append((process, ours))
        return self

    def run(
        self,
        port: int,
        *,
        connections: int,
        rate: float | None = None,
        warmup_s: float = 1.0,
        duration_s: float = 5.0,
        deadline_s: float = 0.1,
    ) -> Outcome:
        """One run against ``127.0.0.1:port``: closed loop, or open loop at ``rate`` per second."""
        count = len(self._workers)
        start_at = time.monotonic() + CONNECT_S
        spread = len(self._requests) // count
        for index, ((_, pipe), share) in enumerate(
            zip(self._workers, _shares(max(connections, count), count), strict=True)
        ):
            worker_rate = None if rate is None else rate / count
            load = Load(
                port=port,
                connections=share,
                rate=worker_rate,
                phase=index / count,
                start_at=start_at,
                warmup_s=warmup_s,
                duration_s=duration_s,
                deadline_s=deadline_s,
                offset=index * spread,
            )
            pipe.send(load)
        limit = CONNECT_S + warmup_s + duration_s + deadline_s + 30
        return _summed([self._receive(pipe, limit) for _, pipe in self._workers], duration_s)

    @staticmethod
    def _receive(pipe: Connection, limit_s: float) -> Tally:
        if not pipe.poll(limit_s):
            raise RuntimeError(f"a load generator worker sent nothing in {limit_s:.0f} s")
        answer = pipe.recv()
        if not isinstance(answer, Tally):
            raise RuntimeError(f"a load generator worker failed: {answer}")
        return answer

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for process, pipe in self._workers:
            try:
                pipe.send(None)
            except OSError:
                pass
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join()
        self._workers = []
