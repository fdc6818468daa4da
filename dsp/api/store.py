"""Advertiser objects in Redis: read one, list a page, or apply a change atomically.

Every key of an advertiser shares the hash tag ``{adv:ID}`` (``infra.keys``). A change is an
optimistic transaction: read the advertiser's snapshot at its revision, decide
(``dsp.api.changes``, pure), then write the records, listing order, audit entries and the
revision bump together, only if the revision is still the one read. Another writer in
between makes the write fail and the change is decided again on fresh data, so two
concurrent edits of one object are judged by If-Match one after the other and a stale ETag
can never win.

The bidders read campaigns from one global hash (``dsp:campaigns`` and its version counter,
which every bidder polls). How a change reaches it depends on the server:

* One Redis: WATCH the revision, then one MULTI/EXEC writes the change *and* its bidder
  payloads, so a change reaches the bidders exactly when it is saved.
* Redis Cluster: ``dsp:campaigns`` lives in another slot than ``{adv:ID}``, and no
  transaction spans two slots. The change is one Lua script in the ``{adv:ID}`` slot that
  checks the revision (compare and set), writes the change and notes its payloads as
  *unpublished* (``keys.advertiser_unpublished``). Publication follows as a second,
  idempotent step in the ``{dsp:campaigns}`` slot: a payload is written only if it is of a
  newer advertiser revision than the one there (``keys.CAMPAIGNS_REVISIONS``), so writers
  publishing out of order never put back an old payload. Then the unpublished notes are
  cleared if unchanged. A process dying between the steps (or the campaigns' shard failing
  over) leaves the notes: the next change of that advertiser publishes them with its own,
  every API process publishes all of them on start (``republish_all``), and a failed
  publication is retried by its process every second (``republish_deferred``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, WatchError

from dsp.api.audit import entry_for
from dsp.api.changes import Plan
from dsp.api.records import ADMIN, ADVERTISER, OWNED_KINDS, Kind, Record, Snapshot
from dsp.errors import ObjectConflict, ObjectNotFound
from infra import keys
from infra.redis_client import is_cluster

log = logging.getLogger(__name__)

_ATTEMPTS = 20  # optimistic retries before telling the caller to try again (409)

Command = tuple[str | bytes | int, ...]  # a Redis command: its name, its key, its arguments

# Cluster: one change of one advertiser, in its slot. Written only if the revision is still
# the one the change was decided on; then the payloads are noted unpublished.
# KEYS: 1 revision, 2 unpublished, 3... the change's keys
# ARGV: 1 expected revision, 2 JSON [[command, key index, args...], ...],
#       3... pairs campaign id, payload JSON
# Returns {0} when another writer came first, else {new revision, every unpublished
# field and value} (this change's and any a dead process left behind).
_APPLY_LUA = """
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[1]) then
  return {0}
end
local revision = redis.call('INCR', KEYS[1])
for _, op in ipairs(cjson.decode(ARGV[2])) do
  redis.call(op[1], KEYS[op[2]], unpack(op, 3))
end
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], revision .. '|' .. ARGV[i + 1])
end
local reply = redis.call('HGETALL', KEYS[2])
table.insert(reply, 1, revision)
return reply
"""

# Cluster: publish payloads to the bidders, in the ``{dsp:campaigns}`` slot. A payload of an
# advertiser revision not newer than the stored one changes nothing (idempotent, and an
# older payload published late never replaces a newer one).
# KEYS: 1 campaigns, 2 campaigns version, 3 campaign revisions
# ARGV: triples campaign id, advertiser revision, payload JSON
_PUBLISH_LUA = """
local changed = 0
for i = 1, #ARGV, 3 do
  local stored = tonumber(redis.call('HGET', KEYS[3], ARGV[i]) or '0')
  if stored < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
    changed = changed + 1
  end
end
if changed > 0 then
  redis.call('INCR', KEYS[2])
end
return changed
"""

# Cluster: clear the unpublished notes just published, unless a newer change replaced one.
# KEYS: 1 unpublished; ARGV: pairs campaign id, the value published
_CLEAR_LUA = """
local cleared = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    cleared = cleared + 1
  end
end
return cleared
"""

# Advertisers whose publication failed in this process, retried by ``republish_deferred``.
_deferred: set[str] = set()


async def get(redis: Redis, advertiser_id: str, kind: Kind, object_id: str) -> Record:
    """One object of the advertiser, or 404, whoever else may own an object of that id."""
    if kind is ADVERTISER:
        raw = (
            await redis.get(keys.advertiser(advertiser_id)) if object_id == advertiser_id else None
        )
    else:
        raw = await redis.hget(keys.api_objects(advertiser_id, kind.plural), object_id)
    if raw is None:
        raise ObjectNotFound(kind.name, object_id)
    return Record.loads(raw)


async def advertiser_of(redis: Redis, advertiser_id: str) -> Record | None:
    raw = await redis.get(keys.advertiser(advertiser_id))
    return None if raw is None else Record.loads(raw)


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Record]
    next_cursor: str | None


async def list_page(
    redis: Redis,
    advertiser_id: str,
    kind: Kind,
    *,
    limit: int,
    cursor: int = 0,
    include_archived: bool = False,
) -> Page:
    """Objects in creation order after ``cursor`` (the ``seq`` of the previous page's last)."""
    order = keys.api_order(advertiser_id, kind.plural, live=not include_archived)
    found = await redis.zrangebyscore(order, f"({cursor}", "+inf", start=0, num=limit + 1)
    more = len(found) > limit
    ids = [raw for raw in found[:limit] if isinstance(raw, bytes)]
    raws = await redis.hmget(keys.api_objects(advertiser_id, kind.plural), ids) if ids else []
    items = [Record.loads(raw) for raw in raws if raw is not None]
    next_cursor = str(items[-1].seq) if more and items else None
    return Page(items, next_cursor)


async def owned_ids(redis: Redis, advertiser_id: str, kind: Kind) -> list[str]:
    """Every id of one kind the advertiser has, archived ones included."""
    found = await redis.hkeys(keys.api_objects(advertiser_id, kind.plural))
    return [raw.decode() if isinstance(raw, bytes) else raw for raw in found]


async def load_snapshot(redis: Redis, advertiser_id: str) -> Snapshot:
    """Everything the advertiser owns. The revision is read first: a change saved while the
    rest is read makes it stale, so a change decided on a mixed read is never written."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.advertiser_revision(advertiser_id))
        pipe.get(keys.advertiser(advertiser_id))
        for kind in OWNED_KINDS:
            pipe.hgetall(keys.api_objects(advertiser_id, kind.plural))
        revision, advertiser, *stored = await pipe.execute()
    if advertiser is None:
        raise ObjectNotFound(ADVERTISER.name, advertiser_id)
    objects = {
        kind.name: {record.id: record for record in map(Record.loads, raws.values())}
        for kind, raws in zip(OWNED_KINDS, stored, strict=True)
    }
    return Snapshot(Record.loads(advertiser), int(revision or 0), objects)


def _record_writes(advertiser_id: str, record: Record, *, listing: bool) -> list[Command]:
    """The writes of one record; ``listing``: an advertiser's entry in the global listing
    (another slot, so on a cluster it is written on its own, before the advertiser)."""
    if record.kind == ADVERTISER.name:
        own: list[Command] = [("SET", keys.advertiser(advertiser_id), record.dumps())]
        if listing:
            own.append(("ZADD", keys.advertisers(), "NX", record.seq, advertiser_id))
        return own
    plural = next(kind.plural for kind in OWNED_KINDS if kind.name == record.kind)
    live = keys.api_order(advertiser_id, plural, live=True)
    listed: Command = ("ZADD", live, "NX", record.seq, record.id)
    return [
        ("HSET", keys.api_objects(advertiser_id, plural), record.id, record.dumps()),
        ("ZADD", keys.api_order(advertiser_id, plural, live=False), "NX", record.seq, record.id),
        ("ZREM", live, record.id) if record.archived else listed,
    ]


def plan_writes(advertiser_id: str, plan: Plan, *, listing: bool = True) -> list[Command]:
    """Every write of ``plan`` in the advertiser's own keys (its payloads to the bidders
    aside), after the revision bump."""
    writes: list[Command] = []
    for record in plan.records:
        writes += _record_writes(advertiser_id, record, listing=listing)
    for entry in plan.audit:
        writes.append(("XADD", keys.api_audit(advertiser_id), "*", "entry", entry.dumps()))
    return writes


def queue_plan(pipe: Pipeline, advertiser_id: str, plan: Plan) -> None:
    """Every write of ``plan``, queued inside MULTI (one Redis: payloads included)."""
    pipe.incr(keys.advertiser_revision(advertiser_id))
    for command in plan_writes(advertiser_id, plan):
        pipe.execute_command(*command)
    if plan.published:
        pipe.hset(keys.CAMPAIGNS, mapping=plan.published)  # type: ignore[arg-type]
        pipe.incr(keys.CAMPAIGNS_VERSION)


async def transact(redis: Redis, advertiser_id: str, decide: Callable[[Snapshot], Plan]) -> Plan:
    """Decide on a consistent snapshot and write the plan atomically, retrying on a race."""
    if is_cluster(redis):
        return await _transact_on_cluster(redis, advertiser_id, decide)
    for _ in range(_ATTEMPTS):
        async with redis.pipeline(transaction=True) as pipe:
            await pipe.watch(keys.advertiser_revision(advertiser_id))
            # Read on another connection: the WATCH above still guards everything read here,
            # since every writer bumps the revision in its own transaction.
            plan = decide(await load_snapshot(redis, advertiser_id))
            if plan.empty:
                return plan
            pipe.multi()  # type: ignore[no-untyped-call]
            queue_plan(pipe, advertiser_id, plan)
            try:
                await pipe.execute()
            except WatchError:
                continue
            _logged(advertiser_id, plan)
            return plan
    raise ObjectConflict("too many concurrent changes to this advertiser's objects: retry")


def _logged(advertiser_id: str, plan: Plan) -> None:
    log.info(
        "api change",
        extra={"advertiser": advertiser_id, "kind": plan.result.kind, "id": plan.result.id},
    )


def _text(value: str | bytes | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def apply_on_cluster(
    redis: Redis, advertiser_id: str, revision: int, plan: Plan, *, listing: bool = False
) -> dict[str, bytes] | None:
    """Cluster: write ``plan`` if the advertiser is still at ``revision``; the unpublished
    payloads then (campaign id -> ``<revision>|<payload>``), or None: another writer came
    first. Only the advertiser's slot is touched (``listing``: see ``_record_writes``)."""
    script_keys = [
        keys.advertiser_revision(advertiser_id),
        keys.advertiser_unpublished(advertiser_id),
    ]
    ops = []
    for name, key, *args in plan_writes(advertiser_id, plan, listing=listing):
        text = _text(key)
        if text not in script_keys:
            script_keys.append(text)
        ops.append([_text(name), script_keys.index(text) + 1, *map(_text, args)])
    payloads = [part for item in plan.published.items() for part in item]
    apply = redis.register_script(_APPLY_LUA)
    reply = await apply(keys=script_keys, args=[revision, orjson.dumps(ops), *payloads])
    if int(reply[0]) == 0:
        return None
    pairs = reply[1:]
    return {_text(pairs[i]): pairs[i + 1] for i in range(0, len(pairs), 2)}


async def publish(redis: Redis, advertiser_id: str, unpublished: dict[str, bytes]) -> int:
    """Cluster: put ``unpublished`` payloads in the bidders' hash (newer revisions only) and
    clear the notes; the number of campaigns whose payload changed. Idempotent."""
    if not unpublished:
        return 0
    triples: list[str | bytes] = []
    for campaign_id, value in unpublished.items():
        revision, _, payload = value.partition(b"|")
        triples += [campaign_id, revision, payload]
    campaigns = redis.register_script(_PUBLISH_LUA)
    changed = await campaigns(
        keys=[keys.CAMPAIGNS, keys.CAMPAIGNS_VERSION, keys.CAMPAIGNS_REVISIONS], args=triples
    )
    clear = redis.register_script(_CLEAR_LUA)
    pairs = [part for item in unpublished.items() for part in item]
    await clear(keys=[keys.advertiser_unpublished(advertiser_id)], args=pairs)
    return int(changed)


async def _publish_or_defer(
    redis: Redis, advertiser_id: str, unpublished: dict[str, bytes]
) -> None:
    """Publish; on a Redis error the change stays saved (its answer is a success: a retried
    POST must not create it twice) and its process retries until it is through."""
    try:
        await publish(redis, advertiser_id, unpublished)
    except RedisError as error:
        _deferred.add(advertiser_id)
        log.warning(
            "campaign publication deferred",
            extra={"advertiser": advertiser_id, "error": str(error)},
        )
    else:
        _deferred.discard(advertiser_id)


async def republish(redis: Redis, advertiser_id: str) -> int:
    """Cluster: publish whatever the advertiser has unpublished (a dead writer's leftovers)."""
    stored = await redis.hgetall(keys.advertiser_unpublished(advertiser_id))
    unpublished = {_text(k): v for k, v in stored.items() if isinstance(v, bytes)}
    return await publish(redis, advertiser_id, unpublished)


async def republish_all(redis: Redis) -> int:
    """Cluster: publish what every advertiser has unpublished (on process start); the number
    of campaigns whose payload changed. One pipelined read of every advertiser's notes."""
    listed = await redis.zrange(keys.advertisers(), 0, -1)
    ids = [raw.decode() for raw in listed if isinstance(raw, bytes)]
    async with redis.pipeline(transaction=False) as pipe:
        for advertiser_id in ids:
            pipe.hgetall(keys.advertiser_unpublished(advertiser_id))
        found = await pipe.execute() if ids else []
    changed = 0
    for advertiser_id, stored in zip(ids, found, strict=True):
        if stored:
            unpublished = {_text(k): v for k, v in stored.items() if isinstance(v, bytes)}
            changed += await publish(redis, advertiser_id, unpublished)
    if changed:
        log.warning("unpublished campaigns republished", extra={"campaigns": changed})
    return changed


async def republish_deferred(redis: Redis) -> None:
    """Retry the publications that failed in this process (called every second)."""
    for advertiser_id in sorted(_deferred):
        try:
            await republish(redis, advertiser_id)
        except RedisError:
            continue
        _deferred.discard(advertiser_id)


async def _transact_on_cluster(
    redis: Redis, advertiser_id: str, decide: Callable[[Snapshot], Plan]
) -> Plan:
    for _ in range(_ATTEMPTS):
        snapshot = await load_snapshot(redis, advertiser_id)
        plan = decide(snapshot)
        if plan.empty:
            return plan
        unpublished = await apply_on_cluster(redis, advertiser_id, snapshot.revision, plan)
        if unpublished is None:
            continue
        _logged(advertiser_id, plan)
        await _publish_or_defer(redis, advertiser_id, unpublished)
        return plan
    raise ObjectConflict("too many concurrent changes to this advertiser's objects: retry")


async def create_advertiser(redis: Redis, record: Record) -> None:
    """Store a new advertiser record (an admin's act, audited as such)."""
    advertiser_id = record.id
    plan = Plan(record, [record], [entry_for(ADMIN, "create", None, record)])
    if is_cluster(redis):
        # The listing first (another slot, idempotent): an id listed whose advertiser was
        # never written is skipped by every reader; the advertiser is created only at
        # revision 0, that is when nothing of it exists.
        await redis.zadd(keys.advertisers(), {advertiser_id: record.seq}, nx=True)
        if await apply_on_cluster(redis, advertiser_id, 0, plan) is None:
            raise ObjectConflict(f"advertiser {advertiser_id} exists")
        return
    async with redis.pipeline(transaction=True) as pipe:
        await pipe.watch(keys.advertiser(advertiser_id))
        if await pipe.exists(keys.advertiser(advertiser_id)):
            raise ObjectConflict(f"advertiser {advertiser_id} exists")
        pipe.multi()  # type: ignore[no-untyped-call]
        queue_plan(pipe, advertiser_id, plan)
        await pipe.execute()
