"""``dsp advertisers`` and ``dsp tokens``: made, listed, revoked and archived by an operator."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

import orjson
import pytest
from redis.asyncio import Redis

from dsp.admin import add_admin_commands, run_admin
from infra import keys
from infra.settings import Settings
from tests.dsp.api.conftest import Api, Client, Tenant, campaign_body


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dsp")
    add_admin_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def admin(
    capsys: pytest.CaptureFixture[str], redis_url: str, *argv: str
) -> tuple[int, str, str]:
    """Run one admin command (it runs its own event loop: in a thread, off this one)."""
    args = parse([*argv, "--redis-url", redis_url])
    status = await asyncio.to_thread(run_admin, args, Settings())
    out, err = capsys.readouterr()
    return status, out.strip(), err.strip()


async def test_an_advertiser_is_created_with_a_working_token(
    api_client: Client, redis: Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = await admin(
        capsys, redis_url, "advertisers", "create", "--name", "Acme", "--timezone", "Asia/Tokyo"
    )
    assert status == 0
    created = orjson.loads(out)
    assert created["advertiser_id"].startswith("adv_") and created["token"].startswith("dsp_")
    api = Api(api_client, Tenant(created["advertiser_id"], created["token"]))
    own = await api.call("GET", f"/advertisers/{created['advertiser_id']}")
    assert own.status == 200 and own.body["name"] == "Acme" and own.body["timezone"] == "Asia/Tokyo"
    assert created["token"].encode() not in b"".join(
        [raw for key in await redis.keys("*") if (raw := await redis.dump(key))]
    )

    status, out, _ = await admin(capsys, redis_url, "advertisers", "list")
    assert status == 0 and created["advertiser_id"] in out and "Asia/Tokyo" in out


async def test_a_bad_time_zone_is_refused(
    redis: Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = await admin(
        capsys, redis_url, "advertisers", "create", "--name", "Acme", "--timezone", "Nowhere/Else"
    )
    assert status == 2 and "timezone" in err
    assert await redis.keys("dsp:*") == []


async def test_tokens_are_created_listed_and_revoked(
    api_client: Client, alice: Api, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    advertiser = alice.tenant.id
    status, out, _ = await admin(capsys, redis_url, "tokens", "create", "--advertiser", advertiser)
    assert status == 0
    second = orjson.loads(out)
    api = Api(api_client, Tenant(advertiser, second["token"]))
    assert (await api.call("GET", "/campaigns")).status == 200

    status, out, _ = await admin(capsys, redis_url, "tokens", "list", "--advertiser", advertiser)
    assert status == 0 and second["token_id"] in out and second["token"] not in out
    assert len(out.splitlines()) == 2

    status, _, _ = await admin(
        capsys, redis_url, "tokens", "revoke", "--advertiser", advertiser,
        "--token-id", second["token_id"],
    )  # fmt: skip
    assert status == 0
    assert (await api.call("GET", "/campaigns")).status == 401
    assert (await alice.call("GET", "/campaigns")).status == 200
    audit = await alice.call("GET", "/audit?kind=token")
    actions = [(e["action"], e["object_id"]) for e in audit.body["items"]]
    assert actions[:2] == [("revoke", second["token_id"]), ("create", second["token_id"])]


async def test_a_read_only_token_cannot_change_anything(
    api_client: Client, alice: Api, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    advertiser = alice.tenant.id
    _, out, _ = await admin(
        capsys, redis_url, "tokens", "create", "--advertiser", advertiser, "--read-only"
    )
    reader = Api(api_client, Tenant(advertiser, orjson.loads(out)["token"]))
    assert (await reader.call("GET", "/campaigns")).status == 200
    denied = await reader.call("POST", "/audiences", {"name": "a", "dmp_audience_id": "b"})
    assert denied.status == 403 and denied.body["scope"] == "write"


async def test_revoking_a_token_of_another_advertiser_does_nothing(
    alice: Api, bob: Api, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = await admin(
        capsys, redis_url, "tokens", "revoke", "--advertiser", bob.tenant.id,
        "--token", alice.tenant.token,
    )  # fmt: skip
    assert status == 1 and "no such token" in err
    assert (await alice.call("GET", "/campaigns")).status == 200


async def test_an_archived_advertiser_stops_bidding_and_its_tokens_stop_working(
    alice: Api, redis: Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    creative = await alice.creative()
    campaign = await alice.create("campaigns", campaign_body([creative["id"]]))
    status, out, _ = await admin(capsys, redis_url, "advertisers", "archive", alice.tenant.id)
    assert status == 0 and "archived" in out
    stored = orjson.loads(await redis.hget(keys.CAMPAIGNS, campaign["id"]) or b"{}")
    assert stored["status"] == "archived"
    assert (await alice.call("GET", "/campaigns")).status == 401


async def test_commands_need_a_redis_url(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["advertisers", "list"])
    assert run_admin(args, Settings()) == 2
    assert "REDIS_URL" in capsys.readouterr().err


async def test_unknown_advertiser_gets_exit_1(
    redis: Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = await admin(capsys, redis_url, "tokens", "create", "--advertiser", "adv_x")
    assert status == 1 and "adv_x" in err
