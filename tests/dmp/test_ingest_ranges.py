"""Byte ranges that worker processes read: every line in exactly one range, whole."""

from __future__ import annotations

import io
import random

import pytest

from dmp.ingest_ranges import ByteRange, byte_ranges, read_range


def _file(rng: random.Random) -> bytes:
    lines = [b"x" * rng.choice([0, 1, 5, 40, 700, 9000]) + b"\n" for _ in range(rng.randint(0, 60))]
    text = b"".join(lines)
    return text + (b"tail without newline" if rng.random() < 0.5 else b"")


@pytest.mark.parametrize("seed", range(40))
def test_ranges_cover_every_line_once_and_whole(seed: int) -> None:
    rng = random.Random(seed)
    text = _file(rng)
    first = rng.choice([0, 0, text.find(b"\n") + 1])
    step = rng.choice([1, 2, 3, 7, 64, 1000, 10**6])
    file = io.BytesIO(text)
    parts = [read_range(file, span) for span in byte_ranges(first, len(text), step)]
    assert b"".join(parts) == text[first:]
    filled = [part for part in parts if part]
    assert all(part.endswith(b"\n") for part in filled[:-1])


def test_a_range_inside_one_long_line_is_empty() -> None:
    file = io.BytesIO(b"a\n" + b"y" * 100 + b"\nb\n")
    assert read_range(file, ByteRange(10, 20)) == b""
    assert read_range(file, ByteRange(1, 10)) == b"y" * 100 + b"\n"
    assert read_range(file, ByteRange(102, 104)) == b"b\n"
