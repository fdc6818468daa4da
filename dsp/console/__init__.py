"""The advertiser console: a static web page at ``/console`` that works only through ``/api/v1``.

The page (``static/``: HTML, one stylesheet, plain ES modules, no build step and nothing
fetched from elsewhere) signs in with an advertiser's API token, kept in the tab's
``sessionStorage``, and sends it as a bearer token on every call. It has no endpoint of its
own: whatever it shows, the token's advertiser could read through the API itself, so it
cannot show one advertiser another's data.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"
PREFIX = "/console"
# Scripts and styles only from here; creatives' images and videos may come from anywhere.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src * data: blob:; media-src *; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers=_HEADERS)


def setup_console(app: web.Application) -> None:
    """Serve the console at ``/console`` (its files under ``/console/static/``)."""
    app.router.add_get(PREFIX, _index)
    app.router.add_get(f"{PREFIX}/", _index)
    app.router.add_static(f"{PREFIX}/static", STATIC)
