"""Read-only views of the API: the CTR report and the audit log, the caller's own only."""

from __future__ import annotations

import re

import orjson
from aiohttp import web

from dsp.api import store
from dsp.api.audit import AuditQuery, read_audit
from dsp.api.http import API, READ, caller, choice_param, int_param, json_response
from dsp.api.records import CAMPAIGN, KINDS
from dsp.errors import InvalidPayload, ObjectNotFound
from dsp.reporting.report import DIMENSIONS, build_report, format_report

_STREAM_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
AUDITED_KINDS = (*KINDS, "token")
_DIMENSION = "(" + "|".join(DIMENSIONS) + ")"
BY_PATTERN = f"^{_DIMENSION}(,{_DIMENSION})*$"
CATCH_UP_S = 2.0  # at most this long counting a backlog before answering


def _dimensions(request: web.Request) -> tuple[str, ...]:
    raw = request.query.get("by", "campaign")
    if not re.fullmatch(BY_PATTERN, raw):
        raise InvalidPayload("by", f"expected a comma-separated subset of {','.join(DIMENSIONS)}")
    return tuple(name for name in DIMENSIONS if name in raw.split(","))


async def report(request: web.Request) -> web.Response:
    """``GET /reports``: wins, impressions, clicks, CTR (with its 95 % Wilson interval,
    ``ctr_low``/``ctr_high``) and spend of the caller's campaigns, by campaign, creative,
    day, hour or matched tag; issue 12: conversions, CVR per click and per impression
    (with Wilson intervals), CPA and ROAS. Events still in the stream are counted first (within
    ``CATCH_UP_S``)."""
    who, redis = caller(request, READ), request.app[API].redis
    by = _dimensions(request)
    fmt = choice_param(request, "format", ("json", "csv"), "json")
    campaign_ids = set(await store.owned_ids(redis, who.advertiser_id, CAMPAIGN))
    wanted = request.query.get("campaign_id")
    if wanted is not None:
        if wanted not in campaign_ids:
            raise ObjectNotFound(CAMPAIGN.name, wanted)
        campaign_ids = {wanted}
    rows = await build_report(redis, by, campaign_ids, catch_up_s=CATCH_UP_S)
    if fmt == "csv":
        return web.Response(text=format_report(rows, by, "csv"), content_type="text/csv")
    records = orjson.loads(format_report(rows, by, "json"))
    return json_response({"by": list(by), "rows": records})


def _audit_query(request: web.Request) -> AuditQuery:
    kind = request.query.get("kind")
    if kind is not None and kind not in AUDITED_KINDS:
        raise InvalidPayload("kind", f"expected one of {', '.join(AUDITED_KINDS)}")
    object_id = request.query.get("object_id")
    if object_id is not None and not _ID.fullmatch(object_id):
        raise InvalidPayload("object_id", "expected an object id")
    cursor = request.query.get("cursor")
    if cursor is not None and not _STREAM_ID.fullmatch(cursor):
        raise InvalidPayload("cursor", "expected the next_cursor of a previous page")
    limit = int_param(request, "limit", 50, 1, 200)
    return AuditQuery(kind, object_id, limit, cursor)


async def audit(request: web.Request) -> web.Response:
    """``GET /audit``: the caller's audit entries, newest first."""
    who = caller(request, READ)
    items, cursor = await read_audit(
        request.app[API].redis, who.advertiser_id, _audit_query(request)
    )
    return json_response({"items": items, "next_cursor": cursor})
