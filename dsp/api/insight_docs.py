"""The OpenAPI operations of ``dsp.api.insights``: taxonomy, estimates, analysis."""

from __future__ import annotations

from typing import Any

from dsp.api.http import PREFIX
from dsp.api.insights import ANALYSIS_INPUT, ESTIMATE_INPUT, MIN_ANALYSED
from dsp.api.schemas import Schema

_COUNT: Schema = {"type": "integer", "minimum": 0}
_SHARE: Schema = {"type": "number", "minimum": 0, "maximum": 1}
_TAG: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "description": "what reports by tag name it by"},
        "code": {"type": "string"},
        "name": {"type": "string"},
        "dimension": {"type": "string"},
        "category": {"type": "string"},
        "scored": {"type": "boolean", "description": "carries a 0..100 score (`>= 60`)"},
    },
    "required": ["id", "code", "name", "dimension", "category", "scored"],
}
_ROW: Schema = {
    "type": "object",
    "properties": {
        "level": {"enum": ["dimension", "category", "tag"]},
        "code": {"type": "string"},
        "count": _COUNT,
        "share": _SHARE,
        "population_count": _COUNT,
        "population_share": _SHARE,
        "lift": {"type": ["number", "null"]},
    },
    "required": ["level", "code", "count", "share", "population_count", "population_share"],
}
_MATCH: Schema = {
    "type": "object",
    "properties": {
        "lines": _COUNT,
        "matched": _COUNT,
        "unmatched": _COUNT,
        "invalid": _COUNT,
        "devices": _COUNT,
        "rejected": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "line": {"type": "integer"},
                    "reason": {"type": "string"},
                    "text": {"type": "string"},
                },
            },
        },
    },
    "required": ["lines", "matched", "unmatched", "invalid", "devices"],
}
_ESTIMATE: Schema = {
    "type": "object",
    "properties": {
        "expression": {"type": ["string", "null"], "description": "canonical text, or null"},
        "devices": _COUNT,
        "population": _COUNT,
    },
    "required": ["expression", "devices", "population"],
}
_ANALYSIS: Schema = {
    "type": "object",
    "properties": {
        "match": _MATCH,
        "min_analysed": _COUNT,
        "withheld": {
            "type": "boolean",
            "description": f"fewer than {MIN_ANALYSED} devices matched: counts only",
        },
        "given": _COUNT,
        "analysed": _COUNT,
        "population": _COUNT,
        "dimensions": {"type": "array", "items": _ROW},
        "categories": {"type": "array", "items": _ROW},
        "tags": {"type": "array", "items": _ROW, "description": "tags held by the list only"},
    },
    "required": ["match", "withheld", "given", "analysed", "population", "dimensions"],
}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: {"$ref": f"#/components/responses/E{code}"} for code in codes}


def _ok(description: str, schema: Schema) -> dict[str, Any]:
    return {
        "200": {"description": description, "content": {"application/json": {"schema": schema}}}
    }


def _body(schema: Schema) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_TOO_LARGE = {
    "413": {
        "description": "The body is over the server's limit (256 KiB by default)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
}


def insight_paths() -> dict[str, Any]:
    """``paths`` entries of the three operations."""
    taxonomy = {
        "summary": "The DMP tag taxonomy (dimension / category / tag), for targeting pickers",
        "operationId": "get_taxonomy",
        "responses": {
            **_ok("Every tag", {"type": "object", "properties": {"tags": {"type": "array",
                  "items": _TAG}}, "required": ["tags"]}),
            **_errors("401"),
        },
    }  # fmt: skip
    estimate = {
        "summary": "Devices of the DMP a tag expression reaches now (the console's live estimate)",
        "operationId": "estimate_audience",
        "requestBody": _body(ESTIMATE_INPUT),
        "responses": {**_ok("The size", _ESTIMATE), **_errors("400", "401", "422")},
    }
    analysis = {
        "summary": "Reverse analysis of an ID list: share and lift per dimension, category, tag",
        "description": f"Rows are withheld when fewer than {MIN_ANALYSED} devices matched.",
        "operationId": "analyse_ids",
        "requestBody": _body(ANALYSIS_INPUT),
        "responses": {
            **_ok("The analysis", _ANALYSIS),
            **_errors("400", "401", "422"),
            **_TOO_LARGE,
        },
    }
    return {
        f"{PREFIX}/taxonomy": {"get": taxonomy},
        f"{PREFIX}/estimates": {"post": estimate},
        f"{PREFIX}/analysis": {"post": analysis},
    }
