from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import orjson
import pytest

from adx_mock.devices import luhn_check_digit, luhn_valid, make_imei
from adx_mock.errors import ConfigError, PopulationError
from adx_mock.population import generate_population, read_population, write_population
from dmp.taxonomy import Taxonomy

DEVICES = 3000
UPPER_UUID = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}")
LOWER_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
FIELDS = [
    "id_type",
    "id",
    "os",
    "osv",
    "make",
    "model",
    "price_tier",
    "country",
    "region",
    "city",
    "lat",
    "lon",
    "tags",
]


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.default()


@pytest.fixture(scope="module")
def records(taxonomy: Taxonomy) -> list[dict[str, object]]:
    return list(generate_population(DEVICES, 42, taxonomy))


def _tags(record: dict[str, object]) -> list[dict[str, object]]:
    tags = record["tags"]
    assert isinstance(tags, list)
    return tags


def test_same_seed_same_population(taxonomy: Taxonomy, records: list[dict[str, object]]) -> None:
    again = list(generate_population(200, 42, taxonomy))
    assert again == records[:200]
    other = list(generate_population(200, 43, taxonomy))
    assert [r["id"] for r in other] != [r["id"] for r in again]


def test_record_shape(records: list[dict[str, object]]) -> None:
    for record in records:
        assert list(record) == FIELDS
        assert record["os"] in ("ios", "android")
        assert isinstance(record["price_tier"], int) and 1 <= record["price_tier"] <= 6
        assert isinstance(record["lat"], float) and -90 <= record["lat"] <= 90
        assert isinstance(record["lon"], float) and -180 <= record["lon"] <= 180
    assert records[0] == orjson.loads(orjson.dumps(records[0]))


def test_every_device_has_one_tag_per_base_category(
    taxonomy: Taxonomy, records: list[dict[str, object]]
) -> None:
    for record in records:
        codes = [str(t["tag"]) for t in _tags(record)]
        assert len(codes) == len(set(codes))
        categories = Counter(taxonomy.tag(code).category_code for code in codes)
        for base in ("base.age", "base.gender", "base.income"):
            assert categories[base] == 1, (record["id"], base)


def test_tag_counts_and_scores(taxonomy: Taxonomy, records: list[dict[str, object]]) -> None:
    counts = [len(_tags(r)) for r in records]
    assert 20 <= sum(counts) / len(counts) <= 24
    assert min(counts) >= 8 and max(counts) <= 40
    assert max(counts) - min(counts) >= 15
    for record in records:
        for entry in _tags(record):
            tag = taxonomy.tag(str(entry["tag"]))
            if tag.scored:
                score = entry["score"]
                assert isinstance(score, int) and 0 <= score <= 100
            else:
                assert "score" not in entry


def test_id_mix(records: list[dict[str, object]]) -> None:
    mix = Counter(str(r["id_type"]) for r in records)
    share = {kind: count / len(records) for kind, count in mix.items()}
    assert share["idfa"] == pytest.approx(0.35, abs=0.04)
    assert share["gaid"] == pytest.approx(0.50, abs=0.04)
    assert share["oaid"] == pytest.approx(0.10, abs=0.03)
    assert share["imei"] == pytest.approx(0.05, abs=0.02)
    assert len({r["id"] for r in records}) == len(records)


def test_id_formats(records: list[dict[str, object]]) -> None:
    for record in records:
        device_id, kind = str(record["id"]), record["id_type"]
        if kind == "idfa":
            assert UPPER_UUID.fullmatch(device_id) and record["make"] == "Apple"
        elif kind in ("gaid", "oaid"):
            assert LOWER_UUID.fullmatch(device_id) and record["os"] == "android"
        else:
            assert kind == "imei" and len(device_id) == 15 and luhn_valid(device_id)
        if kind == "oaid":
            assert record["make"] in ("Huawei", "Xiaomi", "OPPO", "vivo")
            assert record["country"] == "CHN"


def test_luhn() -> None:
    # A published example IMEI.
    assert luhn_check_digit("49015420323751") == "8"
    assert luhn_valid("490154203237518")
    assert not luhn_valid("490154203237517")
    assert all(luhn_valid(make_imei(n * 7919)) for n in range(200))


def test_geography(records: list[dict[str, object]]) -> None:
    countries = Counter(str(r["country"]) for r in records)
    assert countries["CHN"] / len(records) > 0.8
    assert {"USA", "GBR", "DEU", "FRA", "JPN"} <= set(countries)
    regions = {str(r["region"]) for r in records if r["country"] == "CHN"}
    assert {"BJ", "SH", "GD", "ZJ", "JS", "SC", "HB", "FJ"} <= regions
    shenzhen = [r for r in records if r["city"] == "Shenzhen"]
    assert shenzhen and all(r["region"] == "GD" for r in shenzhen)
    assert all(abs(float(str(r["lat"])) - 22.54) < 0.5 for r in shenzhen)


def test_correlations(records: list[dict[str, object]]) -> None:
    def share(group: list[dict[str, object]], prefix: str) -> float:
        has = [any(str(t["tag"]).startswith(prefix) for t in _tags(r)) for r in group]
        return sum(has) / len(group)

    def having(code: str) -> list[dict[str, object]]:
        return [r for r in records if any(t["tag"] == code for t in _tags(r))]

    female, male = having("base.gender.female"), having("base.gender.male")
    assert share(female, "interest.beauty") > 2 * share(male, "interest.beauty")
    assert share(male, "interest.automotive") > 1.5 * share(female, "interest.automotive")
    cheap = [r for r in records if r["price_tier"] == 1]
    dear = [r for r in records if r["price_tier"] == 6]
    high_income = ("base.income.20k_50k", "base.income.above_50k")
    assert share(dear, high_income[0]) + share(dear, high_income[1]) > 2 * (
        share(cheap, high_income[0]) + share(cheap, high_income[1])
    )


def test_write_and_read_population(taxonomy: Taxonomy, tmp_path: Path) -> None:
    path = tmp_path / "population.jsonl"
    assert write_population(path, 25, 42, taxonomy) == 25
    lines = path.read_bytes().splitlines()
    assert len(lines) == 25
    assert read_population(path) == list(generate_population(25, 42, taxonomy))


def test_bad_population_files(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id_type": "idfa", "id": "X", "os": "ios"}\n\n[1]\n')
    with pytest.raises(PopulationError, match=":3:"):
        read_population(path)
    with pytest.raises(PopulationError):
        read_population(tmp_path / "missing.jsonl")


def test_negative_size_is_refused(taxonomy: Taxonomy) -> None:
    with pytest.raises(ConfigError):
        list(generate_population(-1, 1, taxonomy))
    assert list(generate_population(0, 1, taxonomy)) == []
