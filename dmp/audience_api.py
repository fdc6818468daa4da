"""``/api/v1/audiences`` and ``/api/v1/analysis``: thin handlers over ``dmp.audiences``.

Every handler acts for the token's owner; another owner's audience answers 404, the same
as one that does not exist.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from dmp.app_keys import AUDIENCES, REDIS
from dmp.audience_targeting import publish, unpublish
from dmp.auth import require
from dmp.errors import AudienceError
from dmp.reverse_analysis import Analysis, format_table, write_png

_MAX_ID_LINES = 5_000_000


async def _body(request: web.Request) -> Mapping[str, Any]:
    body = orjson.loads(await request.read())
    if not isinstance(body, dict):
        raise AudienceError("$", "expected a JSON object")
    return body


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise AudienceError(name, "expected a non-empty string")
    return value


def _lines(body: Mapping[str, Any]) -> list[str]:
    ids = body.get("ids")
    if isinstance(ids, str):
        ids = ids.splitlines()
    if not isinstance(ids, list) or not all(isinstance(line, str) for line in ids):
        raise AudienceError("ids", "expected a list of ID lines (or one newline-separated text)")
    if len(ids) > _MAX_ID_LINES:
        raise AudienceError("ids", f"at most {_MAX_ID_LINES:,} lines per upload")
    return ids


def _id_type(body: Mapping[str, Any]) -> str | None:
    value = body.get("id_type")
    if value is not None and not isinstance(value, str):
        raise AudienceError("id_type", "expected a string such as idfa or imei_md5")
    return value


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _owner(request: web.Request) -> str:
    return require(request, "audiences").owner


async def create_audience(request: web.Request) -> web.Response:
    """One of: ``{name, expression}``, ``{name, ids, id_type?}``, ``{name, operation, sources}``."""
    owner, body = _owner(request), await _body(request)
    audiences, name = request.app[AUDIENCES], _text(body, "name")
    if "expression" in body:
        audience = await audiences.create_from_expression(owner, name, _text(body, "expression"))
    elif "ids" in body:
        audience = await audiences.create_from_ids(owner, name, _lines(body), _id_type(body))
    elif "operation" in body:
        sources = body.get("sources")
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise AudienceError("sources", "expected a list of audience ids")
        audience = await audiences.combine(owner, name, _text(body, "operation"), sources)
    else:
        raise AudienceError("expression", "give an expression, ids, or an operation")
    await publish(request.app[REDIS], audiences, audience)
    return _json(audience.to_dict(), status=201)


async def list_audiences(request: web.Request) -> web.Response:
    found = await request.app[AUDIENCES].list(_owner(request))
    return _json([audience.to_dict() for audience in found])


async def get_audience(request: web.Request) -> web.Response:
    owner, audience_id = _owner(request), request.match_info["audience_id"]
    audiences = request.app[AUDIENCES]
    audience = await audiences.get(owner, audience_id)
    return _json({**audience.to_dict(), "size_now": await audiences.size(owner, audience_id)})


async def delete_audience(request: web.Request) -> web.Response:
    audience_id = request.match_info["audience_id"]
    await request.app[AUDIENCES].delete(_owner(request), audience_id)
    await unpublish(request.app[REDIS], audience_id)
    return web.Response(status=204)


async def split_audience(request: web.Request) -> web.Response:
    owner, body = _owner(request), await _body(request)
    ratios = body.get("ratios")
    if not isinstance(ratios, list) or not all(isinstance(r, int | float) for r in ratios):
        raise AudienceError("ratios", "expected a list of numbers such as [70, 30]")
    names = body.get("names")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) for n in names)
    ):
        raise AudienceError("names", "expected a list of names, one per part")
    seed = body.get("seed", 0)
    if not isinstance(seed, int):
        raise AudienceError("seed", "expected an integer")
    audiences = request.app[AUDIENCES]
    parts = await audiences.split(owner, request.match_info["audience_id"], ratios, names, seed)
    for part in parts:
        await publish(request.app[REDIS], audiences, part)
    return _json([part.to_dict() for part in parts], status=201)


async def export_audience(request: web.Request) -> web.StreamResponse:
    """The audience's IDs, one ``type,value`` a line (see ``Audiences.export``)."""
    owner = _owner(request)
    with tempfile.TemporaryDirectory(prefix="dmp-export-") as tmp:
        path = Path(tmp) / "ids.csv"
        await request.app[AUDIENCES].export(owner, request.match_info["audience_id"], path)
        return web.Response(body=path.read_bytes(), content_type="text/csv")


async def estimate(request: web.Request) -> web.Response:
    """The live size of a tag expression: what a console shows as conditions change."""
    _owner(request)
    body = await _body(request)
    size = await request.app[AUDIENCES].estimate(_text(body, "expression"))
    return _json({"size": size})


def _analysis_response(
    request: web.Request, analysis: Analysis, extra: dict[str, object]
) -> web.Response:
    fmt = request.query.get("format", "json")
    if fmt == "table":
        return web.Response(text=format_table(analysis), content_type="text/plain")
    if fmt == "png":
        with tempfile.TemporaryDirectory(prefix="dmp-analysis-") as tmp:
            path = Path(tmp) / "analysis.png"
            write_png(analysis, path)
            return web.Response(body=path.read_bytes(), content_type="image/png")
    if fmt != "json":
        raise AudienceError("format", "expected json, table or png")
    return _json({**extra, **analysis.to_dict()})


async def analyse_ids(request: web.Request) -> web.Response:
    """Reverse analysis of an uploaded ID list: every dimension and category, with lift."""
    _owner(request)
    body = await _body(request)
    report, analysis = await request.app[AUDIENCES].analyse_ids(_lines(body), _id_type(body))
    return _analysis_response(request, analysis, {"match": report.to_dict()})


async def analyse_audience(request: web.Request) -> web.Response:
    owner = _owner(request)
    analysis = await request.app[AUDIENCES].analyse(owner, request.match_info["audience_id"])
    return _analysis_response(request, analysis, {})


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_post("/api/v1/audiences", create_audience)
    router.add_get("/api/v1/audiences", list_audiences)
    router.add_post("/api/v1/audiences/estimate", estimate)
    router.add_get("/api/v1/audiences/{audience_id}", get_audience)
    router.add_delete("/api/v1/audiences/{audience_id}", delete_audience)
    router.add_post("/api/v1/audiences/{audience_id}/split", split_audience)
    router.add_get("/api/v1/audiences/{audience_id}/export", export_audience)
    router.add_get("/api/v1/audiences/{audience_id}/analysis", analyse_audience)
    router.add_post("/api/v1/analysis", analyse_ids)
