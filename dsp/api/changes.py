"""What a create, replace, patch or archive does, decided on a snapshot without any I/O.

Each function validates everything first (the body against its schema, the rules a schema
cannot say, every stored campaign payload the change touches) and returns a ``Plan``: the
records, audit entries and bidder payloads to write together. An error raised here means
nothing is written, which is how a bad payload is never half-saved.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dmp.taxonomy import Taxonomy
from dsp.api.audit import AuditEntry, entry_for
from dsp.api.publish import check_campaign, check_creative, dependants
from dsp.api.records import ADVERTISER, AUDIENCE, CAMPAIGN, CREATIVE, Actor, Kind, Record, Snapshot
from dsp.api.validation import Validators
from dsp.errors import (
    InvalidPayload,
    ObjectConflict,
    ObjectNotFound,
    PreconditionFailed,
    PreconditionRequired,
)


@dataclass(frozen=True, slots=True)
class Rules:
    """What validation needs besides the snapshot."""

    validators: Validators
    taxonomy: Taxonomy


@dataclass(slots=True)
class Plan:
    result: Record
    records: list[Record] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    published: dict[str, bytes] = field(default_factory=dict)  # campaign id -> stored JSON

    @property
    def empty(self) -> bool:
        return not self.records


def merge_patch(target: object, patch: object) -> object:
    """RFC 7396 JSON merge patch: objects merge, null removes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return patch
    result: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def normalised(kind: Kind, body: Any, rules: Rules) -> dict[str, Any]:
    """The body as stored, once valid: its schema, then the rules a schema cannot say."""
    rules.validators.check(kind.input_schema, body)
    if kind is CAMPAIGN:
        return {**body, "status": body.get("status", "active")}
    if kind is CREATIVE:
        check_creative(body)
    if kind is ADVERTISER:
        try:
            zoneinfo.ZoneInfo(body["timezone"])
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            reason = "expected an IANA time zone, e.g. Europe/Paris"
            raise InvalidPayload("timezone", reason) from None
        return {**body, "currency": body.get("currency", "USD")}
    return dict(body)


def _existing(snapshot: Snapshot, kind: Kind, object_id: str) -> Record:
    record = snapshot.find(kind, object_id)
    if record is None:
        raise ObjectNotFound(kind.name, object_id)
    return record


def check_if_match(record: Record, if_match: str | None, *, required: bool = True) -> None:
    """Strong comparison against the current ETag (RFC 9110); a list of ETags may be given."""
    if if_match is None:
        if required:
            raise PreconditionRequired()
        return
    if record.etag not in (tag.strip() for tag in if_match.split(",")):
        raise PreconditionFailed(record.etag)


def _plan(
    snapshot: Snapshot,
    actor: Actor,
    action: str,
    before: Record | None,
    after: Record,
    rules: Rules,
) -> Plan:
    """Write ``after``, its audit entry, and every campaign payload it changes."""
    changed = snapshot.with_record(after)
    published = {
        c.id: check_campaign(changed, c, rules.taxonomy) for c in dependants(changed, after)
    }
    return Plan(after, [after], [entry_for(actor, action, before, after)], published)


def create(snapshot: Snapshot, kind: Kind, body: Any, actor: Actor, rules: Rules) -> Plan:
    record = Record.new(kind, kind.new_id(), normalised(kind, body, rules), snapshot.revision + 1)
    return _plan(snapshot, actor, "create", None, record, rules)


def replace(
    snapshot: Snapshot,
    kind: Kind,
    object_id: str,
    body: Any,
    if_match: str | None,
    actor: Actor,
    rules: Rules,
) -> Plan:
    """A new version with ``body``, only over the version the caller read (If-Match)."""
    current = _existing(snapshot, kind, object_id)
    new_body = normalised(kind, body, rules)  # a bad body is bad whatever the version
    check_if_match(current, if_match)
    if current.archived:
        raise ObjectConflict(f"{kind.name} {object_id} is archived and can no longer change")
    if new_body == current.body:
        return Plan(current)  # nothing to change: no new version, no audit entry
    return _plan(snapshot, actor, "update", current, current.changed(new_body), rules)


def patch(
    snapshot: Snapshot,
    kind: Kind,
    object_id: str,
    changes: Any,
    if_match: str | None,
    actor: Actor,
    rules: Rules,
) -> Plan:
    """A JSON merge patch of the current body, validated whole as a replacement."""
    current = _existing(snapshot, kind, object_id)
    merged = merge_patch(current.body, changes)
    return replace(snapshot, kind, object_id, merged, if_match, actor, rules)


def _users(snapshot: Snapshot, record: Record) -> list[str]:
    """Unarchived campaigns that refer to a creative or an audience."""
    if record.kind not in (CREATIVE.name, AUDIENCE.name):
        return []
    return [c.id for c in dependants(snapshot, record)]


def archive(
    snapshot: Snapshot,
    kind: Kind,
    object_id: str,
    if_match: str | None,
    actor: Actor,
    rules: Rules,
) -> Plan:
    """Archive: kept readable and in reports, never bid with or changed again."""
    current = _existing(snapshot, kind, object_id)
    check_if_match(current, if_match, required=False)
    if current.archived:
        return Plan(current)
    users = _users(snapshot, current)
    if users:
        raise ObjectConflict(
            f"{kind.name} {object_id} is used by campaign {', '.join(sorted(users))}: "
            "remove it there (or archive those campaigns) first"
        )
    return _plan(snapshot, actor, "archive", current, current.changed(archived=True), rules)
