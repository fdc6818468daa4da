"""``GET /conv`` and the server-to-server ``POST /conv``: verify, attribute, record once.

Parameters (query string for GET; form or JSON body for POST):

- ``click`` (or ``dsp_click``): the click id the landing URL carried. Its signature
  authenticates the postback; a forged id is refused (403 ``forged_click``), a click past
  its campaign's click window too (403 ``expired_click``).
- or, server to server only, ``device_id`` and ``device_type`` (idfa, gaid, imei, ...;
  raw or hashed) with the advertiser's API token (``Authorization: Bearer``): the
  conversion goes to the device's last touch among that advertiser's campaigns (a click in
  its window, or an impression in the view-through window).
- ``order`` (optional): the advertiser's order id; the same order id counts once.
- ``value`` (optional): the conversion's value, integer USD micros.

The answer is JSON: whether it was attributed, to what, and whether it was a duplicate.
Redis unavailable: 503 with Retry-After, like every other notice (``errors_middleware``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import orjson
from aiohttp import web
from redis.asyncio import Redis

from dmp.errors import InvalidDeviceId
from dmp.ids import parse_device_id
from dsp.api.http import WRITE
from dsp.api.store import advertiser_of
from dsp.campaigns.live import LiveCampaigns
from dsp.conversions.attribution import (
    DAY_S,
    Touch,
    click_through,
    last_touch,
    touches_of,
)
from dsp.conversions.click_ids import PARAM, ClickIds
from dsp.conversions.errors import ConversionRefused
from dsp.conversions.recorder import Conversion, ConversionRecorder
from dsp.errors import BadNotice
from dsp.metrics import Metrics
from infra import keys
from infra.settings import Settings
from infra.tokens import verify_token

MAX_VALUE_MICROS = 10**13  # ten million USD: beyond it, a unit mistake
MAX_ORDER_LEN = 128
DEFAULT_CLICK_WINDOW_DAYS = 7


def _value(params: Mapping[str, str]) -> int:
    raw = params.get("value", "") or "0"
    if not raw.isdigit() or int(raw) > MAX_VALUE_MICROS:
        raise BadNotice("value", f"expected integer micros from 0 to {MAX_VALUE_MICROS}")
    return int(raw)


def _order(params: Mapping[str, str]) -> str:
    order = params.get("order", "")
    if len(order) > MAX_ORDER_LEN or not order.isprintable():
        raise BadNotice("order", f"expected at most {MAX_ORDER_LEN} printable characters")
    return order


async def read_params(request: web.Request) -> dict[str, str]:
    """The postback's parameters: the query, and for a POST its form or JSON body on top."""
    params = dict(request.query)
    if request.method != "POST":
        return params
    if request.content_type == "application/json":
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise BadNotice("body", "not JSON") from None
        if not isinstance(body, dict):
            raise BadNotice("body", "expected a JSON object")
        params.update({str(k): str(v) for k, v in body.items() if v is not None})
    else:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


@dataclass(slots=True)
class Conversions:
    """The conversion endpoint's logic, over the live campaigns and one Redis pool."""

    settings: Settings
    redis: Redis
    click_ids: ClickIds
    live: LiveCampaigns
    metrics: Metrics
    clock: Callable[[], float] = time.time  # injectable: windows are tested without sleeps
    recorder: ConversionRecorder = field(init=False)

    def __post_init__(self) -> None:
        self.recorder = ConversionRecorder(
            self.redis,
            dedup_ttl_s=self.settings.conversion_dedup_ttl_s,
            stream_maxlen=self.settings.event_stream_maxlen,
        )

    def click_window_s(self, campaign_id: str) -> int:
        campaign = self.live.by_id.get(campaign_id)
        days = campaign.click_window_days if campaign else DEFAULT_CLICK_WINDOW_DAYS
        return days * DAY_S

    def _scope(self, campaign_id: str) -> str:
        campaign = self.live.by_id.get(campaign_id)
        return f"a:{campaign.advertiser_id}" if campaign else f"c:{campaign_id}"

    async def handle(self, request: web.Request) -> web.Response:
        """Record a conversion postback once; see the module docstring for its parameters."""
        params = await read_params(request)
        now = self.clock()
        click = params.get("click") or params.get(PARAM)
        if click:
            clicked = self.click_ids.read(click)
            window_s = self.click_window_s(clicked.campaign_id)
            touch: Touch | None = click_through(clicked, int(now * 1000), window_s)
        elif "device_id" in params:
            if request.method != "POST":
                raise BadNotice("device_id", "device postbacks are server to server: POST")
            advertiser = await self._advertiser(request)
            touch = await self._device_touch(params, advertiser, int(now * 1000))
        else:
            raise BadNotice("click", "missing: a click id, or device_id and device_type")
        value, order = _value(params), _order(params)
        if touch is None:
            self.metrics.count("unattributed_conversions")
            return web.json_response({"attributed": False, "duplicate": False})
        conversion = Conversion(touch, self._scope(touch.campaign_id), order, value)
        counted = await self.recorder.record(conversion, now)
        self.metrics.count(f"{touch.event_type}s" if counted else "duplicate_conversions")
        return web.json_response(
            {
                "attributed": True,
                "duplicate": not counted,
                "type": touch.event_type,
                "campaign_id": touch.campaign_id,
                "creative_id": touch.creative_id,
                "value_micros": value,
            }
        )

    async def _advertiser(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ConversionRefused("no_token", "a device postback needs the advertiser's token")
        info = await verify_token(self.redis, "dsp", token.strip())
        if info is None:
            raise ConversionRefused("no_token", "unknown or revoked token")
        if WRITE not in info.scopes:
            raise ConversionRefused("no_token", f"the token lacks the {WRITE!r} scope")
        advertiser = await advertiser_of(self.redis, info.owner)
        if advertiser is not None and advertiser.archived:
            raise ConversionRefused("no_token", "the token's advertiser is archived")
        return info.owner

    async def _device_touch(
        self, params: Mapping[str, str], advertiser: str, now_ms: int
    ) -> Touch | None:
        try:
            device = parse_device_id(params.get("device_type", ""), params["device_id"])
        except InvalidDeviceId as error:
            raise BadNotice("device_id", str(error)) from None
        async with self.redis.pipeline(transaction=False) as pipe:
            for digest in device.digests():
                pipe.hgetall(keys.device_touches(digest))
            stored = await pipe.execute()
        owned = {c.id for c in self.live.by_id.values() if c.advertiser_id == advertiser}
        touches = [
            touch for found in stored for touch in touches_of(found) if touch.campaign_id in owned
        ]
        return last_touch(
            touches,
            now_ms,
            click_window_s=self.click_window_s,
            view_window_s=self.settings.view_window_s,
        )
