"""The console in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

One browser for the browser tests, all in one module (``test_browser.py``): the fixtures are
module-scoped because Playwright's sync driver marks the thread's event loop as running for
as long as it is started, which the async tests of other modules could not bear. Per test, a
fresh browser context (1366x768, the laptop
screen the console is designed for) and the bidder app, console and API included, served on
a loopback port from its own event loop in a thread, against the session's Redis (flushed).
Any JavaScript error on a page fails the test. ``CONSOLE_SCREENSHOTS=DIR`` saves the
screenshots the README shows.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright
from redis.asyncio import Redis

from adx_mock.population import generate_population
from adx_mock.runner import RunConfig, run
from adx_mock.summary import Summary
from dmp.ingest import ingest_records
from dmp.taxonomy import Taxonomy
from dsp.admin import create_advertiser
from dsp.app import create_app
from infra.embedded_redis import free_port
from infra.settings import Settings

T = TypeVar("T")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1366, "height": 768}


class ConsoleServer:
    """``dsp serve``'s app on a loopback port, run by an event loop of its own."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.redis: Redis | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    async def _start(self) -> None:
        self.redis = Redis.from_url(self.redis_url)
        await self.redis.flushdb()
        settings = Settings(
            redis_url=self.redis_url, port=self.port, signing_key=b"k", campaign_refresh_s=0.05
        )
        self.runner = web.AppRunner(create_app(settings), access_log=None, shutdown_timeout=2)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.redis is not None:
            await self.redis.aclose()

    def advertiser(self, name: str) -> str:
        """A new advertiser; returns its API token."""

        async def create() -> str:
            assert self.redis is not None
            _, token, _ = await create_advertiser(self.redis, name, "Asia/Shanghai")
            return token

        return self.run(create())

    def seed(self, devices: int, seed: int = 7) -> list[dict[str, object]]:
        """A synthetic population ingested into the DMP; returns its records."""
        population = list(generate_population(devices, seed, Taxonomy.default()))

        async def ingest() -> None:
            assert self.redis is not None
            await ingest_records(
                self.redis, population, taxonomy=Taxonomy.default(), mode="merge", now=None
            )

        self.run(ingest())
        return population

    def auctions(self, population: list[dict[str, object]], requests: int, seed: int) -> Summary:
        """Run the exchange simulator against this server until ``requests`` were sent."""
        config = RunConfig(
            dsp_urls=[f"{self.url}/openrtb2/bid"],
            population=population,
            qps=1000,
            duration_s=None,
            max_requests=requests,
            tmax_ms=500,
            click_rate=0.25,
            seed=seed,
        )
        return self.run(run(config, progress=False))

    def __enter__(self) -> ConsoleServer:
        self.thread.start()
        self.run(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    yield browser
    browser.close()


@pytest.fixture
def server(redis_url: str) -> Iterator[ConsoleServer]:
    with ConsoleServer(redis_url) as started:
        yield started


@dataclass
class Errors:
    messages: list[str]


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors = Errors([])

    def on_console(message: ConsoleMessage) -> None:
        # An unreachable image is the page's business (it shows a placeholder), not an error.
        if message.type == "error" and "Failed to load resource" not in message.text:
            errors.messages.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.messages.append(str(error)))
    yield page
    context.close()
    assert errors.messages == [], errors.messages


def sign_in(page: Page, server: ConsoleServer, token: str) -> None:
    page.goto(f"{server.url}/console")
    page.get_by_label("API token").fill(token)
    page.get_by_label("API token").press("Enter")
    page.get_by_role("heading", name="Campaigns").wait_for()


def screenshot(page: Page, name: str, *, full_page: bool = False) -> None:
    """Saved only when ``CONSOLE_SCREENSHOTS`` names a folder (the README's pictures)."""
    folder = os.environ.get("CONSOLE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.evaluate("document.getElementById('status').textContent = ''")
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=full_page)
