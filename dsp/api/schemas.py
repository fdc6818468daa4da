"""JSON Schemas (2020-12) of every body the advertiser API reads or writes.

The same dictionaries validate requests (``dsp.api.validation``) and are published in the
OpenAPI 3.1 document (``dsp.api.openapi``), so the document cannot drift from what the
server accepts. Rules a schema cannot say (a tag expression over the taxonomy, an IANA time
zone, start before end, references to the caller's own objects) are checked after it and
answer 422 the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

Schema = dict[str, Any]

MAX_MICROS = 10**15  # a billion dollars: far above any budget, far below int64
MAX_BID_MICROS = 10**9  # a $1,000 CPM, the campaign model's cap
ID_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
_URL = "^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?$"
_DOMAIN = "^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?[.])+[A-Za-z]{2,63}$"
_IAB = "^IAB[0-9]{1,2}(-[0-9]{1,2})?$"
_CLOCK = "^([01][0-9]|2[0-3]):[0-5][0-9]$"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: Mapping[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    schema: Schema = {
        "type": "object",
        "properties": dict(properties),
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    return schema


def _text(max_len: int, min_len: int = 1) -> Schema:
    return {"type": "string", "minLength": min_len, "maxLength": max_len}


def _list(items: Schema, max_items: int, *, min_items: int = 0) -> Schema:
    schema: Schema = {"type": "array", "items": items, "maxItems": max_items, "uniqueItems": True}
    if min_items:
        schema["minItems"] = min_items
    return schema


def _int(minimum: int, maximum: int) -> Schema:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


URL: Schema = {"type": "string", "maxLength": 2000, "pattern": _URL}
DOMAIN: Schema = {"type": "string", "maxLength": 253, "pattern": _DOMAIN}
IAB_CATEGORY: Schema = {"type": "string", "pattern": _IAB}
OBJECT_ID: Schema = {"type": "string", "pattern": ID_PATTERN}
DATE_TIME: Schema = {"type": "string", "format": "date-time", "maxLength": 64}
MICROS: Schema = _int(1, MAX_MICROS)
BID_MICROS: Schema = _int(1, MAX_BID_MICROS)
NAME = _text(200)

_FIXED_CPM = _obj(
    {"strategy": {"const": "fixed_cpm"}, "cpm_micros": BID_MICROS}, ("strategy", "cpm_micros")
)
_TARGET_CPC = _obj(
    {
        "strategy": {"const": "target_cpc"},
        "target_cpc_micros": BID_MICROS,
        "max_cpm_micros": BID_MICROS,
    },
    ("strategy", "target_cpc_micros", "max_cpm_micros"),
)
_TARGET_CPA = _obj(  # issue 12
    {
        "strategy": {"const": "target_cpa"},
        "target_cpa_micros": BID_MICROS,
        "max_cpm_micros": BID_MICROS,
    },
    ("strategy", "target_cpa_micros", "max_cpm_micros"),
)
BID: Schema = {
    "description": "Fixed CPM; target CPC times the predicted CTR; or target CPA times the "
    "predicted CTR times the predicted conversion rate (no bid while no pCVR model is "
    "loaded). Both targets are capped at max_cpm_micros.",
    "oneOf": [_FIXED_CPM, _TARGET_CPC, _TARGET_CPA],
}
BUDGET: Schema = {
    **_obj({"total_micros": MICROS, "daily_micros": MICROS}, ("total_micros",)),
    "description": "Integer micros of USD; daily_micros defaults to total_micros.",
}
_OS = _obj(
    {
        "name": {"type": "string", "pattern": "^[a-z][a-z0-9 ._-]{0,31}$"},
        "min_version": {
            "type": "string",
            "maxLength": 16,
            "pattern": "^[0-9]{1,4}([.][0-9]{1,4}){0,3}$",
        },
    },
    ("name",),
)
_RADIUS = _obj(
    {
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "lon": {"type": "number", "minimum": -180, "maximum": 180},
        "km": {"type": "number", "minimum": 0.01, "maximum": 500},
    },
    ("lat", "lon", "km"),
)
_HOURS = _list(_int(0, 23), 24)
TARGETING: Schema = _obj(
    {
        "tags": {
            **_text(4000),
            "description": "Boolean tag expression over the DMP taxonomy",
            "examples": ["interest.automotive AND (base.age.25_34 OR base.age.35_44)"],
        },
        "audiences": {**_list(OBJECT_ID, 50), "description": "ids of the caller's audiences"},
        "countries": _list({"type": "string", "pattern": "^[A-Z]{3}$"}, 300),
        "regions": _list(_text(64), 1000),
        "cities": _list(_text(100), 1000),
        "radius": _list(_RADIUS, 100),
        "os": _list(_OS, 20),
        "device_types": _list(_int(1, 8), 8),
        "connection_types": _list(_int(0, 7), 8),
        "categories": _list(IAB_CATEGORY, 500),
        "domains_allow": _list(DOMAIN, 10_000),
        "domains_block": _list(DOMAIN, 10_000),
        "bundles_allow": _list({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,200}$"}, 10_000),
        "bundles_block": _list({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,200}$"}, 10_000),
        "daypart": {
            "type": "array",
            "items": _HOURS,
            "minItems": 7,
            "maxItems": 7,
            "description": "Hours (0-23) allowed per weekday, Monday first, advertiser's time",
        },
        "frequency_cap": _obj(
            {"count": _int(1, 10_000), "per": {"enum": ["hour", "day", "lifetime"]}},
            ("count", "per"),
        ),
        "quiet_hours": _obj(
            {
                "start": {"type": "string", "pattern": _CLOCK},
                "end": {"type": "string", "pattern": _CLOCK},
            },
            ("start", "end"),
        ),
    }
)
CAMPAIGN_INPUT: Schema = _obj(
    {
        "name": NAME,
        "status": {"enum": ["active", "paused"], "default": "active"},
        "start": DATE_TIME,
        "end": DATE_TIME,
        "bid": ref("Bid"),
        "budget": ref("Budget"),
        "billing": {
            "enum": ["nurl", "burl"],
            "default": "nurl",
            "description": "charge on the win notice, or on the exchange's billing notice",
        },
        "pacing": {
            "enum": ["asap", "even"],
            "default": "asap",
            "description": "spend as traffic comes, or spread the daily budget over the day",
        },
        "targeting": ref("Targeting"),
        "creative_ids": _list(OBJECT_ID, 100, min_items=1),
        "click_window_days": {  # issue 12
            **_int(1, 30),
            "default": 7,
            "description": "conversions are credited to a click up to this many days after it",
        },
    },
    ("name", "bid", "budget", "creative_ids"),
)

_CREATIVE_COMMON: dict[str, Schema] = {
    "name": NAME,
    "landing_url": URL,
    "adomain": _list(DOMAIN, 10, min_items=1),
    "cat": _list(IAB_CATEGORY, 10),
}
_REQUIRED = ("format", "landing_url", "adomain")
_BANNER = _obj(
    {
        "format": {"const": "banner"},
        "w": _int(1, 4096),
        "h": _int(1, 4096),
        "image_url": URL,
        **_CREATIVE_COMMON,
    },
    (*_REQUIRED, "w", "h", "image_url"),
)
_NATIVE = _obj(
    {
        "format": {"const": "native"},
        "title": _text(90),
        "description": _text(500, 0),
        "image_url": URL,
        **_CREATIVE_COMMON,
    },
    (*_REQUIRED, "title", "image_url"),
)
_VIDEO = {
    **_obj(
        {
            "format": {"const": "video"},
            "w": _int(1, 4096),
            "h": _int(1, 4096),
            "vast_url": URL,
            "media_url": URL,
            "duration_s": _int(1, 600),
            **_CREATIVE_COMMON,
        },
        _REQUIRED,
    ),
    "anyOf": [{"required": ["vast_url"]}, {"required": ["media_url"]}],
}
CREATIVE_INPUT: Schema = {"oneOf": [_BANNER, _NATIVE, _VIDEO]}

AUDIENCE_INPUT: Schema = _obj(
    {
        "name": NAME,
        "dmp_audience_id": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
        "description": _text(1000, 0),
    },
    ("name", "dmp_audience_id"),
)
ADVERTISER_INPUT: Schema = _obj(
    {
        "name": NAME,
        "timezone": {**_text(64), "description": "IANA time zone, e.g. Europe/Paris"},
        "currency": {"const": "USD"},
    },
    ("name", "timezone"),
)

_META: dict[str, Schema] = {
    "id": OBJECT_ID,
    "etag": {"type": "string"},
    "version": {"type": "integer", "minimum": 1},
    "created_at": DATE_TIME,
    "updated_at": DATE_TIME,
}
_META_REQUIRED = ("id", "status", "etag", "version", "created_at", "updated_at")


def _with_meta(schema: Schema, statuses: list[str]) -> Schema:
    """The stored object as the API returns it: its input plus id, status and version."""
    out = copy.deepcopy(schema)
    out["properties"].update(copy.deepcopy(_META), status={"enum": statuses})
    out["required"] = [*out.get("required", []), *_META_REQUIRED]
    return out


def _creative_output() -> Schema:
    return {
        "oneOf": [_with_meta(branch, ["active", "archived"]) for branch in (_BANNER, _NATIVE)]
        + [{**_with_meta(_VIDEO, ["active", "archived"]), "anyOf": _VIDEO["anyOf"]}]
    }


def _page(item: str) -> Schema:
    return _obj(
        {
            "items": {"type": "array", "items": ref(item)},
            "next_cursor": {"type": ["string", "null"]},
        },
        ("items", "next_cursor"),
    )


ERROR: Schema = _obj(
    {
        "error": {"type": "string"},
        "field": {"type": "string"},
        "reason": {"type": "string"},
        "kind": {"type": "string"},
        "object_id": {"type": "string"},
        "current_etag": {"type": "string"},
        "scope": {"type": "string"},
    },
    ("error",),
)
AUDIT_ENTRY: Schema = _obj(
    {
        "id": {"type": "string"},
        "at": DATE_TIME,
        "actor": {"type": "string"},
        "token_id": {"type": "string"},
        "kind": {"enum": ["advertiser", "campaign", "creative", "audience", "token"]},
        "object_id": {"type": "string"},
        "action": {"enum": ["create", "update", "archive", "revoke"]},
        "etag_before": {"type": ["string", "null"]},
        "etag_after": {"type": ["string", "null"]},
        "changes": {
            "type": "array",
            "items": _obj(
                {"path": {"type": "string"}, "before": {}, "after": {}}, ("path", "before", "after")
            ),
        },
    },
    ("id", "at", "actor", "token_id", "kind", "object_id", "action", "changes"),
)
REPORT_ROW: Schema = {
    "type": "object",
    "properties": {
        "campaign": {"type": "string"},
        "creative": {"type": "string"},
        "day": {"type": "string"},
        "hour": {"type": "string"},
        "name": {"type": "string"},
        "wins": {"type": "integer"},
        "impressions": {"type": "integer"},
        "clicks": {"type": "integer"},
        "ctr": {"type": "number"},
        "spend_usd": {"type": "number"},
        "ecpm_usd": {"type": "number"},
        "ecpc_usd": {"type": "number"},
    },
    "required": ["wins", "impressions", "clicks", "ctr", "spend_usd"],
}


def components() -> dict[str, Schema]:
    """Every named schema, as ``components.schemas`` of the OpenAPI document."""
    return {
        "Bid": BID,
        "Budget": BUDGET,
        "Targeting": TARGETING,
        "CampaignInput": CAMPAIGN_INPUT,
        "Campaign": _with_meta(CAMPAIGN_INPUT, ["active", "paused", "archived"]),
        "CampaignPage": _page("Campaign"),
        "CreativeInput": CREATIVE_INPUT,
        "Creative": _creative_output(),
        "CreativePage": _page("Creative"),
        "AudienceInput": AUDIENCE_INPUT,
        "Audience": _with_meta(AUDIENCE_INPUT, ["active", "archived"]),
        "AudiencePage": _page("Audience"),
        "AdvertiserInput": ADVERTISER_INPUT,
        "Advertiser": _with_meta(ADVERTISER_INPUT, ["active", "archived"]),
        "AdvertiserPage": _page("Advertiser"),
        "AuditEntry": AUDIT_ENTRY,
        "AuditPage": _page("AuditEntry"),
        "ReportRow": REPORT_ROW,
        "Error": ERROR,
    }


def merge_patch_schema(schema: Schema, named: Mapping[str, Schema]) -> Schema:
    """A JSON merge patch (RFC 7396) of ``schema``: every field optional, null removes one.

    The patched object is validated against ``schema`` itself; this only documents the
    shape of a patch (and lets contract tests generate plausible ones). ``named`` resolves
    the ``$ref`` of nested objects, whose patches are partial too.
    """
    if "$ref" in schema:
        return merge_patch_schema(named[schema["$ref"].rsplit("/", 1)[-1]], named)
    # A video's own anyOf (vast_url or media_url) sits beside "type": not branches.
    branches = schema.get("oneOf") or (None if "type" in schema else schema.get("anyOf"))
    if branches:
        return {"anyOf": [merge_patch_schema(branch, named) for branch in branches]}
    if schema.get("type") != "object":
        return schema
    properties = {
        name: {"anyOf": [merge_patch_schema(sub, named), {"type": "null"}]}
        for name, sub in schema.get("properties", {}).items()
    }
    return {"type": "object", "properties": properties, "additionalProperties": False}
