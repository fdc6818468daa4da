from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from dmp.audience_build import build_index
from dmp.audience_index import AudienceIndex
from dmp.audiences import Audiences
from dmp.profile import Snapshot, TagEntry, encode
from dmp.profile_store import ProfileStore
from dmp.reverse_analysis import analyse, format_table, write_png
from dmp.taxonomy import Taxonomy
from tests.dmp.test_audience_index import NOW, TODAY, store_population

FEMALE, MALE = "base.gender.female", "base.gender.male"
SUV, INTENT = "interest.automotive.suv", "interest.automotive.purchase_intent"
OUTBOUND = "interest.travel.outbound"
# Ten devices by hand: 0-3 female, 4-9 male; SUV 0, 4, 6; intent 2; outbound 5, 7.
HOLDERS = {FEMALE: {0, 1, 2, 3}, MALE: {4, 5, 6, 7, 8, 9}, SUV: {0, 4, 6}, INTENT: {2}}
HOLDERS[OUTBOUND] = {5, 7}
CHOSEN = [0, 2, 4, 5]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def digest(n: int) -> bytes:
    return b"device%02d" % n


async def hand_made_index(redis: Redis) -> AudienceIndex:
    taxonomy = Taxonomy.default()
    items = []
    for n in range(10):
        codes = [code for code, held in HOLDERS.items() if n in held]
        entries = [
            TagEntry(taxonomy.tag(code).id, TODAY + 5, 80 if code == INTENT else None)
            for code in codes
        ]
        entries.append(TagEntry(taxonomy.tag("interest.finance.loan_intent").id, TODAY - 1, 50))
        items.append(((digest(n),), encode(Snapshot(), entries)))
    await ProfileStore(redis).put_many(items)
    return await build_index(redis, taxonomy, today=TODAY)


# code: (count among the 4 chosen, share, population share, lift)
EXPECTED = {
    "base": (4, 1.0, 1.0, 1.0),
    "base.gender": (4, 1.0, 1.0, 1.0),
    FEMALE: (2, 0.5, 0.4, 1.25),
    MALE: (2, 0.5, 0.6, 0.5 / 0.6),
    "interest": (4, 1.0, 0.6, 1 / 0.6),
    "interest.automotive": (3, 0.75, 0.4, 1.875),
    SUV: (2, 0.5, 0.3, 0.5 / 0.3),
    INTENT: (1, 0.25, 0.1, 2.5),
    "interest.travel": (1, 0.25, 0.2, 1.25),
    "interest.finance": (0, 0.0, 0.0, None),  # expired everywhere
    "usage": (0, 0.0, 0.0, None),
}


@pytest.mark.parametrize("code", EXPECTED)
async def test_shares_and_lifts_match_the_hand_computed_ones(redis: Redis, code: str) -> None:
    index = await hand_made_index(redis)
    analysis = await analyse(index, [digest(n) for n in CHOSEN] + [b"unknown!", digest(0)])
    assert (analysis.given, analysis.analysed, analysis.population) == (5, 4, 10)
    row = analysis.row(code)
    count, share, population_share, lift = EXPECTED[code]
    assert (row.count, row.population_count) == (count, round(population_share * 10))
    assert row.share == pytest.approx(share)
    assert row.population_share == pytest.approx(population_share)
    assert row.lift == (None if lift is None else pytest.approx(lift))


async def test_every_dimension_category_and_tag_is_reported(redis: Redis) -> None:
    index = await hand_made_index(redis)
    analysis = await analyse(index, [digest(n) for n in CHOSEN])
    taxonomy = Taxonomy.default()
    data = orjson.loads(orjson.dumps(analysis.to_dict()))
    assert [row["code"] for row in data["dimensions"]] == list(taxonomy.dimensions())
    assert [row["code"] for row in data["categories"]] == list(taxonomy.categories())
    assert len(data["tags"]) == len(taxonomy)
    suv = next(row for row in data["tags"] if row["code"] == SUV)
    assert suv == {
        "level": "tag",
        "code": SUV,
        "count": 2,
        "share": 0.5,
        "population_count": 3,
        "population_share": 0.3,
        "lift": pytest.approx(0.5 / 0.3),
    }


async def test_nothing_found_gives_zero_shares_and_no_lift(redis: Redis) -> None:
    index = await hand_made_index(redis)
    analysis = await analyse(index, [b"unknown!"])
    assert (analysis.given, analysis.analysed) == (1, 0)
    assert all(row.count == 0 and row.lift is None for row in analysis.rows)
    assert "0 of 1 devices" in format_table(analysis)


async def test_the_table_lists_dimensions_then_their_categories(redis: Redis) -> None:
    index = await hand_made_index(redis)
    table = format_table(await analyse(index, [digest(n) for n in CHOSEN]))
    lines = table.splitlines()
    assert lines[0] == "4 of 4 devices found in the DMP (10 devices in all)"
    assert lines[2].split() == ["code", "devices", "share", "population", "lift"]
    auto = next(line for line in lines if line.strip().startswith("interest.automotive"))
    assert auto.startswith("  ") and auto.split() == [
        "interest.automotive",
        "3",
        "75.0%",
        "40.0%",
        "1.88",
    ]
    finance = next(line for line in lines if "interest.finance" in line)
    assert finance.split()[-1] == "-"
    assert lines.index(next(line for line in lines if line.startswith("interest "))) < lines.index(
        auto
    )


async def test_the_chart_is_a_png_of_the_categories_held(redis: Redis, tmp_path: Path) -> None:
    index = await hand_made_index(redis)
    analysis = await analyse(index, [digest(n) for n in CHOSEN])
    path = tmp_path / "lift.png"
    assert write_png(analysis, path) == 3  # base.gender, interest.automotive, interest.travel
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert write_png(analysis, tmp_path / "top1.png", top=1) == 1
    assert (tmp_path / "top1.png").read_bytes()[:8] == PNG_MAGIC


async def test_the_service_analyses_uploads_and_audiences(redis: Redis) -> None:
    devices = await store_population(redis, 500)
    service = Audiences(redis, Taxonomy.default(), clock=lambda: NOW)
    lines = [device.line for device in devices[:100]] + ["idfa,bad"]
    report, analysis = await service.analyse_ids(lines)
    assert (report.matched, report.invalid) == (100, 1)
    assert (analysis.given, analysis.analysed, analysis.population) == (101, 100, 500)
    audience = await service.create_from_ids("adv", "first 100", lines)
    again = await service.analyse("adv", audience.id)
    assert again.rows == analysis.rows
    everyone = await service.create_from_expression("adv", "all", "NOT interest.finance")
    flat = await service.analyse("adv", everyone.id)
    assert all(row.lift in (None, pytest.approx(1.0)) for row in flat.rows)
