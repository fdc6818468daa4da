"""Request bodies checked against the published JSON Schemas, failing with a field path.

``jsonschema_rs`` reports every violation with its instance path; the API answers with the
first one, named the way the campaign model names fields (``targeting.os[0].name``,
``creative_ids[2]``), so one 422 format covers schema and model errors alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema_rs

from dsp.api.schemas import Schema, components
from dsp.errors import InvalidPayload

_MAX_REASON = 200


def field_path(parts: Sequence[str | int]) -> str:
    """``["creatives", 1, "w"]`` -> ``creatives[1].w``; the empty path is ``$``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "$"


def _join(path: str, name: str) -> str:
    return name if path == "$" else f"{path}.{name}"


def _branch(error: jsonschema_rs.ValidationError) -> jsonschema_rs.ValidationError | None:
    """The error inside the one oneOf branch whose discriminator (a ``const``) matched."""
    kind = error.kind
    if not isinstance(kind, jsonschema_rs.ValidationErrorKind.OneOfNotValid):
        return None
    matching = [
        branch
        for branch in kind.context
        if not any(isinstance(e.kind, jsonschema_rs.ValidationErrorKind.Constant) for e in branch)
    ]
    return matching[0][0] if len(matching) == 1 and matching[0] else None


def _no_branch(path: str, branches: list[list[jsonschema_rs.ValidationError]]) -> InvalidPayload:
    """No discriminator matched: name it (``bid.strategy``) and the values it may take."""
    consts = [
        (error.instance_path, error.kind.expected_value)
        for branch in branches
        for error in branch
        if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Constant)
    ]
    if len(consts) == len(branches) and len({field_path(p) for p, _ in consts}) == 1:
        allowed = ", ".join(str(value) for _, value in consts)
        return InvalidPayload(field_path(consts[0][0]), f"expected one of {allowed}")
    firsts = [branch[0] for branch in branches if branch]
    if (
        len(firsts) == len(branches)
        and len({(f.message, str(f.instance_path)) for f in firsts}) == 1
    ):
        return _describe(firsts[0])  # every shape fails the same way: a missing strategy
    return InvalidPayload(path, "matches none of the documented shapes")


def _describe(error: jsonschema_rs.ValidationError) -> InvalidPayload:
    inner = _branch(error)
    if inner is not None:
        return _describe(inner)
    path, kind = field_path(error.instance_path), error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        return InvalidPayload(_join(path, kind.property), "is required")
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
        return InvalidPayload(_join(path, str(kind.unexpected[0])), "unknown field")
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.OneOfNotValid):
        return _no_branch(path, kind.context)
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.AnyOf):
        return InvalidPayload(path, "a video needs vast_url or media_url")
    reason = error.message
    if len(reason) > _MAX_REASON:
        reason = reason[: _MAX_REASON - 3] + "..."
    return InvalidPayload(path, reason)


class Validators:
    """One compiled validator per named schema of the document."""

    def __init__(self, named: Mapping[str, Schema] | None = None) -> None:
        named = dict(named or components())
        self._validators = {
            name: jsonschema_rs.Draft202012Validator(
                {"$ref": f"#/components/schemas/{name}", "components": {"schemas": named}}
            )
            for name in named
        }

    def check(self, name: str, instance: Any) -> None:
        """Raise ``InvalidPayload`` for the first violation of schema ``name``."""
        for error in self._validators[name].iter_errors(instance):
            raise _describe(error)
