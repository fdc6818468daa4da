"""A short fuzz run of the bid endpoint (``make fuzz`` runs 100,000 requests): structure-aware
OpenRTB requests, valid and broken, through a real socket to a bidder process with campaigns
and stored devices. No 5xx, no dropped connection, no bug swallowed as a no-bid, no error
logged (shutdown included), the process alive, and its memory flat."""

from __future__ import annotations

from bench.fuzz import fuzz, summary

REQUESTS = 3000


def test_fuzzed_bid_requests_never_get_a_5xx(redis_url: str) -> None:
    result = fuzz(REQUESTS, hypothesis_seed=20261122, redis_url=redis_url)
    assert result.requests == REQUESTS
    assert result.server_errors == 0, result.examples_5xx
    assert result.connection_errors == 0
    assert result.bidder_alive
    assert result.bid_errors == 0
    assert result.error_logs == 0, result.error_log_examples
    # The generator reaches the whole bid path, not only the parser's 400s.
    assert result.statuses.get(200, 0) > 0 and result.statuses.get(204, 0) > 0
    assert result.statuses.get(400, 0) > 0
    assert result.memory_growth_pct < 5, summary(result)
