from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from redis.asyncio import Redis

from dmp.audience_build import bump_version
from dmp.audience_ids import IdMatch, MatchedIds, match_ids
from dmp.audience_store import Audience, AudienceStore, forget_device
from dmp.audiences import Audiences
from dmp.errors import AudienceError, AudienceNotFound
from dmp.ingest import ingest_records
from dmp.profile_store import ProfileStore
from dmp.taxonomy import Taxonomy
from infra import keys
from tests.dmp.test_audience_index import (
    NOW,
    brute_force,
    random_id,
    store_population,
)

FEMALE_OR_CAR = "base.gender.female OR social.car_ownership"
AUTO = "interest.automotive"
TRAVEL = "interest.travel"


def audiences(redis: Redis) -> Audiences:
    return Audiences(redis, Taxonomy.default(), clock=lambda: NOW)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


async def exported(service: Audiences, owner: str, audience: Audience, path: Path) -> list[str]:
    count = await service.export(owner, audience.id, path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert count == len(lines)
    return lines


async def test_an_expression_audience_has_the_brute_force_size(redis: Redis) -> None:
    devices = await store_population(redis)
    service = audiences(redis)
    audience = await service.create_from_expression(
        "adv-1", " Drivers ", f"{AUTO} AND NOT {TRAVEL}"
    )
    expected = len(brute_force(devices, f"{AUTO} AND NOT {TRAVEL}"))
    assert (audience.name, audience.kind, audience.size) == ("Drivers", "expression", expected)
    assert audience.expression == f"{AUTO} AND NOT {TRAVEL}"
    assert await service.size("adv-1", audience.id) == expected
    assert await service.estimate(f"{AUTO}   and not {TRAVEL}") == expected
    assert await service.get("adv-1", audience.id) == audience
    assert await service.list("adv-1") == [audience]


async def test_ids_in_every_form_match_their_devices(redis: Redis) -> None:
    devices = await store_population(redis, 60)
    idfa, gaid, imei, mac, oaid = devices[:5]
    assert [d.id.type.value for d in devices[:5]] == ["idfa", "gaid", "imei", "mac", "oaid"]
    unknown = random_id(random.Random(99), "gaid")
    lines = [
        "id_type,id",
        idfa.line,
        f"idfa,{idfa.id.value.lower()}",  # raw, other case: the same device
        f"idfa_md5,{md5(idfa.id.value)}",
        f"IDFA,{md5(idfa.id.value.lower()).upper()}",  # md5 of the lowercase spelling
        f"gaid_sha1,{sha1(gaid.id.value).upper()}",
        f"imei,{imei.id.value[:14]}",  # without its check digit
        f"didmd5,{md5(imei.id.value)}",  # unknown type name
        f"mac,{mac.id.value.replace(':', '-').lower()}",
        f"mac_sha1,{sha1(mac.id.value.replace(':', ''))}",
        f"oaid,{oaid.id.value.upper()}",
        f"gaid,{unknown.value}",  # valid, not in the DMP
        f"key,{devices[6].key.hex()}",
        "",
        "idfa,not-an-idfa",
        "imei,123",
        "no comma and no type",
        f"gaid_md5,{md5('')}",  # the hash of nothing
    ]
    service = audiences(redis)
    audience = await service.create_from_ids("adv-1", "upload", lines)
    match = audience.match
    assert match is not None
    assert (match.lines, match.matched, match.unmatched, match.invalid) == (16, 10, 1, 5)
    assert match.devices == 6 == audience.size
    assert [r.line for r in match.rejected] == [8, 15, 16, 17, 18]
    assert "unknown ID type" in match.rejected[0].reason
    assert await service.size("adv-1", audience.id) == 6
    assert await service.get("adv-1", audience.id) == audience


async def test_bare_values_take_the_given_type(redis: Redis) -> None:
    devices = await store_population(redis, 30)
    gaids = [d for d in devices if d.id.type.value == "gaid"]
    lines = [d.id.value for d in gaids] + [md5(gaids[0].id.value), "junk"]
    matched = await match_ids(redis, lines, "gaid")
    report = matched.report
    assert (report.matched, report.unmatched, report.invalid, report.devices) == (
        len(gaids) + 1,
        0,
        1,
        len(gaids),
    )
    assert matched.ids[gaids[0].key] == [
        f"gaid,{gaids[0].id.value}",
        f"gaid_md5,{md5(gaids[0].id.value)}",
    ]


async def test_an_alias_left_by_a_deleted_device_does_not_match(redis: Redis) -> None:
    devices = await store_population(redis, 10)
    line = f"{devices[0].id.type.value}_sha1,{sha1(devices[0].id.value)}"
    assert (await match_ids(redis, [line])).report.matched == 1
    await ProfileStore(redis).delete([devices[0].key])  # the SHA1 alias stays behind
    matched = await match_ids(redis, [line])
    assert (matched.report.matched, matched.report.unmatched) == (0, 1)


async def test_ingested_devices_match_and_size(redis: Redis) -> None:
    gaids = [f"38400000-8cf0-11bd-b23e-10b96e4000{n:02x}" for n in range(3)]
    tags = [["base.gender.female"], [AUTO + ".suv"], ["base.gender.male"]]
    records = [{"id_type": "gaid", "id": g, "tags": t} for g, t in zip(gaids, tags, strict=True)]
    taxonomy = Taxonomy.default()
    assert await ingest_records(redis, records, taxonomy=taxonomy, now=NOW) == 3
    service = audiences(redis)
    assert await service.estimate(FEMALE_OR_CAR + " OR interest.automotive") == 2
    audience = await service.create_from_ids("o", "n", gaids, "gaid")
    assert audience.size == 3


async def test_set_operations_agree_with_python_sets(redis: Redis, tmp_path: Path) -> None:
    devices = await store_population(redis)
    service = audiences(redis)
    first = await service.create_from_expression("adv", "a", FEMALE_OR_CAR)
    second = await service.create_from_expression("adv", "b", AUTO)
    listed = [d for n, d in enumerate(devices) if n % 3 == 0]
    third = await service.create_from_ids("adv", "c", [d.line for d in listed])
    a, b = brute_force(devices, FEMALE_OR_CAR), brute_force(devices, AUTO)
    c = {d.key for d in listed}
    ids = [first.id, second.id, third.id]
    expected = {"union": a | b | c, "intersection": a & b & c, "difference": a - b - c}
    for op, keys_wanted in expected.items():
        combined = await service.combine("adv", op, op, ids)
        assert (combined.kind, combined.operation, combined.sources) == (
            "combination",
            op,
            tuple(ids),
        )
        assert combined.size == len(keys_wanted) == await service.size("adv", combined.id)
        index, mask = await service.members("adv", combined.id)
        assert set(index.digests_of(index.rows(mask))) == keys_wanted
    nested = await service.combine("adv", "n", "intersection", [combined.id, first.id])
    assert nested.size == len(a - b - c)


async def test_split_parts_are_exact_disjoint_and_stable(redis: Redis) -> None:
    devices = await store_population(redis)
    service = audiences(redis)
    source = await service.create_from_ids("adv", "all", [d.line for d in devices[:1001]])
    parts = await service.split("adv", source.id, [70, 30])
    assert [p.name for p in parts] == ["all (1/2, 70%)", "all (2/2, 30%)"]
    assert abs(parts[0].size - 700.7) <= 1 and abs(parts[1].size - 300.3) <= 1
    assert parts[0].size + parts[1].size == 1001
    members = []
    for part in parts:
        index, mask = await service.members("adv", part.id)
        members.append(set(index.digests_of(index.rows(mask))))
    assert not members[0] & members[1]
    again = await service.split("adv", source.id, [0.7, 0.3], names=["A", "B"])
    assert [a.name for a in again] == ["A", "B"]
    for part, before in zip(again, members, strict=True):
        index, mask = await service.members("adv", part.id)
        assert set(index.digests_of(index.rows(mask))) == before
    with pytest.raises(AudienceError) as error:
        await service.split("adv", source.id, [1, 0])
    assert error.value.field == "ratios"
    with pytest.raises(AudienceError) as error:
        await service.split("adv", source.id, [1, 1], names=["one"])
    assert error.value.field == "names"


async def test_an_id_list_exports_its_given_ids_and_round_trips(
    redis: Redis, tmp_path: Path
) -> None:
    devices = await store_population(redis, 200)
    service = audiences(redis)
    given = [d.line for d in devices[:50]] + [f"gaid_sha1,{sha1(devices[1].id.value)}"]
    audience = await service.create_from_ids("adv", "list", given)
    lines = await exported(service, "adv", audience, tmp_path / "out.csv")
    assert sorted(lines) == sorted(given)
    again = await service.create_from_ids("adv", "again", lines)
    assert again.match is not None and again.match.matched == len(lines)
    index, mask = await service.members("adv", again.id)
    assert set(index.digests_of(index.rows(mask))) == {d.key for d in devices[:50]}


async def test_an_expression_exports_device_keys_that_round_trip(
    redis: Redis, tmp_path: Path
) -> None:
    devices = await store_population(redis, 300)
    service = audiences(redis)
    audience = await service.create_from_expression("adv", "auto", AUTO)
    lines = await exported(service, "adv", audience, tmp_path / "auto.csv")
    assert sorted(lines) == sorted(f"key,{key.hex()}" for key in brute_force(devices, AUTO))
    again = await service.create_from_ids("adv", "re-upload", lines)
    assert again.size == audience.size
    # A combination with an ID list gives back the given IDs where it has them.
    listed = await service.create_from_ids("adv", "l", [d.line for d in devices[:100]])
    union = await service.combine("adv", "u", "union", [audience.id, listed.id])
    lines = await exported(service, "adv", union, tmp_path / "union.csv")
    assert {d.line for d in devices[:100]} <= set(lines)
    assert len(lines) == union.size


async def test_owners_never_see_each_others_audiences(redis: Redis, tmp_path: Path) -> None:
    await store_population(redis, 100)
    service = audiences(redis)
    mine = await service.create_from_expression("adv-a", "mine", AUTO)
    other = await service.create_from_expression("adv-b", "theirs", AUTO)
    calls = [
        service.get("adv-b", mine.id),
        service.size("adv-b", mine.id),
        service.delete("adv-b", mine.id),
        service.export("adv-b", mine.id, tmp_path / "x"),
        service.split("adv-b", mine.id, [1, 1]),
        service.combine("adv-b", "c", "union", [other.id, mine.id]),
        service.get("adv-a", "0123456789abcdef"),
        service.get("adv-a", "../../etc"),
    ]
    for call in calls:
        with pytest.raises(AudienceNotFound):
            await call
    assert [a.id for a in await service.list("adv-a")] == [mine.id]
    assert [a.id for a in await service.list("adv-b")] == [other.id]
    assert not (tmp_path / "x").exists()


async def test_delete_is_refused_while_another_audience_uses_it(redis: Redis) -> None:
    await store_population(redis, 50)
    service = audiences(redis)
    base = await service.create_from_ids(
        "adv", "ids", ["gaid,38400000-8cf0-11bd-b23e-10b96e40000d"]
    )
    other = await service.create_from_expression("adv", "e", AUTO)
    union = await service.combine("adv", "u", "union", [base.id, other.id])
    with pytest.raises(AudienceError) as error:
        await service.delete("adv", base.id)
    assert error.value.field == "id" and union.id in error.value.reason
    await service.delete("adv", union.id)
    await service.delete("adv", base.id)
    assert [a.id for a in await service.list("adv")] == [other.id]
    assert not await redis.exists(keys.audience_digests("adv", base.id))
    assert not await redis.smembers(keys.audience_id_lists())


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.create_from_expression("adv", "x", "interest.nope"), "expression"),
        (lambda s: s.create_from_expression("adv", "x", "base AND"), "expression"),
        (lambda s: s.create_from_expression("adv", " ", AUTO), "name"),
        (lambda s: s.create_from_expression("", "x", AUTO), "owner"),
        (lambda s: s.create_from_ids("adv", "x", ["", "  "]), "ids"),
        (lambda s: s.combine("adv", "x", "xor", ["a", "b"]), "operation"),
        (lambda s: s.combine("adv", "x", "union", ["a"]), "ids"),
        (lambda s: s.estimate("interest.automotive >= 5"), "expression"),
    ],
)
async def test_bad_input_names_the_field(redis: Redis, call: object, field: str) -> None:
    service = audiences(redis)
    with pytest.raises(AudienceError) as error:
        await call(service)  # type: ignore[operator]
    assert error.value.field == field


async def test_forget_device_removes_it_from_every_id_list(redis: Redis, tmp_path: Path) -> None:
    devices = await store_population(redis, 100)
    service = audiences(redis)
    gone, kept = devices[3], devices[4]
    first = await service.create_from_ids("adv-a", "a", [gone.line, kept.line])
    second = await service.create_from_ids("adv-b", "b", [gone.line, f"key,{gone.key.hex()}"])
    third = await service.create_from_ids("adv-b", "c", [kept.line])
    expression = await service.create_from_expression("adv-a", "all", "NOT interest.finance")
    assert await service.size("adv-a", expression.id) == 100
    await ProfileStore(redis).delete(gone.digests)  # what the erasure does to profiles
    assert await forget_device(redis, gone.key) == 2
    assert await forget_device(redis, gone.key) == 0
    assert await exported(service, "adv-a", first, tmp_path / "a") == [kept.line]
    assert await exported(service, "adv-b", second, tmp_path / "b") == []
    assert await service.size("adv-b", third.id) == 1
    assert await service.size("adv-a", expression.id) == 99  # the version was bumped
    assert not await redis.hexists(keys.audience_ids("adv-b", second.id), gone.key)


async def test_forget_only_removes_a_digest_at_a_device_boundary(redis: Redis) -> None:
    store = AudienceStore(redis)
    await bump_version(redis)
    audience = Audience("00000000000000aa", "o", "n", "ids", 0.0, 2)
    left, right = b"\x00\x00\x00\x00ABCD", b"EFGH\x01\x01\x01\x01"
    matched = MatchedIds(IdMatch(2, 2, 0, 0, 2), {left: ["key,a"], right: ["key,b"]})
    await store.save_id_list(audience, matched)
    assert await forget_device(redis, b"ABCDEFGH") == 0
    assert await store.digests(audience) == left + right
    assert await forget_device(redis, right) == 1
    assert await store.digests(audience) == left
    assert await store.given_ids(audience) == {left: ["key,a"]}
