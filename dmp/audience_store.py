"""Audiences in Redis: definitions per owner, and the matched devices of ID-list audiences.

    dmp:{aud:<owner>}:audiences        hash  audience id -> definition JSON
    dmp:{aud:<owner>}:<id>:digests     string  matched primary digests, 8 bytes each, sorted
    dmp:{aud:<owner>}:<id>:ids         hash  primary digest -> the canonical IDs given for it
    dmp:audiences:id-lists             set  ``owner\\nid`` of every ID-list audience

An ID-list audience's data is written before its definition, so a listed audience is
complete. Every key of an owner shares one hash tag: one owner's audiences live on one shard.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from dmp.audience_build import bump_version
from dmp.audience_ids import IdMatch, MatchedIds
from dmp.errors import AudienceError, AudienceNotFound
from infra import keys
from infra.redis_client import queue_script

KINDS = ("expression", "ids", "combination", "split")
OPERATIONS = ("union", "intersection", "difference")
MAX_OWNER_CHARS = 64
MAX_NAME_CHARS = 200
AUDIENCE_ID = re.compile(r"[0-9a-f]{16}")
_IDS_PER_HSET = 1000

# Drops one device from one ID-list audience: its given IDs, and its 8 bytes from the packed
# digests (a match counts only at a multiple of 8: a digest may straddle two others).
_FORGET_LUA = """
local removed = redis.call('HDEL', KEYS[2], ARGV[1])
local packed = redis.call('GET', KEYS[1])
if packed then
  local start = 1
  while true do
    local at = string.find(packed, ARGV[1], start, true)
    if not at then break end
    if (at - 1) % 8 == 0 then
      redis.call('SET', KEYS[1], string.sub(packed, 1, at - 1) .. string.sub(packed, at + 8))
      return 1
    end
    start = at + 1
  end
end
return removed
"""


@dataclass(frozen=True, slots=True)
class SplitSpec:
    """Part ``part`` (0-based) of a split of ``Audience.sources[0]`` in ``ratios``."""

    ratios: tuple[float, ...]
    part: int
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Audience:
    """An audience's definition, as stored.

    ``kind`` says which fields matter: ``expression`` its canonical text; ``ids`` the
    upload's ``match`` counts; ``combination`` its ``operation`` over ``sources`` (for a
    difference, the first minus the others); ``split`` one part of ``sources[0]``. ``size``
    is the number of devices at creation; ``Audiences.size`` gives today's.
    """

    id: str
    owner: str
    name: str
    kind: str
    created: float
    size: int
    expression: str | None = None
    operation: str | None = None
    sources: tuple[str, ...] = ()
    split: SplitSpec | None = None
    match: IdMatch | None = None

    def to_dict(self) -> dict[str, object]:
        """The definition as JSON-ready values (``None`` fields left out)."""
        data: dict[str, object] = {
            "id": self.id,
            "owner": self.owner,
            "name": self.name,
            "kind": self.kind,
            "created": self.created,
            "size": self.size,
        }
        if self.expression is not None:
            data["expression"] = self.expression
        if self.operation is not None:
            data["operation"] = self.operation
        if self.sources:
            data["sources"] = list(self.sources)
        if self.split is not None:
            split = self.split
            data["split"] = {"ratios": list(split.ratios), "part": split.part, "seed": split.seed}
        if self.match is not None:
            data["match"] = self.match.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Audience:
        split = data.get("split")
        match = data.get("match")
        sources = data.get("sources")
        return cls(
            id=str(data["id"]),
            owner=str(data["owner"]),
            name=str(data["name"]),
            kind=str(data["kind"]),
            created=float(str(data.get("created", 0))),
            size=int(str(data.get("size", 0))),
            expression=_optional_text(data.get("expression")),
            operation=_optional_text(data.get("operation")),
            sources=tuple(str(s) for s in sources) if isinstance(sources, list) else (),
            split=_split_of(split) if isinstance(split, dict) else None,
            match=IdMatch.from_dict(match) if isinstance(match, dict) else None,
        )


def _optional_text(value: object) -> str | None:
    return None if value is None else str(value)


def _split_of(data: dict[str, object]) -> SplitSpec:
    ratios = data.get("ratios")
    return SplitSpec(
        ratios=tuple(float(r) for r in ratios) if isinstance(ratios, list) else (),
        part=int(str(data.get("part", 0))),
        seed=int(str(data.get("seed", 0))),
    )


def check_owner(owner: str) -> str:
    """An owner id: 1..64 printable characters."""
    if not isinstance(owner, str) or not owner or len(owner) > MAX_OWNER_CHARS:
        raise AudienceError("owner", f"must be 1..{MAX_OWNER_CHARS} characters")
    if not owner.isprintable():
        raise AudienceError("owner", "must not hold control characters")
    return owner


def check_name(name: str) -> str:
    """A name, stripped: 1..200 printable characters."""
    text = name.strip() if isinstance(name, str) else ""
    if not text or len(text) > MAX_NAME_CHARS:
        raise AudienceError("name", f"must be 1..{MAX_NAME_CHARS} characters")
    if not text.isprintable():
        raise AudienceError("name", "must not hold control characters")
    return text


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _text(value: bytes | str) -> str:
    return value if isinstance(value, str) else value.decode()


def _registry_member(owner: str, audience_id: str) -> str:
    return f"{owner}\n{audience_id}"


class AudienceStore:
    """Reads and writes audience definitions and ID-list data; no evaluation here."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def save(self, audience: Audience) -> None:
        await self._redis.hset(
            keys.audiences(audience.owner), audience.id, orjson.dumps(audience.to_dict())
        )

    async def save_id_list(self, audience: Audience, matched: MatchedIds) -> None:
        """An ID-list audience: its digests and given IDs first, then its definition."""
        owner, audience_id = audience.owner, audience.id
        ids_key = keys.audience_ids(owner, audience_id)
        items = [(digest, "\n".join(texts)) for digest, texts in matched.ids.items()]
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.audience_digests(owner, audience_id), matched.packed())
            for start in range(0, len(items), _IDS_PER_HSET):
                pipe.hset(ids_key, mapping=dict(items[start : start + _IDS_PER_HSET]))
            pipe.sadd(keys.audience_id_lists(), _registry_member(owner, audience_id))
            await pipe.execute()
        await self.save(audience)

    async def get(self, owner: str, audience_id: str) -> Audience:
        """The owner's audience; ``AudienceNotFound`` for a missing id or another owner's."""
        if not isinstance(audience_id, str) or not AUDIENCE_ID.fullmatch(audience_id):
            raise AudienceNotFound(str(audience_id))
        raw = await self._redis.hget(keys.audiences(check_owner(owner)), audience_id)
        if raw is None:
            raise AudienceNotFound(audience_id)
        return Audience.from_dict(orjson.loads(raw))

    async def delete(self, audience: Audience) -> None:
        owner, audience_id = audience.owner, audience.id
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hdel(keys.audiences(owner), audience_id)
            pipe.delete(
                keys.audience_digests(owner, audience_id), keys.audience_ids(owner, audience_id)
            )
            pipe.srem(keys.audience_id_lists(), _registry_member(owner, audience_id))
            await pipe.execute()

    async def digests(self, audience: Audience) -> bytes:
        """An ID-list audience's packed primary digests."""
        raw = await self._redis.get(keys.audience_digests(audience.owner, audience.id))
        return raw if isinstance(raw, bytes) else b""

    async def given_ids(self, audience: Audience) -> dict[bytes, list[str]]:
        """An ID-list audience's canonical IDs, by primary digest."""
        raw = await self._redis.hgetall(keys.audience_ids(audience.owner, audience.id))
        return {_bytes(digest): _text(value).split("\n") for digest, value in raw.items()}

    async def list(self, owner: str) -> list[Audience]:
        """The owner's audiences, oldest first."""
        raw = await self._redis.hgetall(keys.audiences(check_owner(owner)))
        found = [Audience.from_dict(orjson.loads(value)) for value in raw.values()]
        return sorted(found, key=lambda a: (a.created, a.id))


async def forget_device(redis: Redis, digest: bytes) -> int:
    """Erasure: drop a device (its primary digest) from every ID-list audience, IDs and all.

    Also bumps the DMP version, since the device's profile is going too: cached indexes
    rebuild, and expression audiences stop counting it. Returns how many audiences held it.
    """
    script: AsyncScript = redis.register_script(_FORGET_LUA)
    members = await redis.smembers(keys.audience_id_lists())
    pairs = [_text(member).split("\n", 1) for member in members]
    async with redis.pipeline(transaction=False) as pipe:
        for owner, audience_id in pairs:
            lists = [
                keys.audience_digests(owner, audience_id),
                keys.audience_ids(owner, audience_id),
            ]
            await queue_script(pipe, script, lists, [digest])  # a cluster: EVAL per slot
        removed: Iterable[object] = await pipe.execute() if pairs else []
    await bump_version(redis)
    return sum(1 for count in removed if count)
