"""Redis killed and started again under load: the bidder keeps answering inside tmax (204 while
Redis is away, never a 5xx; the advertiser API says 503 + Retry-After), bids again by
itself once Redis is back (in under a second here), and what was written
before the crash (budget spend, the event stream) is still there, read back from the
append-only file (fsync every second) in the server's data directory."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from bench.soak import Bidder, bidder
from dsp.admin import create_advertiser
from dsp.campaigns.store import save_campaigns
from infra import keys
from infra.embedded_redis import EmbeddedRedis, redis_url_or_embedded
from tests.dsp.factories import bid_request, campaign, store_profile

TMAX_MS = 150
PAUSE_S = 0.01  # between two requests of the load


@dataclass(frozen=True, slots=True)
class Answer:
    sent: float  # time.monotonic()
    seconds: float
    status: int  # 0: no HTTP answer at all


@dataclass(slots=True)
class Load:
    """Bid requests one after another, every answer kept, until stopped."""

    url: str
    answers: list[Answer]
    running: bool = True

    async def run(self) -> None:
        body = orjson.dumps(bid_request(tmax=TMAX_MS))
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while self.running:
                sent = time.monotonic()
                try:
                    async with session.post(self.url, data=body) as response:
                        await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                self.answers.append(Answer(sent, time.monotonic() - sent, status))
                await asyncio.sleep(PAUSE_S)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _seed(url: str) -> str:
    """Campaigns, a device, and an advertiser: its API token."""
    redis = Redis.from_url(url)
    try:
        await save_campaigns(redis, [campaign("c1", cpm_micros=4_000_000)])
        await store_profile(redis)
        _, token, _ = await create_advertiser(redis, "Alice", "Europe/Paris")
        return token
    finally:
        await redis.aclose()


async def _api_status(process: Bidder, token: str) -> tuple[int, str | None]:
    url = f"http://127.0.0.1:{process.port}/api/v1/campaigns"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Authorization": f"Bearer {token}"}) as answer,
    ):
        return answer.status, answer.headers.get("Retry-After")


async def _win(session: aiohttp.ClientSession, process: Bidder) -> None:
    """A bid, and its win notice: spend and a win event written to Redis."""
    base = f"http://127.0.0.1:{process.port}"
    async with session.post(f"{base}/openrtb2/bid", data=orjson.dumps(bid_request())) as answer:
        assert answer.status == 200
        bid = (await answer.json())["seatbid"][0]["bid"][0]
    parts = urlsplit(bid["nurl"].replace("${AUCTION_PRICE}", "2.50"))
    async with session.get(f"{base}{parts.path}?{parts.query}") as answer:
        assert answer.status == 200 and (await answer.json())["charged_micros"] == 2500


async def _written(url: str) -> tuple[int, set[bytes]]:
    """The campaign's spend and the ids of the events in the stream."""
    redis = Redis.from_url(url)
    try:
        spent = int(await redis.get(keys.campaign_spent("c1")) or 0)
        entries: Any = await redis.xrange(keys.EVENTS)
        return spent, {bytes(event_id) for event_id, _ in entries}
    finally:
        await redis.aclose()


async def _bids_again(url: str, within_s: float) -> float:
    """Seconds until the bidder bids again (a 200) after Redis came back."""
    started = time.monotonic()
    body = orjson.dumps(bid_request())
    async with aiohttp.ClientSession() as session:
        while time.monotonic() - started < within_s:
            async with session.post(url, data=body) as answer:
                if answer.status == 200:
                    return time.monotonic() - started
            await asyncio.sleep(0.05)
    raise AssertionError(f"no bid within {within_s} s of Redis coming back")


async def test_redis_crash_and_restart_under_load(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    url, port = redis_server.url, redis_server.port
    token = await _seed(url)
    log = tmp_path / "bidder.log"
    with bidder(url, log=log) as process:
        async with aiohttp.ClientSession() as session:
            await _win(session, process)
        spent, events = await _written(url)
        assert spent == 2500 and events, "the win is charged and logged"
        load = Load(f"http://127.0.0.1:{process.port}/openrtb2/bid", [])
        task = asyncio.create_task(load.run())
        await asyncio.sleep(1.5)  # more than the AOF's fsync second since the writes
        assert redis_server.pid is not None
        os.kill(redis_server.pid, signal.SIGKILL)  # a crash: no chance to flush anything
        # Starting and stopping the server block; in a thread, so the load running in this
        # event loop is not held up by them and its latencies stay the bidder's.
        await asyncio.to_thread(redis_server.stop)
        down = time.monotonic()
        await asyncio.sleep(1.0)
        assert await _api_status(process, token) == (503, "1"), "the API: retry, not a 500"
        await asyncio.sleep(1.0)
        up = time.monotonic()
        restarted = EmbeddedRedis(tmp_path / "redis", appendonly=True, port=port)
        await asyncio.to_thread(restarted.start)
        try:
            recovery_s = await _bids_again(load.url, within_s=10)
            assert (await _api_status(process, token))[0] == 200
            await asyncio.sleep(0.5)
            load.running = False
            await task
            spent_after, events_after = await _written(url)
            assert spent_after == spent, "the spend charged before the crash"
            assert events <= events_after, "the events logged before the crash"
        finally:
            restarted.stop()
        assert process.alive()
    answers = load.answers
    assert len(answers) > 100
    assert {a.status for a in answers} <= {200, 204}, sorted({a.status for a in answers})
    assert max(a.seconds for a in answers) * 1000 < TMAX_MS
    away = [a for a in answers if down + 0.05 < a.sent and a.sent + a.seconds < up]
    assert len(away) > 20 and {a.status for a in away} == {204}
    assert any(a.status == 200 for a in answers if a.sent < down)
    assert recovery_s < 5
    assert "Traceback" not in log.read_text(errors="replace")


def test_the_embedded_redis_keeps_its_data_in_its_directory(tmp_path: Path) -> None:
    """``REDIS_DATA_DIR`` for ``dsp serve``: an append-only file, fsync'd every second."""
    with redis_url_or_embedded(None, tmp_path) as url, SyncRedis.from_url(url) as client:
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        client.set("budget", 42)
    with redis_url_or_embedded(None, tmp_path) as url, SyncRedis.from_url(url) as client:
        assert client.get("budget") == b"42"
    with redis_url_or_embedded(None) as url, SyncRedis.from_url(url) as client:
        assert client.dbsize() == 0  # without a directory: a fresh, throwaway server
