"""Handlers of the API's objects: create, read, list, replace, patch, archive.

One set of thin handlers serves every kind (campaigns, creatives, audiences, and the
caller's own advertiser): read the request, decide on a snapshot (``dsp.api.changes``),
write it atomically (``dsp.api.store``), answer the object with its ETag. An object of
another advertiser is looked up under the caller's own keys only, so it is a plain 404.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from dsp.api import changes, store
from dsp.api.http import (
    API,
    PREFIX,
    READ,
    WRITE,
    Handler,
    bool_param,
    caller,
    int_param,
    json_body,
    json_response,
)
from dsp.api.records import ADVERTISER, KINDS, Actor, Kind, Record, Snapshot
from dsp.errors import InvalidPayload

MAX_PAGE = 200


def _object_response(record: Record, status: int = 200) -> web.Response:
    headers = {"ETag": record.etag}
    if status == 201:
        headers["Location"] = f"{PREFIX}/{KINDS[record.kind].plural}/{record.id}"
    return json_response(record.view(), status, headers)


def _cursor(request: web.Request) -> int:
    raw = request.query.get("cursor", "0")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise InvalidPayload("cursor", "expected the next_cursor of a previous page")
    return int(raw)


def create_handler(kind: Kind) -> Handler:
    async def create(request: web.Request) -> web.Response:
        who, api = caller(request, WRITE), request.app[API]
        body = await json_body(request)
        plan = await store.transact(
            api.redis,
            who.advertiser_id,
            lambda snapshot: changes.create(snapshot, kind, body, who.actor, api.rules),
        )
        return _object_response(plan.result, 201)

    return create


def read_handler(kind: Kind) -> Handler:
    async def read(request: web.Request) -> web.Response:
        who = caller(request, READ)
        object_id = request.match_info["id"]
        record = await store.get(request.app[API].redis, who.advertiser_id, kind, object_id)
        return _object_response(record)

    return read


def list_handler(kind: Kind) -> Handler:
    async def list_objects(request: web.Request) -> web.Response:
        who, redis = caller(request, READ), request.app[API].redis
        limit = int_param(request, "limit", 50, 1, MAX_PAGE)
        cursor, archived = _cursor(request), bool_param(request, "include_archived")
        if kind is ADVERTISER:
            own = await store.get(redis, who.advertiser_id, kind, who.advertiser_id)
            page = store.Page([own] if cursor == 0 else [], None)
        else:
            page = await store.list_page(
                redis, who.advertiser_id, kind, limit=limit, cursor=cursor,
                include_archived=archived,
            )  # fmt: skip
        items = [record.view() for record in page.items]
        return json_response({"items": items, "next_cursor": page.next_cursor})

    return list_objects


# (snapshot, kind, object id, body, If-Match, actor, rules) -> what to write
Change = Callable[[Snapshot, Kind, str, Any, str | None, Actor, changes.Rules], changes.Plan]


def _change_handler(kind: Kind, change: Change, *, with_body: bool) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        who, api = caller(request, WRITE), request.app[API]
        object_id = request.match_info["id"]
        if_match = request.headers.get("If-Match")
        body = await json_body(request) if with_body else None
        plan = await store.transact(
            api.redis,
            who.advertiser_id,
            lambda snapshot: change(
                snapshot, kind, object_id, body, if_match, who.actor, api.rules
            ),
        )
        return _object_response(plan.result)

    return handle


def _archive(
    snapshot: Snapshot,
    kind: Kind,
    object_id: str,
    body: Any,
    if_match: str | None,
    actor: Actor,
    rules: changes.Rules,
) -> changes.Plan:
    return changes.archive(snapshot, kind, object_id, if_match, actor, rules)


def replace_handler(kind: Kind) -> Handler:
    return _change_handler(kind, changes.replace, with_body=True)


def patch_handler(kind: Kind) -> Handler:
    return _change_handler(kind, changes.patch, with_body=True)


def archive_handler(kind: Kind) -> Handler:
    return _change_handler(kind, _archive, with_body=False)
