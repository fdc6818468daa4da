"""Merge mode's batch encoding of merged devices writes the reference encoder's bytes."""

from __future__ import annotations

import random

from dmp.ingest_merge import _sections
from dmp.profile_tags import TagEncoder
from tests.dmp.test_ingest_tags import _random_profile


def test_merged_devices_are_encoded_as_the_reference_encoder_does() -> None:
    rng = random.Random(11)
    reference = TagEncoder()
    # a stored profile's entries, then the line's: duplicates, odd and expired days
    devices = [_random_profile(rng, 5000) + _random_profile(rng, 5003) for _ in range(2000)] + [[]]
    assert _sections(devices) == [reference.encode(entries) for entries in devices]


def test_a_batch_of_too_many_expiry_days_is_encoded_one_by_one() -> None:
    devices = [[(1, 100 + day, None), (7, 300, day % 101)] for day in range(70)]
    reference = TagEncoder()
    assert _sections(devices) == [reference.encode(entries) for entries in devices]
