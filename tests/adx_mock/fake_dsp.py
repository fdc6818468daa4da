"""A small fake DSP for simulator tests: bids a fixed price and records every call it gets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import orjson
from aiohttp import web

CLICK_LANDING = "https://brand.example/landing"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FakeDsp:
    """``price`` None never bids; ``no_bid_every`` n answers 204 to every n-th request."""

    name: str
    price: float | None = 2.0
    delay_s: float = 0.0
    no_bid_every: int = 0
    status: int | None = None
    body: bytes | None = None
    base_url: str = ""
    requests: list[dict[str, object]] = field(default_factory=list)
    bid_request_ids: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    calls: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    @property
    def bid_url(self) -> str:
        return f"{self.base_url}/bid"

    def hits(self, kind: str) -> list[dict[str, str]]:
        return self.calls.get(kind, [])

    async def bid(self, request: web.Request) -> web.StreamResponse:
        payload = orjson.loads(await request.read())
        self.requests.append(payload)
        self.headers.append(dict(request.headers))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status is not None:
            return web.Response(status=self.status, body=self.body or b"")
        if self.price is None or (
            self.no_bid_every and len(self.requests) % self.no_bid_every == 0
        ):
            return web.Response(status=204)
        self.bid_request_ids.append(payload["id"])
        return web.Response(
            body=orjson.dumps(self.answer(payload)), content_type="application/json"
        )

    def answer(self, payload: dict[str, object]) -> dict[str, object]:
        imps = payload["imp"]
        assert isinstance(imps, list)
        base = self.base_url
        bids = [
            {
                "id": f"{self.name}-{imp['id']}",
                "impid": imp["id"],
                "price": self.price,
                "adid": f"ad-{self.name}",
                "nurl": f"{base}/win?p=${{AUCTION_PRICE}}&a=${{AUCTION_ID}}&i=${{AUCTION_IMP_ID}}",
                "burl": f"{base}/bill?p=${{AUCTION_PRICE}}&a=${{AUCTION_ID}}",
                "lurl": f"{base}/loss?r=${{AUCTION_LOSS}}&p=${{AUCTION_PRICE}}&a=${{AUCTION_ID}}",
                "adm": (
                    f'<a href="{base}/click?a=${{AUCTION_ID}}&amp;i=${{AUCTION_IMP_ID}}">'
                    f'<img src="https://cdn.example/ad.png" width="300" height="250"></a>'
                    f'<img src="{base}/imp?a=${{AUCTION_ID}}&amp;p=${{AUCTION_PRICE}}"'
                    ' width="1" height="1">'
                ),
                "crid": f"cr-{self.name}",
                "cid": f"camp-{self.name}",
                "adomain": ["brand.example"],
            }
            for imp in imps
        ]
        return {"id": payload["id"], "seatbid": [{"seat": self.name, "bid": bids}], "cur": "USD"}


def _record(dsp: FakeDsp, kind: str, status: int) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        dsp.calls.setdefault(kind, []).append(dict(request.query))
        if status == 302:
            raise web.HTTPFound(CLICK_LANDING)
        return web.Response(status=status)

    return handler


def build_app(dsp: FakeDsp) -> web.Application:
    app = web.Application()
    app.router.add_post("/bid", dsp.bid)
    for kind, status in (("win", 200), ("bill", 204), ("imp", 200), ("loss", 204)):
        app.router.add_get(f"/{kind}", _record(dsp, kind, status))
    app.router.add_get("/click", _record(dsp, "click", 302))
    return app


@asynccontextmanager
async def serve(dsp: FakeDsp) -> AsyncIterator[FakeDsp]:
    """Run ``dsp`` on a free loopback port for the duration of the block."""
    runner = web.AppRunner(build_app(dsp), shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        dsp.base_url = f"http://{host}:{port}"
        yield dsp
    finally:
        await runner.cleanup()
