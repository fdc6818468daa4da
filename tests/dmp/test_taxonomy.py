from __future__ import annotations

from pathlib import Path

import pytest

from dmp.errors import TaxonomyError, UnknownTag
from dmp.taxonomy import MAX_TAG_ID, TAG_CODE, Tag, Taxonomy, format_table

HEADER = "id,code,name,dimension,category,scored,ttl_days\n"


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.default()


def write_csv(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "taxonomy.csv"
    path.write_text(HEADER + "".join(row + "\n" for row in rows), encoding="utf-8")
    return path


def test_default_is_large_enough(taxonomy: Taxonomy) -> None:
    assert len(taxonomy) >= 400
    assert len(taxonomy.categories()) >= 35
    assert taxonomy.dimensions() == ("base", "social", "interest", "usage", "scene")


def test_default_ids_and_codes_are_unique_and_well_formed(taxonomy: Taxonomy) -> None:
    ids = [tag.id for tag in taxonomy.tags]
    codes = [tag.code for tag in taxonomy.tags]
    assert len(set(ids)) == len(ids)
    assert len(set(codes)) == len(codes)
    assert all(1 <= i <= MAX_TAG_ID for i in ids)
    assert all(TAG_CODE.fullmatch(code) for code in codes)
    # Ids are assigned in file order and never reused, so the shipped file has no gaps yet.
    # The 3+X tags are numbered from 1, scene tags from 1001: ids are never reused.
    assert ids == sorted(ids)
    low = [i for i in ids if i < 1001]
    assert low == list(range(1, len(low) + 1))
    assert all(i >= 1001 for i in ids[len(low) :])


def test_default_is_loaded_once() -> None:
    assert Taxonomy.default() is Taxonomy.default()


def test_base_dimension_has_the_three_attributes(taxonomy: Taxonomy) -> None:
    base = [c for c in taxonomy.categories() if c.startswith("base.")]
    assert base == ["base.age", "base.gender", "base.income"]
    assert taxonomy.resolve("base.gender") == {
        taxonomy.tag("base.gender.male").id,
        taxonomy.tag("base.gender.female").id,
    }


def test_default_expiries_and_scores(taxonomy: Taxonomy) -> None:
    scored = [tag for tag in taxonomy.tags if tag.scored]
    assert len(scored) >= 24
    assert taxonomy.tag("interest.automotive.purchase_intent").scored
    assert taxonomy.tag("interest.automotive.purchase_intent").ttl_days == 14
    assert taxonomy.tag("base.age.25_34").ttl_days == 365
    assert taxonomy.tag("interest.travel.outbound").ttl_days == 90
    assert taxonomy.tag("usage.app_video.short_video").ttl_days == 30


def test_tag_by_code_and_by_id(taxonomy: Taxonomy) -> None:
    suv = taxonomy.tag("interest.automotive.suv")
    assert suv.dimension == "interest"
    assert suv.category == "automotive"
    assert suv.category_code == "interest.automotive"
    assert taxonomy.tag(suv.id) is suv


@pytest.mark.parametrize("key", ["interest.automotive.hovercraft", "interest.automotive", 0, 4096])
def test_tag_unknown(taxonomy: Taxonomy, key: str | int) -> None:
    with pytest.raises(UnknownTag) as info:
        taxonomy.tag(key)
    assert info.value.code == str(key)


def test_resolve_tag_category_and_dimension(taxonomy: Taxonomy) -> None:
    suv = taxonomy.tag("interest.automotive.suv")
    assert taxonomy.resolve("interest.automotive.suv") == {suv.id}
    automotive = taxonomy.resolve("interest.automotive")
    assert suv.id in automotive
    assert automotive == {t.id for t in taxonomy.tags if t.category_code == "interest.automotive"}
    interest = taxonomy.resolve("interest")
    assert automotive < interest
    assert interest == {t.id for t in taxonomy.tags if t.dimension == "interest"}
    everything = set().union(*(taxonomy.resolve(d) for d in taxonomy.dimensions()))
    assert len(everything) == len(taxonomy)


@pytest.mark.parametrize("code", ["", "interests", "interest.cars", "interest.automotive.x.y"])
def test_resolve_unknown(taxonomy: Taxonomy, code: str) -> None:
    with pytest.raises(UnknownTag):
        taxonomy.resolve(code)


def test_contains(taxonomy: Taxonomy) -> None:
    assert "interest.automotive" in taxonomy
    assert "interest.cars" not in taxonomy


def test_search_matches_code_and_name_ignoring_case(taxonomy: Taxonomy) -> None:
    by_code = taxonomy.search("NEW_ENERGY")
    assert "interest.automotive.new_energy_vehicle" in [t.code for t in by_code]
    by_name = taxonomy.search("suv")
    assert [t.code for t in by_name] == ["interest.automotive.suv"]
    assert taxonomy.search("Men's grooming")[0].code == "interest.beauty.mens_grooming"
    assert taxonomy.search("no such thing at all") == []
    assert len(taxonomy.search("")) == len(taxonomy)


def test_from_csv_round_trip(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "1,base.gender.male,Gender: Male,base,gender,0,365",
        '7,usage.device_price_tier.1000_2000,"CNY 1,000-2,000",usage,device_price_tier,0,30',
        "3,interest.automotive.purchase_intent,Auto intent,interest,automotive,1,14",
    )
    taxonomy = Taxonomy.from_csv(path)
    assert len(taxonomy) == 3
    assert taxonomy.tag(7) == Tag(
        7, "usage.device_price_tier.1000_2000", "CNY 1,000-2,000", "usage",
        "device_price_tier", False, 30,
    )  # fmt: skip
    assert taxonomy.tag(3).scored


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        (
            [
                "1,base.gender.male,Male,base,gender,0,365",
                "1,base.gender.female,Female,base,gender,0,365",
            ],
            "duplicate id 1",
        ),
        (
            [
                "1,base.gender.male,Male,base,gender,0,365",
                "2,base.gender.male,Male again,base,gender,0,365",
            ],
            "duplicate code",
        ),
        (["1,base.gender.male,Male,base,sex,0,365"], "is not in base.sex"),
        (["1,base.gender,Male,base,gender,0,365"], "is not dimension.category.tag"),
        (["1,Base.Gender.Male,Male,base,gender,0,365"], "is not dimension.category.tag"),
        (["x,base.gender.male,Male,base,gender,0,365"], "id must be"),
        (["0,base.gender.male,Male,base,gender,0,365"], "is not in 1..4095"),
        (["4096,base.gender.male,Male,base,gender,0,365"], "is not in 1..4095"),
        (["1,base.gender.male,Male,base,gender,yes,365"], "scored must be 0 or 1"),
        (["1,base.gender.male,Male,base,gender,0,-1"], "ttl_days must be"),
        (["1,base.gender.male,Male,base,gender,0,0"], "ttl_days 0"),
        (["1,base.gender.male,,base,gender,0,365"], "has no name"),
        (["1,base.gender.male,Male,base,gender,0"], "expected 7 columns"),
    ],
)
def test_from_csv_rejects_bad_rows(tmp_path: Path, rows: list[str], reason: str) -> None:
    path = write_csv(tmp_path, *rows)
    with pytest.raises(TaxonomyError) as info:
        Taxonomy.from_csv(path)
    assert reason in info.value.reason
    assert info.value.source.startswith(str(path))


def test_from_csv_reports_the_line_of_a_bad_row(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "1,base.gender.male,Male,base,gender,0,365",
        "2,base.gender.female,Female,base,gender,maybe,365",
    )
    with pytest.raises(TaxonomyError) as info:
        Taxonomy.from_csv(path)
    assert info.value.source == f"{path}:3"


def test_from_csv_rejects_a_wrong_header(tmp_path: Path) -> None:
    path = tmp_path / "taxonomy.csv"
    path.write_text("id,code,name\n1,base.gender.male,Male\n", encoding="utf-8")
    with pytest.raises(TaxonomyError, match="header must be"):
        Taxonomy.from_csv(path)


def test_from_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError) as info:
        Taxonomy.from_csv(tmp_path / "missing.csv")
    assert info.value.source == str(tmp_path / "missing.csv")


def test_format_table(taxonomy: Taxonomy) -> None:
    tags = taxonomy.search("automotive.purchase_intent") + [taxonomy.tag("base.age.18_24")]
    lines = format_table(tags).splitlines()
    assert lines[0].split() == ["id", "code", "name", "scored", "ttl_days"]
    assert set(lines[1]) == {"-", " "}
    assert "interest.automotive.purchase_intent" in lines[2]
    assert "yes" in lines[2]
    assert "yes" not in lines[3]
    assert lines[3].rstrip().endswith("365")
    assert len(lines) == 4


def test_format_table_empty() -> None:
    assert len(format_table([]).splitlines()) == 2
