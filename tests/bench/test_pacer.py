"""The C open-loop generator: its schedule, its tally, and the bench's fallback without it."""

from __future__ import annotations

import io
import itertools
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.bidding import _pacer
from bench.client import http_post
from bench.figures import Figures
from bench.pacer import Pacer, PacerUnavailable, build
from bench.servers import run_canned, server_process

REQUESTS = [http_post(b'{"id":"1"}'), http_post(b'{"id":"2","imp":[{"id":"1"}]}')]


def _answers(
    statuses: Iterator[int | None], delay_s: float = 0.0
) -> type[socketserver.BaseRequestHandler]:
    """A handler answering each complete request with the next status (None: never answers),
    ``delay_s`` after reading it."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            buffer = b""
            while chunk := self.request.recv(65536):
                buffer += chunk
                while (end := buffer.find(b"\r\n\r\n")) >= 0:
                    head = buffer[:end].lower()
                    at = head.find(b"content-length:")
                    length = int(head[at + 15 :].split(b"\r\n")[0]) if at >= 0 else 0
                    if len(buffer) < end + 4 + length:
                        break
                    buffer = buffer[end + 4 + length :]
                    status = next(statuses)
                    if status is None:
                        continue
                    time.sleep(delay_s)
                    body = b'{"seatbid":[]}' if status == 200 else b""
                    self.request.sendall(
                        b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)
                    )

    return Handler


@contextmanager
def _server(handler: type[socketserver.BaseRequestHandler]) -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def pacer() -> Iterator[Pacer]:
    with Pacer(REQUESTS) as built:
        yield built


def test_requests_fall_due_at_the_rate_and_are_timed_from_then(pacer: Pacer) -> None:
    with server_process(run_canned) as port:
        outcome = pacer.run(port, connections=8, rate=400, warmup_s=0.25, duration_s=0.5)

    assert 199 <= outcome.due <= 201  # 0.5 s at 400/s: the schedule, not the server, decides
    assert outcome.answered == outcome.ok == outcome.due and outcome.bids == 0
    assert outcome.errors == outcome.dropped == 0
    assert len(outcome.latencies_ms) == len(outcome.issued_ms) == outcome.answered
    assert (outcome.latencies_ms >= 0).all()
    assert (outcome.issued_ms <= outcome.latencies_ms + 1e-9).all()
    assert outcome.late_fraction < 0.05


def test_bids_no_bids_and_errors_are_told_apart(pacer: Pacer) -> None:
    statuses = itertools.cycle([200, 204, 503, 200])
    with _server(_answers(statuses)) as port:
        outcome = pacer.run(port, connections=1, rate=200, warmup_s=0.0, duration_s=0.4)

    assert outcome.answered == outcome.due == 80
    # one connection answers in order: the cycle's shares, bodies skipped by Content-Length
    assert outcome.bids == 40 and outcome.ok == 60 and outcome.errors == 20
    assert outcome.on_time == outcome.ok


def test_unanswered_requests_are_dropped_or_lost_never_on_time(pacer: Pacer) -> None:
    with _server(_answers(itertools.repeat(None))) as port:
        outcome = pacer.run(
            port, connections=2, rate=200, warmup_s=0.0, duration_s=0.3, deadline_s=0.05
        )

    assert outcome.due == 60 and outcome.answered == 0 and outcome.on_time == 0
    assert outcome.errors == 2  # in flight on the two connections when the run ended
    assert outcome.dropped == 58  # never sent: no connection came free within the deadline
    assert outcome.late_fraction == 1.0


def test_a_request_waiting_past_the_deadline_is_dropped_not_sent(pacer: Pacer) -> None:
    # One connection, answers 100 ms after each request, deadline 50 ms: of those that fell
    # due while a request was in flight, the older than 50 ms are never sent.
    with _server(_answers(itertools.repeat(204), delay_s=0.1)) as port:
        outcome = pacer.run(
            port, connections=1, rate=100, warmup_s=0.0, duration_s=0.5, deadline_s=0.05
        )

    assert outcome.due == 50 and outcome.on_time == 0
    assert outcome.answered + outcome.dropped + outcome.errors == outcome.due
    assert 3 <= outcome.answered <= 8  # about one per 100 ms, the backlog's fresh ones only
    assert (outcome.latencies_ms > 50).all()


def test_a_refused_connection_fails_the_run(pacer: Pacer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(RuntimeError, match="pacer failed"):
            pacer.run(port, connections=1, rate=10, warmup_s=0.0, duration_s=0.1)


def test_without_a_compiler_the_bench_says_so_and_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(PacerUnavailable, match="building pacer failed"):
        build(tmp_path, compiler=str(tmp_path / "no-such-cc"))

    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    out = io.StringIO()
    assert _pacer(Figures(out), REQUESTS) is None
    assert "open-loop runs use the built-in generator" in out.getvalue()
