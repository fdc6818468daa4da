"""The audit log: who changed which object, when, from which ETag to which, and how.

Entries go to one Redis stream per advertiser, written in the same transaction as the change
they describe, so a change without its entry (or the reverse) cannot happen. Entries are
never trimmed: an audit log that forgets is not one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from dsp.api.records import Actor, Record
from infra import keys

_SCAN_BATCH = 500
_MAX_SCANNED = 20_000  # entries one request may skip over while filtering


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: str
    actor: Actor
    kind: str
    object_id: str
    action: str  # create, update, archive, revoke
    etag_before: str | None
    etag_after: str | None
    changes: tuple[Mapping[str, Any], ...]

    def dumps(self) -> bytes:
        return orjson.dumps(
            {
                "at": self.at, "actor": self.actor.owner, "token_id": self.actor.token_id,
                "kind": self.kind, "object_id": self.object_id, "action": self.action,
                "etag_before": self.etag_before, "etag_after": self.etag_after,
                "changes": self.changes,
            }
        )  # fmt: skip


def diff(before: object, after: object, path: str = "") -> list[dict[str, Any]]:
    """Field-level changes between two JSON values; lists count as one value."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        changes: list[dict[str, Any]] = []
        for name in sorted(set(before) | set(after)):
            sub = f"{path}.{name}" if path else str(name)
            changes += diff(before.get(name), after.get(name), sub)
        return changes
    if before == after:
        return []
    return [{"path": path or "$", "before": before, "after": after}]


def entry_for(actor: Actor, action: str, before: Record | None, after: Record) -> AuditEntry:
    """The entry of one change; ``before`` is None for a creation."""
    old: Mapping[str, Any] = {} if before is None else {**before.body, "status": before.status}
    new = {**after.body, "status": after.status}
    return AuditEntry(
        at=after.updated_at,
        actor=actor,
        kind=after.kind,
        object_id=after.id,
        action=action,
        etag_before=None if before is None else before.etag,
        etag_after=after.etag,
        changes=tuple(diff(old, new)),
    )


@dataclass(frozen=True, slots=True)
class AuditQuery:
    kind: str | None = None
    object_id: str | None = None
    limit: int = 50
    cursor: str | None = None  # the stream id of the last entry of the previous page


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _matches(entry: Mapping[str, Any], query: AuditQuery) -> bool:
    if query.kind is not None and entry["kind"] != query.kind:
        return False
    return query.object_id is None or entry["object_id"] == query.object_id


async def read_audit(
    redis: Redis, advertiser_id: str, query: AuditQuery
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of entries, newest first, and the cursor of the next page (None: no more)."""
    key = keys.api_audit(advertiser_id)
    found: list[dict[str, Any]] = []
    upper = f"({query.cursor}" if query.cursor else "+"
    scanned = 0
    while len(found) < query.limit and scanned < _MAX_SCANNED:
        batch = await redis.xrevrange(key, upper, "-", count=_SCAN_BATCH)
        if not batch:
            return found, None
        for stream_id, fields in batch:
            scanned += 1
            entry = {"id": _text(stream_id), **orjson.loads((fields or {})[b"entry"])}
            upper = f"({entry['id']}"
            if _matches(entry, query):
                found.append(entry)
                if len(found) == query.limit:
                    break
        if len(batch) < _SCAN_BATCH and len(found) < query.limit:
            return found, None
    return found, upper[1:]
