from __future__ import annotations

import random

import numpy as np

from dmp.ingest_tags import Entries, encode_sections
from dmp.profile_tags import MAX_DAY, TagEncoder, header_bits

Profile = list[tuple[int, int, int | None]]


def _batch(profiles: list[Profile]) -> Entries:
    flat = [(row, *entry) for row, profile in enumerate(profiles) for entry in profile]

    def column(index: int) -> np.ndarray[tuple[int], np.dtype[np.int64]]:
        values = [-1 if entry[index] is None else entry[index] for entry in flat]
        return np.array(values, dtype=np.int64)

    return Entries(column(0), column(1), column(2), column(3))


def _random_profile(rng: random.Random, today: int) -> Profile:
    size = rng.choice((0, 1, 2, 5, 24, 24, 24, 40, 200))
    ttls = rng.sample((1, 7, 14, 30, 60, 90, 180, 365, 3, 45, 400), rng.randint(1, 4))
    top = rng.choice((40, 600, 4095))
    profile: Profile = []
    for _ in range(size):
        odd = rng.choice((today - 3, today + 1000, MAX_DAY, MAX_DAY + 9))
        day = today + rng.choice(ttls) if rng.random() < 0.97 else odd
        score = rng.randint(0, 100) if rng.random() < 0.2 else None
        profile.append((rng.randint(0, top), day, score))
    return profile


def test_batch_encoder_writes_the_reference_bytes() -> None:
    rng = random.Random(7)
    reference = TagEncoder()
    for today in (2200, 5000, MAX_DAY - 30):
        profiles = [_random_profile(rng, today) for _ in range(3000)]
        found = encode_sections(_batch(profiles), len(profiles), header_bits)
        assert found is not None
        assert found == [reference.encode(profile) for profile in profiles]


def test_batch_of_devices_without_tags() -> None:
    assert encode_sections(_batch([]), 3, header_bits) == [TagEncoder().encode([])] * 3
    assert encode_sections(_batch([]), 0, header_bits) == []


def test_too_many_expiry_days_are_left_to_the_reference_encoder() -> None:
    profiles: list[Profile] = [[(1, 100 + day, None)] for day in range(70)]
    assert encode_sections(_batch(profiles), len(profiles), header_bits) is None
