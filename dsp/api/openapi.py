"""The OpenAPI 3.1 document of ``/api/v1``, built from the schemas the server validates with.

``ROUTES`` lists every operation once; ``dsp.api.setup_api`` registers its handlers from
the same list, and the tests check that the router and this document agree and run
property-based contract tests (schemathesis) against a live server.
"""

from __future__ import annotations

from typing import Any

from dsp.api.http import PREFIX
from dsp.api.insight_docs import insight_paths  # issue 11
from dsp.api.limits import document_limits
from dsp.api.records import ADVERTISER, OWNED_KINDS, Kind
from dsp.api.reports import AUDITED_KINDS, BY_PATTERN
from dsp.api.schemas import ID_PATTERN, Schema, components, merge_patch_schema, ref

Operation = dict[str, Any]

_ERRORS = {
    "400": "Malformed JSON",
    "401": "Missing, unknown or revoked bearer token",
    "403": "The token lacks the scope this operation needs",
    "404": "No such object for this advertiser (another advertiser's object is never shown)",
    "409": "The object's state forbids the change: archived, still in use, or a write race",
    "412": "If-Match does not carry the current ETag: re-read, re-apply, retry",
    "422": "A field fails validation; `field` names its path and `reason` the problem",
    "428": "A change needs If-Match with the ETag of the version it edits",
    "413": "The request body is larger than the API accepts",
    "429": "Too many requests for this token: wait the seconds Retry-After gives",
    "503": "Storage unavailable for a moment (Redis restarting): retry after Retry-After",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
_ID_PARAM = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": ID_PATTERN},
}
_LIMIT = {
    "name": "limit",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": 200},
}
_CHANGE_ERRORS = ("400", "401", "403", "404", "409", "412", "422", "428")
_LIST_PARAMS = [
    _LIMIT,
    {
        "name": "cursor",
        "in": "query",
        "description": "`next_cursor` of the previous page",
        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    },
    {"name": "include_archived", "in": "query", "schema": {"type": "boolean"}},
]


def _if_match(required: bool) -> dict[str, Any]:
    return {
        "name": "If-Match",
        "in": "header",
        "required": required,
        "description": "The ETag of the version being changed (`*` is not accepted)",
        "schema": {"type": "string"},
    }


def _errors(*codes: str) -> dict[str, Any]:
    return {code: {"$ref": f"#/components/responses/E{code}"} for code in codes}


def _object(schema: str, status: str = "200") -> dict[str, Any]:
    headers: dict[str, Any] = {"ETag": {"schema": {"type": "string"}}}
    if status == "201":
        headers["Location"] = {"schema": {"type": "string"}}
    return {
        status: {
            "description": schema,
            "headers": headers,
            "content": {"application/json": {"schema": ref(schema)}},
        }
    }


def _body(schema: Schema, *, patch: bool = False) -> dict[str, Any]:
    types = ("application/json", "application/merge-patch+json") if patch else ("application/json",)
    return {"required": True, "content": {media: {"schema": schema} for media in types}}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> Operation:
    return {"summary": summary, "operationId": extra.pop("op_id"), "responses": responses, **extra}


def _item_ops(kind: Kind, named: dict[str, Schema]) -> dict[str, Operation]:
    name = kind.name
    ops = {
        "get": _op(f"Read a {name}", {**_object(kind.schema), **_errors("401", "404")},
                   op_id=f"get_{name}"),
        "put": _op(
            f"Replace a {name} (If-Match required)",
            {**_object(kind.schema), **_errors(*_CHANGE_ERRORS)},
            op_id=f"replace_{name}", parameters=[_if_match(True)],
            requestBody=_body(ref(kind.input_schema)),
        ),
        "patch": _op(
            f"Change fields of a {name} by JSON merge patch (If-Match required)",
            {**_object(kind.schema), **_errors(*_CHANGE_ERRORS)},
            op_id=f"patch_{name}", parameters=[_if_match(True)],
            requestBody=_body(merge_patch_schema(ref(kind.input_schema), named), patch=True),
        ),
    }  # fmt: skip
    return ops


def _paths() -> dict[str, Any]:
    named = components()
    paths: dict[str, Any] = {}
    for kind in (ADVERTISER, *OWNED_KINDS):
        base = f"{PREFIX}/{kind.plural}"
        paths[base] = {
            "get": _op(
                f"List {kind.plural}, oldest first",
                {"200": _page(kind), **_errors("401", "422")},
                op_id=f"list_{kind.plural}", parameters=_LIST_PARAMS,
            )
        }  # fmt: skip
        paths[f"{base}/{{id}}"] = {"parameters": [_ID_PARAM], **_item_ops(kind, named)}
    for kind in OWNED_KINDS:
        base = f"{PREFIX}/{kind.plural}"
        paths[base]["post"] = _op(
            f"Create a {kind.name}",
            {**_object(kind.schema, "201"), **_errors("400", "401", "403", "409", "422")},
            op_id=f"create_{kind.name}", requestBody=_body(ref(kind.input_schema)),
        )  # fmt: skip
        paths[f"{base}/{{id}}/archive"] = {
            "parameters": [_ID_PARAM],
            "post": _op(
                f"Archive a {kind.name}: kept readable and in reports, never used again",
                {**_object(kind.schema), **_errors("401", "403", "404", "409", "412")},
                op_id=f"archive_{kind.name}", parameters=[_if_match(False)],
            ),
        }  # fmt: skip
    paths[f"{PREFIX}/audit"] = {"get": _audit_op()}
    paths[f"{PREFIX}/reports"] = {"get": _report_op()}
    paths.update(insight_paths())  # issue 11: taxonomy, estimates, analysis
    paths[f"{PREFIX}/openapi.json"] = {
        "get": _op(
            "This document", {"200": _json("The OpenAPI document", {"type": "object"})},
            op_id="openapi", security=[],
        )
    }  # fmt: skip
    return paths


def _json(description: str, schema: Schema) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _page(kind: Kind) -> dict[str, Any]:
    return _json(f"A page of {kind.plural}", ref(f"{kind.schema}Page"))


def _audit_op() -> Operation:
    params = [
        {"name": "kind", "in": "query", "schema": {"enum": list(AUDITED_KINDS)}},
        {"name": "object_id", "in": "query", "schema": {"type": "string", "pattern": ID_PATTERN}},
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 200},
        },
        {
            "name": "cursor",
            "in": "query",
            "schema": {"type": "string", "pattern": "^[0-9]{1,20}-[0-9]{1,20}$"},
        },
    ]
    return _op(
        "The audit log: who changed what and when, newest first",
        {"200": _json("A page of audit entries", ref("AuditPage")), **_errors("401", "422")},
        op_id="list_audit", parameters=params,
    )  # fmt: skip


def _report_op() -> Operation:
    params = [
        {
            "name": "by",
            "in": "query",
            "description": "Comma-separated dimensions, e.g. campaign,day",
            "schema": {"type": "string", "pattern": BY_PATTERN},
        },
        {"name": "format", "in": "query", "schema": {"enum": ["json", "csv"]}},
        {"name": "campaign_id", "in": "query", "schema": {"type": "string", "pattern": ID_PATTERN}},
    ]
    rows = _obj_rows()
    ok = {
        "description": "The CTR report of the caller's campaigns",
        "content": {
            "application/json": {"schema": rows},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
    return _op(
        "CTR report: wins, impressions, clicks, CTR and spend",
        {"200": ok, **_errors("401", "404", "422")},
        op_id="get_report", parameters=params,
    )  # fmt: skip


def _obj_rows() -> Schema:
    return {
        "type": "object",
        "properties": {
            "by": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": ref("ReportRow")},
        },
        "required": ["by", "rows"],
    }


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    error = _json("", ref("Error"))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rtb-dsp advertiser API",
            "version": "1.0.0",
            "description": (
                "Campaigns, creatives, audiences, reports and the audit log of one advertiser. "
                "Bearer tokens come from `dsp tokens create`. Money is integer micros of USD. "
                "Changes need If-Match with the ETag of the version they edit."
            ),
        },
        "paths": document_limits(_paths()),
        "components": {
            "schemas": components(),
            "responses": {
                f"E{code}": {**error, "description": text} for code, text in _ERRORS.items()
            }
            | {"E429": {**error, "description": _ERRORS["429"], "headers": _RETRY_AFTER}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
