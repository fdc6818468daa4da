"""Advertiser objects in Redis: read one, list a page, or apply a change atomically.

Every key of an advertiser shares the hash tag ``{adv:ID}`` (``infra.keys``). A change is an
optimistic transaction: WATCH the advertiser's revision counter, read its snapshot, decide
(``dsp.api.changes``, pure), then MULTI/EXEC the records, listing order, audit entries,
bidder payloads and the revision bump together. Another writer in between makes EXEC fail
and the change is decided again on fresh data, so two concurrent edits of one object are
judged by If-Match one after the other and a stale ETag can never win.

The bidder payloads (``dsp:campaigns`` and its version counter, which every bidder polls)
are written in the same MULTI/EXEC, so a change reaches the bidders exactly when it is
saved. On Redis Cluster that transaction would span two slots; the platform runs one Redis
(or a primary with replicas) for campaign data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from dsp.api.audit import entry_for
from dsp.api.changes import Plan
from dsp.api.records import ADMIN, ADVERTISER, OWNED_KINDS, Kind, Record, Snapshot
from dsp.errors import ObjectConflict, ObjectNotFound
from infra import keys

log = logging.getLogger(__name__)

_ATTEMPTS = 20  # optimistic retries before telling the caller to try again (409)


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


def _queue_record(pipe: Pipeline, advertiser_id: str, record: Record) -> None:
    if record.kind == ADVERTISER.name:
        pipe.set(keys.advertiser(advertiser_id), record.dumps())
        pipe.zadd(keys.advertisers(), {advertiser_id: record.seq}, nx=True)
        return
    plural = next(kind.plural for kind in OWNED_KINDS if kind.name == record.kind)
    pipe.hset(keys.api_objects(advertiser_id, plural), record.id, record.dumps())
    pipe.zadd(keys.api_order(advertiser_id, plural, live=False), {record.id: record.seq}, nx=True)
    live = keys.api_order(advertiser_id, plural, live=True)
    if record.archived:
        pipe.zrem(live, record.id)
    else:
        pipe.zadd(live, {record.id: record.seq}, nx=True)


def queue_plan(pipe: Pipeline, advertiser_id: str, plan: Plan) -> None:
    """Every write of ``plan``, queued inside MULTI."""
    pipe.incr(keys.advertiser_revision(advertiser_id))
    for record in plan.records:
        _queue_record(pipe, advertiser_id, record)
    for entry in plan.audit:
        pipe.xadd(keys.api_audit(advertiser_id), {"entry": entry.dumps()})
    if plan.published:
        pipe.hset(keys.CAMPAIGNS, mapping=plan.published)  # type: ignore[arg-type]
        pipe.incr(keys.CAMPAIGNS_VERSION)


async def transact(redis: Redis, advertiser_id: str, decide: Callable[[Snapshot], Plan]) -> Plan:
    """Decide on a consistent snapshot and write the plan atomically, retrying on a race."""
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
            log.info(
                "api change",
                extra={"advertiser": advertiser_id, "kind": plan.result.kind, "id": plan.result.id},
            )
            return plan
    raise ObjectConflict("too many concurrent changes to this advertiser's objects: retry")


async def create_advertiser(redis: Redis, record: Record) -> None:
    """Store a new advertiser record (an admin's act, audited as such)."""
    advertiser_id = record.id
    plan = Plan(record, [record], [entry_for(ADMIN, "create", None, record)])
    async with redis.pipeline(transaction=True) as pipe:
        await pipe.watch(keys.advertiser(advertiser_id))
        if await pipe.exists(keys.advertiser(advertiser_id)):
            raise ObjectConflict(f"advertiser {advertiser_id} exists")
        pipe.multi()  # type: ignore[no-untyped-call]
        queue_plan(pipe, advertiser_id, plan)
        await pipe.execute()
