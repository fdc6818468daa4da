"""The objects of the advertiser API as stored: versioned bodies with an ETag.

An object is its *body* (exactly what the advertiser sent, after validation) plus the
bookkeeping the server keeps: version, ETag, archived flag, creation order, timestamps. A
``Snapshot`` is everything one advertiser owns, read at one revision; changes are decided
on it as pure functions (``dsp.api.changes``) and written back in one transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of object: its names in URLs, Redis keys, ids and the OpenAPI document."""

    name: str  # campaign
    plural: str  # campaigns: the URL segment and the Redis key part
    prefix: str  # cmp: new ids are cmp_<16 hex>
    schema: str  # the component name of its output schema (its input is <schema>Input)

    @property
    def input_schema(self) -> str:
        return f"{self.schema}Input"

    def new_id(self) -> str:
        # Random, not sequential: ids are global (the bidder's campaign hash is shared) and
        # must not let one advertiser guess how many objects another one has.
        return f"{self.prefix}_{secrets.token_hex(8)}"


ADVERTISER = Kind("advertiser", "advertisers", "adv", "Advertiser")
CAMPAIGN = Kind("campaign", "campaigns", "cmp", "Campaign")
CREATIVE = Kind("creative", "creatives", "cr", "Creative")
AUDIENCE = Kind("audience", "audiences", "aud", "Audience")
OWNED_KINDS = (CAMPAIGN, CREATIVE, AUDIENCE)  # what an advertiser creates through the API
KINDS = {kind.name: kind for kind in (ADVERTISER, *OWNED_KINDS)}


def utc_now() -> str:
    """RFC 3339 UTC with milliseconds, as every timestamp of the API."""
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _etag(object_id: str, version: int, archived: bool, body: Mapping[str, Any]) -> str:
    content = orjson.dumps([object_id, version, archived, body], option=orjson.OPT_SORT_KEYS)
    return '"' + hashlib.blake2b(content, digest_size=10).hexdigest() + '"'


@dataclass(frozen=True, slots=True)
class Record:
    kind: str
    id: str
    body: Mapping[str, Any]
    version: int
    archived: bool
    seq: int  # place in listings: the advertiser's revision that created it
    created_at: str
    updated_at: str
    etag: str

    @classmethod
    def new(cls, kind: Kind, object_id: str, body: Mapping[str, Any], seq: int) -> Record:
        now = utc_now()
        return cls(
            kind.name, object_id, body, 1, False, seq, now, now, _etag(object_id, 1, False, body)
        )

    def changed(self, body: Mapping[str, Any] | None = None, *, archived: bool = False) -> Record:
        """The next version: a new body, or this one archived."""
        body = self.body if body is None else body
        version = self.version + 1
        return dataclasses.replace(
            self, body=body, version=version, archived=archived, updated_at=utc_now(),
            etag=_etag(self.id, version, archived, body),
        )  # fmt: skip

    @property
    def status(self) -> str:
        if self.archived:
            return "archived"
        return str(self.body.get("status", "active"))

    def view(self) -> dict[str, Any]:
        """The object as the API returns it."""
        return {
            "id": self.id, **self.body, "status": self.status, "etag": self.etag,
            "version": self.version, "created_at": self.created_at, "updated_at": self.updated_at,
        }  # fmt: skip

    def dumps(self) -> bytes:
        return orjson.dumps(
            {
                "kind": self.kind, "id": self.id, "body": self.body, "version": self.version,
                "archived": self.archived, "seq": self.seq, "created_at": self.created_at,
                "updated_at": self.updated_at, "etag": self.etag,
            }
        )  # fmt: skip

    @classmethod
    def loads(cls, raw: object) -> Record:
        """A record read back from Redis (bytes; anything else is a corrupt store)."""
        if not isinstance(raw, bytes | str):
            raise TypeError(f"expected a stored record, got {type(raw).__name__}")
        data = orjson.loads(raw)
        return cls(
            data["kind"], data["id"], data["body"], data["version"], data["archived"],
            data["seq"], data["created_at"], data["updated_at"], data["etag"],
        )  # fmt: skip


@dataclass(slots=True)
class Snapshot:
    """Everything one advertiser owns, read at one revision of its objects."""

    advertiser: Record
    revision: int
    objects: dict[str, dict[str, Record]] = field(default_factory=dict)

    def of(self, kind: Kind) -> dict[str, Record]:
        return self.objects.setdefault(kind.name, {})

    def find(self, kind: Kind, object_id: str) -> Record | None:
        if kind is ADVERTISER:
            return self.advertiser if object_id == self.advertiser.id else None
        return self.of(kind).get(object_id)

    def with_record(self, record: Record) -> Snapshot:
        """A copy in which ``record`` replaces (or joins) its kind's objects."""
        if record.kind == ADVERTISER.name:
            return Snapshot(record, self.revision, self.objects)
        objects = dict(self.objects)
        objects[record.kind] = {**objects.get(record.kind, {}), record.id: record}
        return Snapshot(self.advertiser, self.revision, objects)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: the advertiser's token (its id is a digest prefix), or an admin."""

    owner: str
    token_id: str


ADMIN = Actor("admin", "cli")
