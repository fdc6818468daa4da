"""Servers the ``bid`` group loads: two references and the real bidder, each in its own process.

* canned: raw asyncio answering every request with a fixed 204, the load generator's ceiling;
* bare: aiohttp on uvloop reading and parsing the JSON body, answering a fixed small JSON;
* the bidder: ``dsp serve`` as deployed, with one or more worker processes.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import orjson
import uvloop
from aiohttp import web

from infra.embedded_redis import die_with_parent, free_port
from infra.processes import stop_process

_CANNED_204 = b"HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n"
_BARE_ANSWER = orjson.dumps({"id": "bare", "seatbid": [], "nbr": 0})
_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


def _content_length(head: bytes) -> int:
    at = head.lower().find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    stop = head.find(b"\r\n", at + 2)
    return int(head[at + 17 : stop if stop > 0 else len(head)])


class _Canned(asyncio.Protocol):
    """Answers each complete request (head and body) with the canned 204."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, only alike
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer, answers = self.buffer, 0
        buffer += data
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            total = end + 4 + _content_length(bytes(buffer[:end]))
            if len(buffer) < total:
                break
            del buffer[:total]
            answers += 1
        if answers and self.transport is not None:
            self.transport.write(_CANNED_204 * answers)


async def _serve_canned(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Canned, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def run_canned(port: int) -> None:
    """Process target: the canned 204 server, until terminated."""
    uvloop.run(_serve_canned(port))


async def _bare_bid(request: web.Request) -> web.Response:
    orjson.loads(await request.read())
    return web.Response(body=_BARE_ANSWER, content_type="application/json")


def run_bare(port: int) -> None:
    """Process target: the bare aiohttp server, until terminated."""
    app = web.Application()
    app.router.add_post("/openrtb2/bid", _bare_bid)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


def _listening_sockets(port: int) -> list[str] | None:
    """Inodes of the sockets listening on the loopback ``port``; None without ``/proc``."""
    table = Path("/proc/net/tcp")
    if not table.exists():
        return None
    wanted = f":{port:04X}"
    return [
        fields[9]
        for fields in (line.split() for line in table.read_text().splitlines()[1:])
        if fields[1].endswith(wanted) and fields[3] == _LISTEN
    ]


def listeners(port: int) -> int:
    """Sockets listening on the loopback ``port`` (one per worker with SO_REUSEPORT)."""
    sockets = _listening_sockets(port)
    return -1 if sockets is None else len(sockets)


def listening_pids(port: int) -> list[int]:
    """Processes holding a socket that listens on ``port`` (Linux ``/proc``; [] elsewhere)."""
    inodes = {f"socket:[{inode}]" for inode in _listening_sockets(port) or ()}
    if not inodes:
        return []
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
        except OSError:
            continue  # gone, or not ours to read
        if links & inodes:
            found.append(int(proc.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _wait_listening(port: int, count: int, alive: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the server on port {port} exited before listening")
        found = listeners(port)
        if found >= count or (found < 0 and _healthy(port)):
            return
        time.sleep(0.05)
    raise RuntimeError(f"no {count} listener(s) on port {port} after {timeout_s:.0f} s")


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
            return int(answer.status) == 200
    except OSError:
        return False


@contextmanager
def server_process(target: Callable[[int], None]) -> Iterator[int]:
    """``target(port)`` in a spawned process; yields the port once it listens."""
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(target=target, args=(port,))
    process.start()
    try:
        _wait_listening(port, 1, process.is_alive, 30)
        yield port
    finally:
        process.terminate()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()


@contextmanager
def bidder_process(
    redis_url: str, workers: int = 1, shed_lag_ms: int | None = None
) -> Iterator[int]:
    """``dsp serve`` on a free port with ``workers`` processes; yields the port once all listen.
    ``shed_lag_ms``: the load-shedding threshold (``DSP_SHED_LAG_MS``), else the default."""
    port = free_port()
    command = [sys.executable, "-m", "dsp.cli", "serve", "--port", str(port)]
    command += ["--workers", str(workers), "--redis-url", redis_url]
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    if shed_lag_ms is not None:
        env["DSP_SHED_LAG_MS"] = str(shed_lag_ms)
    child = subprocess.Popen(command, env=env, preexec_fn=die_with_parent)
    try:
        _wait_listening(port, workers, lambda: child.poll() is None, 60)
        deadline = time.monotonic() + 30
        while not _healthy(port):
            if time.monotonic() > deadline:
                raise RuntimeError("the bidder did not become healthy")
            time.sleep(0.1)
        yield port
    finally:
        stop_process(child)
