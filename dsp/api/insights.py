"""What the advertiser console asks of the DMP, through the public API like everything else.

    GET  /taxonomy    every tag of the DMP taxonomy (dimension / category / tag), for pickers
    POST /estimates   ``{"expression"}``: how many DMP devices a tag expression reaches now
    POST /analysis    ``{"ids", "id_type"?}``: reverse analysis of an uploaded ID list

The taxonomy and the population are the DMP's, shared by every advertiser; nothing here
reads another advertiser's objects. An ID list's analysis is aggregated, and withheld
(counts only) when fewer than ``MIN_ANALYSED`` devices matched, so an upload of one or two
IDs cannot read out what the DMP knows of a single device.

Sizes come from the DMP's columnar audience index (``dmp.audience_build.IndexCache``), kept
per process and served stale while a rebuild runs, so a live estimate never waits for a scan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from redis.asyncio import Redis

from dmp.audience_build import IndexCache
from dmp.audience_ids import match_ids
from dmp.errors import DmpError
from dmp.reverse_analysis import Analysis, analyse_mask
from dmp.tag_expression import parse, referenced_tags, to_text
from dmp.taxonomy import Taxonomy
from dsp.api.http import API, READ, Handler, caller, json_body, json_response
from dsp.api.schemas import Schema
from dsp.api.validation import Validators
from dsp.errors import InvalidPayload

MIN_ANALYSED = 20  # fewer matched devices than this: counts only, no shares
MAX_IDS = 5_000  # lines per upload, within the request body limit (DSP_API_MAX_BODY_BYTES)
MAX_EXPRESSION = 4000

ESTIMATE_INPUT: Schema = {
    "type": "object",
    "properties": {
        "expression": {
            "type": "string",
            "maxLength": MAX_EXPRESSION,
            "description": "A tag expression; empty for the whole population",
            "examples": ["interest.travel AND NOT base.age.under_18"],
        }
    },
    "required": ["expression"],
    "additionalProperties": False,
}
_ID_LINE: Schema = {"type": "string", "maxLength": 100}
ANALYSIS_INPUT: Schema = {
    "type": "object",
    "properties": {
        "ids": {
            "description": "ID lines (`type,value`, or bare values of `id_type`), or one text",
            "oneOf": [
                {"type": "array", "items": _ID_LINE, "maxItems": MAX_IDS},
                # One text is bounded by the body limit (DSP_API_MAX_BODY_BYTES), lines by MAX_IDS.
                {"type": "string"},
            ],
        },
        "id_type": {
            "type": "string",
            "pattern": "^[a-z0-9_]{1,32}$",
            "description": "Type of bare values: idfa, gaid, imei_md5, ...",
        },
    },
    "required": ["ids"],
    "additionalProperties": False,
}


@dataclass(frozen=True, slots=True)
class Insights:
    """The DMP views of one process: taxonomy, index cache, validators."""

    redis: Redis
    taxonomy: Taxonomy
    indexes: IndexCache
    validators: Validators
    taxonomy_json: bytes


INSIGHTS = web.AppKey("insights", Insights)


def _taxonomy_json(taxonomy: Taxonomy) -> bytes:
    tags = [
        {
            "id": tag.id,
            "code": tag.code,
            "name": tag.name,
            "dimension": tag.dimension,
            "category": tag.category,
            "scored": tag.scored,
        }
        for tag in taxonomy.tags
    ]
    return orjson.dumps({"tags": tags})


def context(taxonomy: Taxonomy) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` of the API sub-app, run after the one that sets its ``Api``."""

    async def insights_ctx(sub: web.Application) -> AsyncIterator[None]:
        redis = sub[API].redis
        indexes = IndexCache(redis, taxonomy, serve_stale=True)
        validators = Validators({"EstimateInput": ESTIMATE_INPUT, "AnalysisInput": ANALYSIS_INPUT})
        sub[INSIGHTS] = Insights(redis, taxonomy, indexes, validators, _taxonomy_json(taxonomy))
        yield
        await indexes.close()

    return insights_ctx


async def taxonomy(request: web.Request) -> web.Response:
    """``GET /taxonomy``: every tag, in taxonomy order."""
    caller(request, READ)
    body = request.app[INSIGHTS].taxonomy_json
    return web.Response(body=body, content_type="application/json")


async def estimate(request: web.Request) -> web.Response:
    """``POST /estimates``: the devices a tag expression matches now, and the population."""
    caller(request, READ)
    insights = request.app[INSIGHTS]
    body = await json_body(request)
    insights.validators.check("EstimateInput", body)
    text = body["expression"].strip()
    canonical = None
    if text:
        try:
            expr = parse(text)
            referenced_tags(expr, insights.taxonomy)
        except DmpError as error:
            raise InvalidPayload("expression", str(error)) from error
        canonical = to_text(expr)
    index = await insights.indexes.get()
    size = index.size(index.evaluate(expr, insights.taxonomy)) if text else index.devices
    return json_response({"expression": canonical, "devices": size, "population": index.devices})


def _lines(ids: str | list[str]) -> list[str]:
    lines = ids.splitlines() if isinstance(ids, str) else ids
    if len(lines) > MAX_IDS:
        raise InvalidPayload("ids", f"at most {MAX_IDS:,} lines per upload")
    return lines


def _analysis_view(analysis: Analysis) -> dict[str, Any]:
    view: dict[str, Any] = analysis.to_dict()
    withheld = analysis.analysed < MIN_ANALYSED
    view["withheld"] = withheld
    if withheld:
        view.update(dimensions=[], categories=[], tags=[])
    else:
        view["tags"] = [row.to_dict() for row in analysis.level("tag") if row.count]
    return view


async def analyse(request: web.Request) -> web.Response:
    """``POST /analysis``: how an uploaded ID list differs from the whole DMP population."""
    caller(request, READ)
    insights = request.app[INSIGHTS]
    body = await json_body(request)
    insights.validators.check("AnalysisInput", body)
    lines = _lines(body["ids"])
    try:
        matched = await match_ids(insights.redis, lines, body.get("id_type"))
    except DmpError as error:
        raise InvalidPayload("id_type", str(error)) from error
    index = await insights.indexes.get()
    analysis = analyse_mask(index, index.mask_of(matched.packed()), given=matched.report.lines)
    report = matched.report.to_dict()
    return json_response(
        {"match": report, "min_analysed": MIN_ANALYSED, **_analysis_view(analysis)}
    )


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/taxonomy", taxonomy),
    ("POST", "/estimates", estimate),
    ("POST", "/analysis", analyse),
]
