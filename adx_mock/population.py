"""A seeded, reproducible synthetic device population in the DMP ingest JSON Lines format.

One record a device: its ID, handset snapshot, home city and tags, e.g.::

    {"id_type":"idfa","id":"AEBE52E7-...","os":"ios","osv":"17.1","make":"Apple",
     "model":"iPhone15,2","price_tier":5,"country":"CHN","region":"GD","city":"Shenzhen",
     "lat":22.5431,"lon":114.0579,"tags":[{"tag":"base.gender.female"},
     {"tag":"interest.automotive.purchase_intent","score":72}]}

The same ``n``, ``seed`` and taxonomy always give the same records (for one numpy version),
so the simulator can regenerate the population the DMP was loaded with.
"""

from __future__ import annotations

import bisect
import itertools
import math
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import orjson
from tqdm import tqdm

from adx_mock import devices, geo
from adx_mock.errors import ConfigError, PopulationError
from adx_mock.tag_sampler import TagSampler
from dmp.taxonomy import Tag, Taxonomy

# Share of each kind of device ID, in the order of devices.ID_TYPES (idfa, gaid, oaid, imei).
ID_MIX = (0.35, 0.50, 0.10, 0.05)

AGE_WEIGHTS: Mapping[str, float] = {
    "under_18": 0.05,
    "18_24": 0.17,
    "25_34": 0.28,
    "35_44": 0.23,
    "45_54": 0.15,
    "55_64": 0.08,
    "65_plus": 0.04,
}
# Bands of income an age band sits above or below what its handset's price suggests.
AGE_INCOME_SHIFT: Mapping[str, float] = {
    "under_18": -4.0,
    "18_24": -1.5,
    "35_44": 0.5,
    "45_54": 0.5,
    "65_plus": -0.5,
}
FEMALE_SHARE = 0.49
TAGS_MEAN, TAGS_SD, TAGS_MIN, TAGS_MAX = 22.0, 6.0, 8, 40
# Standard deviation of a device's home position around its city centre, in degrees (~5 km).
HOME_SPREAD_DEG = 0.05


class _Builder:
    """What every record draws from, prepared once per population."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.codes = {tag.code: tag for tag in taxonomy.tags}
        self.sampler = TagSampler(taxonomy)
        self.ages = _category(taxonomy, "base.age")
        self.genders = _category(taxonomy, "base.gender")
        self.incomes = _category(taxonomy, "base.income")
        self.price_tiers = _category(taxonomy, "usage.device_price_tier")
        self.age_cum = _cumulative(AGE_WEIGHTS.get(_leaf(tag), 0.1) for tag in self.ages)
        self.id_cum = _cumulative(ID_MIX)
        self.city_cum = _cumulative(city.weight for city in geo.CITIES)
        self.china_cum = _cumulative(c.weight if c.country == "CHN" else 0.0 for c in geo.CITIES)

    def record(self, rng: np.random.Generator) -> dict[str, object]:
        id_type = devices.ID_TYPES[_pick(rng, self.id_cum)]
        models = devices.models_for(id_type)
        model = models[int(rng.integers(len(models)))]
        # OAID and IMEI devices are Chinese-market phones.
        city = geo.CITIES[
            _pick(rng, self.china_cum if id_type in ("oaid", "imei") else self.city_cum)
        ]
        return {
            "id_type": id_type,
            "id": devices.make_device_id(id_type, int.from_bytes(rng.bytes(16), "big")),
            "os": model.os,
            "osv": _os_version(rng, model),
            "make": model.make,
            "model": model.model,
            "price_tier": model.price_tier,
            "country": city.country,
            "region": city.region,
            "city": city.name,
            "lat": round(city.lat + float(rng.normal(0.0, HOME_SPREAD_DEG)), 4),
            "lon": round(city.lon + float(rng.normal(0.0, HOME_SPREAD_DEG)), 4),
            "tags": self.tags(rng, model, city),
        }

    def tags(self, rng: np.random.Generator, model: devices.Model, city: geo.City) -> list[object]:
        age = self.ages[_pick(rng, self.age_cum)]
        gender = self.genders[_gender_index(rng, self.genders)]
        income_index = self._income_index(rng, model.price_tier, age)
        fixed = [age, gender, self.incomes[income_index], *self._derived(model, city)]
        facts = [age.code, gender.code, _income_fact(income_index, len(self.incomes))]
        facts.append("country.CHN" if city.country == "CHN" else "country.abroad")
        wanted = _clamp(round(rng.normal(TAGS_MEAN, TAGS_SD)), TAGS_MIN, TAGS_MAX)
        drawn = self.sampler.draw(rng, facts, max(0, wanted - len(fixed)))
        weighted = [(tag, 1.0) for tag in fixed] + [(d.tag, d.weight) for d in drawn]
        weighted.sort(key=lambda pair: pair[0].id)
        return [_tag_entry(rng, tag, weight) for tag, weight in weighted]

    def _income_index(self, rng: np.random.Generator, price_tier: int, age: Tag) -> int:
        top = len(self.incomes) - 1
        # Pricier handsets go with higher incomes; the noise keeps the link loose.
        centre = (price_tier - 1) / 5 * top + AGE_INCOME_SHIFT.get(_leaf(age), 0.0)
        return _clamp(round(centre + rng.normal(0.0, 1.1)), 0, top)

    def _derived(self, model: devices.Model, city: geo.City) -> list[Tag]:
        found: list[Tag] = []
        brand = self.codes.get(f"usage.device_brand.{model.make.lower()}")
        brand = brand or self.codes.get("usage.device_brand.other")
        if brand is not None:
            found.append(brand)
        if self.price_tiers:
            found.append(self.price_tiers[min(model.price_tier, len(self.price_tiers)) - 1])
        if city.tier is not None and f"social.city_tier.{city.tier}" in self.codes:
            found.append(self.codes[f"social.city_tier.{city.tier}"])
        return found


def _cumulative(weights: Iterable[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def _pick(rng: np.random.Generator, cumulative: Sequence[float]) -> int:
    """A weighted draw: the index whose cumulative weight first exceeds a uniform point."""
    return bisect.bisect_right(cumulative, float(rng.random()) * cumulative[-1])


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def _category(taxonomy: Taxonomy, category: str) -> tuple[Tag, ...]:
    return tuple(sorted((t for t in taxonomy.tags if t.category_code == category), key=_id))


def _id(tag: Tag) -> int:
    return tag.id


def _leaf(tag: Tag) -> str:
    return tag.code.rpartition(".")[2]


def _gender_index(rng: np.random.Generator, genders: Sequence[Tag]) -> int:
    female = next((i for i, t in enumerate(genders) if _leaf(t) == "female"), None)
    if female is not None and rng.random() < FEMALE_SHARE:
        return female
    others = [i for i in range(len(genders)) if i != female]
    return others[int(rng.integers(len(others)))] if others else 0


def _income_fact(index: int, bands: int) -> str:
    if index <= 1:
        return "income.low"
    return "income.high" if index >= bands - 2 else "income.middle"


def _os_version(rng: np.random.Generator, model: devices.Model) -> str:
    versions = devices.IOS_VERSIONS if model.os == "ios" else devices.ANDROID_VERSIONS
    # Most devices run a recent release; cheaper ones lag further behind.
    lag = rng.exponential(1.0) + (6 - model.price_tier) * 0.4
    return versions[_clamp(round(len(versions) - 1 - lag), 0, len(versions) - 1)]


def _tag_entry(rng: np.random.Generator, tag: Tag, weight: float) -> dict[str, object]:
    if not tag.scored:
        return {"tag": tag.code}
    # A tag the device's profile strongly favours tends to carry a higher model score.
    mean = 40.0 + 8.0 * math.log2(max(weight, 1e-6))
    return {"tag": tag.code, "score": _clamp(round(rng.normal(mean, 18.0)), 0, 100)}


def generate_population(n: int, seed: int, taxonomy: Taxonomy) -> Iterator[dict[str, object]]:
    """``n`` device records, the same ones for the same ``seed`` and taxonomy."""
    if n < 0:
        raise ConfigError("devices", f"must be >= 0, got {n}")
    builder = _Builder(taxonomy)
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield builder.record(rng)


def write_population(
    path: Path, n: int, seed: int, taxonomy: Taxonomy, *, progress: bool = False
) -> int:
    """Write ``generate_population(n, seed, taxonomy)`` as JSON Lines; returns the count."""
    count = 0
    records = generate_population(n, seed, taxonomy)
    with (
        path.open("wb") as file,
        tqdm(records, total=n, unit="dev", file=sys.stderr, disable=not progress) as bar,
    ):
        for record in bar:
            file.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
            count += 1
    return count


def read_population(path: Path) -> list[dict[str, object]]:
    """Device records of a JSON Lines population file; raises ``PopulationError``."""
    records: list[dict[str, object]] = []
    try:
        with path.open("rb") as file:
            for number, line in enumerate(file, start=1):
                if line.strip():
                    records.append(_parse_line(str(path), number, line))
    except OSError as exc:
        raise PopulationError(str(path), 0, exc.strerror or str(exc)) from exc
    return records


def _parse_line(source: str, number: int, line: bytes) -> dict[str, object]:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise PopulationError(source, number, f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise PopulationError(source, number, "not a JSON object")
    for field in ("id_type", "id", "os"):
        if not isinstance(record.get(field), str):
            raise PopulationError(source, number, f"missing string field {field!r}")
    return record
