"""``dsp advertisers`` and ``dsp tokens``: the operator's side of the advertiser API.

An advertiser is created here with its first API token; the token is printed once and
Redis keeps only its SHA-256 (``infra.tokens``). Each advertiser's tokens are listed in a
registry under its own keys, by token id (a digest prefix, safe to show and log), so an
operator can list and revoke them without ever holding the token itself.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from typing import Any

import orjson
import uvloop
from redis.asyncio import Redis
from redis.exceptions import RedisError

from dmp.taxonomy import Taxonomy
from dsp.api import changes, store
from dsp.api.audit import AuditEntry
from dsp.api.http import SCOPES, WRITE, token_id
from dsp.api.records import ADMIN, ADVERTISER, Record, utc_now
from dsp.api.validation import Validators
from dsp.errors import ApiError, ObjectNotFound
from infra import keys
from infra.redis_client import is_cluster, redis_client
from infra.settings import Settings
from infra.tokens import create_token

ADMIN_COMMANDS = ("advertisers", "tokens")


def _rules() -> changes.Rules:
    return changes.Rules(Validators(), Taxonomy.default())


async def _audit_token(redis: Redis, advertiser_id: str, tid: str, action: str) -> None:
    entry = AuditEntry(utc_now(), ADMIN, "token", tid, action, None, None, ())
    await redis.xadd(keys.api_audit(advertiser_id), {"entry": entry.dumps()})


async def create_api_token(
    redis: Redis, advertiser_id: str, scopes: frozenset[str] = frozenset(SCOPES)
) -> tuple[str, str]:
    """A new token of an existing, unarchived advertiser: (token, token id)."""
    advertiser = await store.advertiser_of(redis, advertiser_id)
    if advertiser is None or advertiser.archived:
        raise ObjectNotFound(ADVERTISER.name, advertiser_id)
    token = await create_token(redis, "dsp", advertiser_id, scopes)
    tid = token_id(token)
    digest = hashlib.sha256(token.encode()).hexdigest()
    info = {"digest": digest, "scopes": sorted(scopes), "created": time.time()}
    await redis.hset(keys.advertiser_tokens(advertiser_id), tid, orjson.dumps(info))
    await _audit_token(redis, advertiser_id, tid, "create")
    return token, tid


async def create_advertiser(
    redis: Redis, name: str, timezone: str, currency: str = "USD"
) -> tuple[Record, str, str]:
    """A new advertiser and its first token: (advertiser, token, token id)."""
    body = changes.normalised(
        ADVERTISER, {"name": name, "timezone": timezone, "currency": currency}, _rules()
    )
    record = Record.new(ADVERTISER, ADVERTISER.new_id(), body, time.time_ns() // 1_000_000)
    await store.create_advertiser(redis, record)
    token, tid = await create_api_token(redis, record.id)
    return record, token, tid


async def list_advertisers(redis: Redis) -> list[Record]:
    listed = await redis.zrange(keys.advertisers(), 0, -1)
    ids = [raw.decode() for raw in listed if isinstance(raw, bytes)]
    found = [await store.advertiser_of(redis, advertiser_id) for advertiser_id in ids]
    return [record for record in found if record is not None]


async def archive_advertiser(redis: Redis, advertiser_id: str) -> Record:
    """Archive an advertiser: its tokens stop working and its campaigns stop bidding."""
    rules = _rules()
    plan = await store.transact(
        redis,
        advertiser_id,
        lambda snapshot: changes.archive(snapshot, ADVERTISER, advertiser_id, None, ADMIN, rules),
    )
    return plan.result


async def list_tokens(redis: Redis, advertiser_id: str) -> list[dict[str, Any]]:
    stored = await redis.hgetall(keys.advertiser_tokens(advertiser_id))
    tokens = []
    for tid, raw in sorted(stored.items()):
        info = orjson.loads(raw)
        tokens.append(
            {
                "token_id": tid.decode() if isinstance(tid, bytes) else tid,
                "scopes": info["scopes"],
                "created": info["created"],
            }
        )
    return tokens


async def revoke_api_token(
    redis: Redis, advertiser_id: str, *, tid: str | None = None, token: str | None = None
) -> bool:
    """Revoke by token id or by the token itself; False when the advertiser has no such token."""
    if token is not None:
        tid = token_id(token)
    registry = keys.advertiser_tokens(advertiser_id)
    raw = await redis.hget(registry, tid or "")
    if raw is None or tid is None:
        return False
    digest = orjson.loads(raw)["digest"]
    if is_cluster(redis):
        # The token and the registry are in two slots: the token goes first, so it stops
        # working at once; a crash before the second step leaves it listed, and revoking it
        # again finishes the job.
        await redis.delete(keys.api_token("dsp", digest))
        await redis.hdel(registry, tid)
    else:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.api_token("dsp", digest))
            pipe.hdel(registry, tid)
            await pipe.execute()
    await _audit_token(redis, advertiser_id, tid, "revoke")
    return True


def add_admin_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``advertisers`` and ``tokens`` to the ``dsp`` command; run with ``run_admin``."""
    redis_help = "Redis holding the advertisers (default: $REDIS_URL; required)"
    advertisers = commands.add_parser(
        "advertisers",
        help="create, list or archive advertisers",
        description="`create` prints the new advertiser id and its first API token (once).",
    )
    advertisers.add_argument("action", choices=("create", "list", "archive"))
    advertisers.add_argument("advertiser_id", nargs="?", help="the advertiser (archive)")
    advertisers.add_argument("--name", help="the advertiser's name (create)")
    advertisers.add_argument("--timezone", help="IANA time zone of its dayparts (create)")
    advertisers.add_argument("--currency", default="USD", help="only USD for now")
    advertisers.add_argument("--redis-url", help=redis_help)
    tokens = commands.add_parser(
        "tokens",
        help="create, list or revoke advertiser API tokens",
        description="A token is printed once and stored only as its SHA-256 digest.",
    )
    tokens.add_argument("action", choices=("create", "list", "revoke"))
    tokens.add_argument("--advertiser", required=True, help="the advertiser the token acts for")
    tokens.add_argument("--read-only", action="store_true", help="a token that cannot change")
    tokens.add_argument("--token-id", help="the token to revoke, by id (from `list`)")
    tokens.add_argument("--token", help="the token to revoke, by its value")
    tokens.add_argument("--redis-url", help=redis_help)


def _view(record: Record) -> dict[str, Any]:
    return record.view()


async def _advertisers(redis: Redis, args: argparse.Namespace) -> tuple[int, str]:
    if args.action == "create":
        if not args.name or not args.timezone:
            return 2, "advertisers create needs --name and --timezone"
        record, token, tid = await create_advertiser(redis, args.name, args.timezone, args.currency)
        return 0, orjson.dumps(
            {"advertiser_id": record.id, "token": token, "token_id": tid}
        ).decode()
    if args.action == "list":
        rows = [
            f"{r.id}\t{r.status}\t{r.body['timezone']}\t{r.body['name']}"
            for r in await list_advertisers(redis)
        ]
        return 0, "\n".join(rows)
    if not args.advertiser_id:
        return 2, "advertisers archive needs the advertiser id"
    record = await archive_advertiser(redis, args.advertiser_id)
    return 0, f"{record.id}\t{record.status}"


async def _tokens(redis: Redis, args: argparse.Namespace) -> tuple[int, str]:
    if args.action == "create":
        scopes = frozenset(SCOPES) - ({WRITE} if args.read_only else set())
        token, tid = await create_api_token(redis, args.advertiser, scopes)
        return 0, orjson.dumps({"token": token, "token_id": tid}).decode()
    if args.action == "list":
        listed = await list_tokens(redis, args.advertiser)
        return 0, "\n".join(f"{t['token_id']}\t{','.join(t['scopes'])}" for t in listed)
    if not (args.token_id or args.token):
        return 2, "tokens revoke needs --token-id or --token"
    revoked = await revoke_api_token(redis, args.advertiser, tid=args.token_id, token=args.token)
    return (0, "revoked") if revoked else (1, "no such token")


async def _run(url: str, args: argparse.Namespace) -> tuple[int, str]:
    redis = redis_client(url)
    try:
        if args.command == "advertisers":
            return await _advertisers(redis, args)
        return await _tokens(redis, args)
    finally:
        await redis.aclose()


def run_admin(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``dsp advertisers ...`` or ``dsp tokens ...``; the exit status."""
    url = args.redis_url or settings.redis_url
    if not url:
        # An embedded Redis would forget the advertiser the moment this command exits.
        print(f"dsp {args.command}: give --redis-url or REDIS_URL", file=sys.stderr)
        return 2
    try:
        status, text = uvloop.run(_run(url, args))
    except ApiError as error:
        status, text = (1 if isinstance(error, ObjectNotFound) else 2), str(error)
    except RedisError as error:
        status, text = 2, f"redis: {error}"
    print(text, file=sys.stdout if status == 0 else sys.stderr)
    return status
