"""A small exchange for the cluster tests and the cluster bench: bid requests at a bounded
rate over keep-alive connections, every answer timed, and the win notice of every bid
sent and retried until the bidder acknowledges it (a 503 or a lost connection is retried,
as an exchange does; the ledger counts a notice once however often it comes)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
import orjson

from tests.dsp.factories import bid_request

CLEARING_CPM = "1.00"  # every auction clears at $1 CPM: 1,000 micros a win
CLEARING_MICROS = 1_000


@dataclass
class Answer:
    sent_at: float  # seconds since the load started
    status: int  # 200 bid, 204 no bid, 0 no answer (connection failed)
    latency_ms: float


@dataclass
class Tally:
    answers: list[Answer] = field(default_factory=list)
    wins_acknowledged: int = 0
    win_attempts: int = 0
    win_failures: dict[int, int] = field(default_factory=dict)  # status -> count (retried)
    wins_refused: int = 0  # 4xx: the bidder refused the notice for good (unknown lease)
    charged_micros: int = 0  # as the acknowledgements said (a duplicate says 0)

    def statuses(self, start: float, stop: float) -> dict[int, int]:
        found: dict[int, int] = {}
        for answer in self.answers:
            if start <= answer.sent_at < stop:
                found[answer.status] = found.get(answer.status, 0) + 1
        return found


async def _post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes
) -> tuple[int, bytes]:
    writer.write(
        b"POST /openrtb2/bid HTTP/1.1\r\nHost: bidder\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return status, await reader.readexactly(length) if length else b""


async def _notify(session: aiohttp.ClientSession, url: str, tally: Tally, give_up_s: float) -> None:
    deadline = time.monotonic() + give_up_s
    while time.monotonic() < deadline:
        tally.win_attempts += 1
        try:
            async with session.get(url) as response:
                body = await response.read()
                if response.status == 200:
                    tally.wins_acknowledged += 1
                    tally.charged_micros += int(orjson.loads(body)["charged_micros"])
                    return
                if 400 <= response.status < 500:
                    tally.wins_refused += 1
                    return
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        tally.win_failures[status] = tally.win_failures.get(status, 0) + 1
        await asyncio.sleep(0.1)


async def run_load(
    port: int,
    ifas: list[str],
    *,
    qps: float,
    duration_s: float,
    tmax_ms: int = 100,
    connections: int = 4,
    wins: bool = True,
    give_up_s: float = 30.0,
    auction_prefix: str = "auction",
) -> Tally:
    """``qps`` bid requests a second for ``duration_s`` (round robin over ``ifas``); the win
    notice of every bid is sent at once and retried until acknowledged."""
    tally = Tally()
    started = time.monotonic()
    notices: set[asyncio.Task[None]] = set()
    total = int(qps * duration_s)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))

    async def connection(number: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for index in range(number, total, connections):
                due = started + index / qps
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                request = bid_request(ifa=ifas[index % len(ifas)], tmax=tmax_ms)
                request["id"] = f"{auction_prefix}-{index}"
                sent = time.monotonic()
                try:
                    status, body = await _post(reader, writer, orjson.dumps(request))
                except (OSError, asyncio.IncompleteReadError):
                    status, body = 0, b""
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                tally.answers.append(
                    Answer(sent - started, status, (time.monotonic() - sent) * 1000)
                )
                if status == 200 and wins:
                    for seat in orjson.loads(body)["seatbid"]:
                        for bid in seat["bid"]:
                            url = bid["nurl"].replace("${AUCTION_PRICE}", CLEARING_CPM)
                            task = asyncio.create_task(_notify(session, url, tally, give_up_s))
                            notices.add(task)
                            task.add_done_callback(notices.discard)
        finally:
            writer.close()

    try:
        await asyncio.gather(*(connection(n) for n in range(connections)))
        if notices:
            await asyncio.wait(list(notices))
    finally:
        await session.close()
    return tally
