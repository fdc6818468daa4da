"""The bid front of ``dsp serve``: its own HTTP/1.1 protocol and the pipelined lookups,
through real sockets against the session's Redis."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from dsp.app import LIVE, LOOKUP_CLIENT_NAME, PIPE
from dsp.bidder.front import Shedder
from dsp.campaigns.store import save_campaigns
from dsp.serve import Worker, start_worker
from infra.embedded_redis import EmbeddedRedis, free_port
from infra.settings import Settings
from tests.dsp.factories import bid_request, campaign, store_profile

SEGMENT = "interest.automotive.suv"


@pytest.fixture
async def front(redis: Redis, redis_url: str) -> AsyncIterator[Worker]:
    # Background refreshes and event flushes far apart, so the commands a test counts are
    # its requests' own.
    settings = Settings(
        redis_url=redis_url, port=free_port(), signing_key=b"test-key",
        campaign_refresh_s=3600, event_flush_s=3600,
    )  # fmt: skip
    await save_campaigns(redis, [campaign("c1", tags=SEGMENT)])
    await store_profile(redis, tags=(SEGMENT,))
    worker = await start_worker(settings)
    await worker.app[LIVE].refresh(redis)
    try:
        yield worker
    finally:
        await worker.stop()


def http_post(body: bytes, path: str = "/openrtb2/bid", extra: str = "") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bidder\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def connect(worker: Worker) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", worker.settings.port)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def payload(**extra: Any) -> bytes:
    return orjson.dumps(bid_request(**extra))


async def test_a_stored_device_in_the_segment_gets_a_bid(front: Worker) -> None:
    reader, writer = await connect(front)
    writer.write(http_post(payload()))
    status, headers, body = await read_answer(reader)
    await close(writer)
    assert status == 200 and headers["content-type"] == "application/json"
    bid = orjson.loads(body)["seatbid"][0]["bid"][0]
    assert bid["cid"] == "c1" and "${AUCTION_PRICE}" in bid["nurl"]


async def test_a_bidder_reaching_redis_through_its_unix_socket_bids() -> None:
    # Redis on the same host: every client of the bidder through the socket, no TCP.
    server = EmbeddedRedis(unix_socket=True)
    with server:
        redis = Redis.from_url(server.unix_url)
        settings = Settings(
            redis_url=server.unix_url, port=free_port(), signing_key=b"test-key",
            campaign_refresh_s=3600, event_flush_s=3600,
        )  # fmt: skip
        try:
            await save_campaigns(redis, [campaign("c1", tags=SEGMENT)])
            await store_profile(redis, tags=(SEGMENT,))
            worker = await start_worker(settings)
            try:
                await worker.app[LIVE].refresh(redis)
                reader, writer = await connect(worker)
                writer.write(http_post(payload()))
                status, _, body = await read_answer(reader)
                await close(writer)
                sent = worker.app[PIPE].sent
            finally:
                await worker.stop()
        finally:
            await redis.aclose()
    assert status == 200 and orjson.loads(body)["seatbid"][0]["bid"][0]["cid"] == "c1"
    assert sent >= 1  # the lookup went through the pipelined connection


async def test_pipelined_requests_are_answered_in_order_and_others_go_to_aiohttp(
    front: Worker,
) -> None:
    unknown = "11111111-2222-3333-4444-555555555555"
    reader, writer = await connect(front)
    writer.write(
        http_post(payload())
        + http_post(payload(ifa=unknown))
        + http_post(b"{not json")
        + http_post(payload())
        + b"GET /healthz HTTP/1.1\r\nHost: bidder\r\n\r\n"
    )
    answers = [await read_answer(reader) for _ in range(5)]
    await close(writer)
    assert [status for status, _, _ in answers] == [200, 204, 400, 200, 200]
    assert orjson.loads(answers[2][2])["field"] == "$"
    assert orjson.loads(answers[4][2])["status"] == "ok"  # served by aiohttp


async def test_an_invalid_request_is_a_400_naming_the_field(front: Worker) -> None:
    reader, writer = await connect(front)
    writer.write(http_post(orjson.dumps({"id": "x", "imp": []})))
    status, _, body = await read_answer(reader)
    await close(writer)
    assert status == 400 and orjson.loads(body)["field"].startswith("imp")


async def test_connection_close_and_oversized_bodies_close_the_connection(
    front: Worker,
) -> None:
    reader, writer = await connect(front)
    writer.write(http_post(payload(), extra="Connection: close\r\n"))
    status, _, _ = await read_answer(reader)
    assert status == 200 and await reader.read() == b""
    await close(writer)
    reader, writer = await connect(front)
    too_long = front.settings.max_body_bytes + 1  # refused by its head, the body unread
    writer.write(f"POST /openrtb2/bid HTTP/1.1\r\nContent-Length: {too_long}\r\n\r\n".encode())
    status, _, _ = await read_answer(reader)
    assert status == 413 and await reader.read() == b""
    await close(writer)


async def test_each_bid_request_is_one_redis_command(front: Worker, redis: Redis) -> None:
    """MONITOR sees every command a client sends (and, marked "lua", those scripts run):
    during the requests, the only client commands are one lookup per request."""
    assert front.settings.redis_url is not None
    watcher = Redis.from_url(front.settings.redis_url)
    seen: list[dict[str, Any]] = []
    started = asyncio.Event()

    async def watch() -> None:
        async with watcher.monitor() as monitor:
            started.set()
            async for command in monitor.listen():
                seen.append(command)

    task = asyncio.create_task(watch())
    await started.wait()
    await asyncio.sleep(0.1)
    seen.clear()
    pipe = front.app[PIPE]
    reader, writer = await connect(front)
    requests, sent = 20, pipe.sent
    try:
        for _ in range(requests):
            writer.write(http_post(payload()))
            assert (await read_answer(reader))[0] == 200
        await asyncio.sleep(0.1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await close(writer)
        await watcher.aclose()
        await watcher.connection_pool.disconnect()
    from_clients = [c["command"] for c in seen if c.get("client_type") != "lua"]
    assert pipe.sent - sent == requests
    assert len(from_clients) == requests
    assert all(command.startswith("EVALSHA") for command in from_clients)


async def test_a_stalled_redis_costs_a_no_bid_inside_tmax(front: Worker, redis: Redis) -> None:
    reader, writer = await connect(front)
    # Scripts count as writes: the lookup waits for the pause to end, the answer must not.
    await redis.execute_command("CLIENT", "PAUSE", "400", "WRITE")  # type: ignore[no-untyped-call]
    try:
        started = time.monotonic()
        writer.write(http_post(payload(tmax=100)))
        status, _, _ = await read_answer(reader)
        elapsed_ms = (time.monotonic() - started) * 1000
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]
    assert status == 204 and elapsed_ms < 100
    await asyncio.sleep(0.05)  # the late reply arrives and is dropped; the next bid is fine
    writer.write(http_post(payload()))
    assert (await read_answer(reader))[0] == 200
    await close(writer)


async def test_requests_waiting_on_a_stalled_redis_are_each_answered_by_their_own_tmax(
    front: Worker, redis: Redis
) -> None:
    tmaxes = (60, 150, 100)  # a deadline sweep answers each by its own, in no fixed order
    connections = [await connect(front) for _ in tmaxes]
    await redis.execute_command("CLIENT", "PAUSE", "400", "WRITE")  # type: ignore[no-untyped-call]
    try:

        async def timed(at: int) -> tuple[int, float]:
            reader, writer = connections[at]
            started = time.monotonic()
            writer.write(http_post(payload(tmax=tmaxes[at])))
            status, _, _ = await read_answer(reader)
            return status, (time.monotonic() - started) * 1000

        answers = await asyncio.gather(*(timed(at) for at in range(len(tmaxes))))
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]
    for tmax, (status, elapsed_ms) in zip(tmaxes, answers, strict=True):
        # Not late, and not given up on much before the deadline (tmax less its margin,
        # 10 ms here, and up to a sweep period early).
        assert status == 204 and tmax * 0.6 < elapsed_ms < tmax, (tmax, elapsed_ms)
    for _, writer in connections:
        await close(writer)


async def test_the_lookup_connection_comes_back_after_it_is_killed(
    front: Worker, redis: Redis
) -> None:
    reader, writer = await connect(front)
    writer.write(http_post(payload()))
    assert (await read_answer(reader))[0] == 200
    lookups = [c for c in await redis.client_list() if c["name"] == LOOKUP_CLIENT_NAME]
    assert len(lookups) == 1
    await redis.client_kill_filter(_id=lookups[0]["id"])
    deadline = time.monotonic() + 5
    statuses = []
    while time.monotonic() < deadline:
        writer.write(http_post(payload()))
        status, _, _ = await read_answer(reader)
        statuses.append(status)
        if status == 200:
            break
        await asyncio.sleep(0.05)
    await close(writer)
    assert statuses[-1] == 200 and set(statuses) <= {200, 204}


def accept_queue(port: int) -> int:
    """Connections the kernel holds for the listener on 127.0.0.1:``port``, not yet accepted
    (a listening socket's rx_queue in /proc/net/tcp)."""
    local = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == "0A":  # LISTEN
            return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


async def test_a_burst_of_connections_beyond_the_old_backlog_waits_in_the_kernel(
    front: Worker,
) -> None:
    # An exchange opens its whole pool at once. Held by a blocked loop, every handshake must
    # wait in the accept queue: one that overflows it is dropped and retried a second later.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096:  # the burst's sockets, then accepted
        soft = hard if hard == resource.RLIM_INFINITY else min(4096, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    burst = min(1500, somaxconn)
    assert burst > 1024, f"net.core.somaxconn {somaxconn} caps every backlog below the burst"
    assert soft == resource.RLIM_INFINITY or soft > 2 * burst + 100, (
        f"RLIMIT_NOFILE {soft} cannot hold {burst} connections and their accepted ends"
    )
    port = front.settings.port
    clients = []
    try:
        for _ in range(burst):  # the loop does not run here: nothing is accepted
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", port))
            clients.append(client)
        queued, deadline = 0, time.monotonic() + 5
        while queued < burst and time.monotonic() < deadline:
            time.sleep(0.05)
            queued = accept_queue(port)
    finally:
        for client in clients:
            client.close()
    assert queued == burst
    # The loop accepts them all (closed: each one ends at once) and still serves bids.
    await asyncio.sleep(0.5)
    reader, writer = await connect(front)
    writer.write(http_post(payload()))
    status, _, _ = await read_answer(reader)
    await close(writer)
    assert status == 200


async def test_the_shedder_sheds_while_the_loop_lags_and_stops_after() -> None:
    shedder = Shedder(period_s=0.002, threshold_s=0.005, step=0.25)
    shedder.start()
    try:
        for _ in range(6):
            time.sleep(0.02)  # the loop is stuck: every heartbeat is late
            await asyncio.sleep(0.003)
        assert shedder.share > 0.5
        assert sum(shedder.shed() for _ in range(1000)) > 300
        await asyncio.sleep(0.5)  # on time again: the share decays to nothing
        assert shedder.share == 0.0 and not shedder.shed()
    finally:
        shedder.stop()


async def test_the_shedder_sheds_in_proportion_to_how_far_the_loop_is_behind() -> None:
    # A stuck loop wakes the heartbeat late and seldom: one late beat must count for its lag.
    shares = []
    for stall_s in (0.01, 0.04):
        shedder = Shedder(period_s=0.002, threshold_s=0.005, step=0.05)
        shedder.start()
        try:
            await asyncio.sleep(0.01)
            time.sleep(stall_s)  # the loop is stuck once
            await asyncio.sleep(0.001)  # the late heartbeat runs
            shares.append(shedder.share)
        finally:
            shedder.stop()
    assert shares[1] >= 0.25 and shares[1] > 2 * shares[0]
