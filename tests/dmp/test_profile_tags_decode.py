"""``decode_section`` against the decoder it replaced, kept here as the oracle.

The bit reader must read every section the old '0'/'1' string and regex decoder read, to the
same days, ids and scores, and refuse every other with the same ``ProfileFormatError``:
millions of stored profiles were written for, and checked by, the old one.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Iterator

import pytest

from dmp.profile_tags import (
    DAY_BITS,
    MAX_DAY,
    SCORE_BITS,
    STANDARD_OFFSETS,
    ProfileFormatError,
    TagEncoder,
    decode_section,
)

Decoded = tuple[list[int], list[list[int]], dict[int, int]]
Decoder = Callable[[bytes, int], Decoded]

# --- the old decoder, verbatim but for names (and its regex table built inline): the oracle


def _old_unzigzag(value: int) -> int:
    return value >> 1 if not value & 1 else -(value >> 1) - 1


def _old_exp_golomb_at(bits: str, pos: int, k: int) -> tuple[int, int]:
    one = bits.find("1", pos)
    end = 2 * one - pos + k + 1
    if one < 0 or end > len(bits):
        raise ProfileFormatError("truncated tag section")
    return int(bits[one:end], 2) - (1 << k), end


def _old_fixed_at(bits: str, pos: int, width: int) -> tuple[int, int]:
    end = pos + width
    if end > len(bits):
        raise ProfileFormatError("truncated tag section")
    return int(bits[pos:end], 2), end


def _old_days_at(bits: str) -> tuple[list[int], int]:
    base, pos = _old_fixed_at(bits, 0, DAY_BITS)
    flags, pos = _old_fixed_at(bits, pos, 8)
    days = [base + o for i, o in enumerate(STANDARD_OFFSETS) if flags & (0x80 >> i)]
    others, pos = _old_exp_golomb_at(bits, pos, 0)
    for _ in range(others):
        offset, pos = _old_exp_golomb_at(bits, pos, 0)
        days.append(base + _old_unzigzag(offset))
    days.sort()
    return days, pos


_OLD_ZEROS = 14
_OLD_ID_CODES = tuple(
    re.compile("|".join(f"0{{{z}}}1[01]{{{z + k}}}" for z in range(_OLD_ZEROS))) for k in range(8)
)


def _old_ids_at(bits: str, pos: int, k: int, counts: list[int]) -> list[list[int]]:
    codes = _OLD_ID_CODES[k].findall(bits, pos)
    if len(codes) != sum(counts) or not 0 <= len(bits) - pos - sum(map(len, codes)) < 8:
        raise ProfileFormatError("malformed tag ids")
    offset = (1 << k) - 1
    gaps = [int(code, 2) - offset for code in codes]
    groups: list[list[int]] = []
    start = 0
    for count in counts:
        ids = list(itertools.accumulate(gaps[start : start + count], initial=-1))
        del ids[0]
        groups.append(ids)
        start += count
    return groups


def _old_scores_at(bits: str, pos: int, total: int) -> tuple[dict[int, int], int]:
    count, pos = _old_exp_golomb_at(bits, pos, 0)
    width = max(1, (total - 1).bit_length())
    scores: dict[int, int] = {}
    for _ in range(count):
        position, pos = _old_fixed_at(bits, pos, width)
        scores[position], pos = _old_fixed_at(bits, pos, SCORE_BITS)
    if any(position >= total for position in scores):
        raise ProfileFormatError("score of a tag that is not there")
    return scores, pos


def _old_decode_section(data: bytes, start: int) -> Decoded:
    size = len(data) - start
    if size <= 0:
        raise ProfileFormatError("no tag section")
    bits = format(int.from_bytes(data[start:], "big"), f"0{size * 8}b")
    days, pos = _old_days_at(bits)
    k, pos = _old_fixed_at(bits, pos, 3)
    counts: list[int] = []
    for _ in days:
        count, pos = _old_exp_golomb_at(bits, pos, 0)
        counts.append(count + 1)
    scores, pos = _old_scores_at(bits, pos, sum(counts))
    return days, _old_ids_at(bits, pos, k, counts), scores


# --- comparison --------------------------------------------------------------------------


def _outcome(decoder: Decoder, data: bytes, start: int) -> tuple[object, ...]:
    try:
        days, groups, scores = decoder(data, start)
    except ProfileFormatError as error:
        return ("error", str(error))
    return ("ok", days, groups, list(scores.items()))  # items: the same order too


def _compare(cases: Iterator[tuple[bytes, int]]) -> dict[str, int]:
    """Asserts that both decoders agree on every case; how often each outcome came up."""
    seen: dict[str, int] = {}
    for data, start in cases:
        old = _outcome(_old_decode_section, data, start)
        new = _outcome(decode_section, data, start)
        assert new == old, f"section {data[start:].hex()} (start {start}): {new} != {old}"
        key = "ok" if old[0] == "ok" else str(old[1])
        seen[key] = seen.get(key, 0) + 1
    return seen


# --- cases -------------------------------------------------------------------------------


def _random_entries(rng: random.Random) -> list[tuple[int, int, int | None]]:
    base = rng.randrange(0, MAX_DAY + 1)
    days = [base + rng.choice(STANDARD_OFFSETS) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.4:  # the odd days of merged loads, clamped ones included
        days += [base + rng.randrange(-400, 400) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.05:
        days.append(rng.choice([-5, MAX_DAY + 10]))
    size = rng.choice([0, 1, 2, rng.randint(3, 40), rng.randint(40, 300)])
    pool = range(4096) if rng.random() < 0.7 else range(rng.randrange(1, 4096))
    ids = rng.sample(pool, min(size, len(pool)))
    scored = rng.random() < 0.5
    return [
        (
            tag,
            # The first on a day after 2020-01-01: TagEncoder finds no base day for day 0 alone.
            days[0] if n == 0 else rng.choice(days),
            rng.randrange(-10, 120) if scored and rng.random() < 0.3 else None,
        )
        for n, tag in enumerate(ids)
    ]


def _sections(rng: random.Random, count: int) -> list[bytes]:
    encoder = TagEncoder()
    return [encoder.encode(_random_entries(rng)) for _ in range(count)]


def _exp_golomb(value: int, k: int) -> str:
    word = value + (1 << k)
    return "0" * (word.bit_length() - k - 1) + format(word, "b")


def _crafted(rng: random.Random) -> bytes:
    """A section built bit by bit near the format's edges: odd and huge fields, id codes with
    too many leading zeros, stray bits before and in the padding."""
    huge = [2**40, 2**55 + 1, 2**57, 2**60 - 1, 2**70 + 3]  # past 54 bits: a wider read
    zigzags = [rng.choice([0, 1, 5, 700, *huge]) for _ in range(rng.choice([0, 1, 2]))]
    flags = rng.choice([0, 0x80, 0x41, rng.randrange(256)])
    days = bin(flags).count("1") + len(zigzags)
    k = rng.randrange(8)
    counts = [rng.choice([0, 0, 1, 3, rng.randrange(20)]) for _ in range(days)]
    if days and rng.random() < 0.05:
        counts[0] = rng.choice([2**20, 2**66])
    total = sum(c + 1 for c in counts)
    width = max(1, (total - 1).bit_length())
    scores = [
        (rng.randrange(total + 2), rng.randrange(128)) for _ in range(rng.choice([0, 0, 1, 3]))
    ]
    parts = [format(rng.randrange(1 << DAY_BITS), f"0{DAY_BITS}b"), format(flags, "08b")]
    parts += [_exp_golomb(len(zigzags), 0), *(_exp_golomb(z, 0) for z in zigzags)]
    parts += [format(k, "03b"), *(_exp_golomb(c, 0) for c in counts)]
    parts += [_exp_golomb(len(scores), 0)]
    parts += [format(p, f"0{width}b")[-width:] + format(s, "07b") for p, s in scores]
    for _ in range(min(total, 500) + rng.choice([0, 0, 0, -1, 1])):
        if rng.random() < 0.05:  # more leading zeros than an id under 4096 has
            zeros = rng.randrange(12, 24)
            parts.append("0" * zeros + "1" + format(rng.getrandbits(zeros + k), f"0{zeros + k}b"))
        else:
            parts.append(_exp_golomb(rng.choice([0, 1, rng.randrange(4096)]), k))
        if rng.random() < 0.03:
            parts.append(rng.choice("01"))
    tail = rng.choice(["", "", "0" * rng.randrange(16), format(rng.getrandbits(8), "08b")])
    bits = "".join(parts) + tail[: rng.randrange(len(tail) + 1)]
    padding = -len(bits) % 8
    bits += rng.choice(["0" * padding, format(rng.getrandbits(8), "08b")[:padding]])
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


def _flip(rng: random.Random, section: bytes) -> bytes:
    bits = int.from_bytes(section, "big")
    for _ in range(rng.randint(1, 3)):
        bits ^= 1 << rng.randrange(len(section) * 8)
    return bits.to_bytes(len(section), "big")


def _framed(rng: random.Random, section: bytes) -> tuple[bytes, int]:
    """The section behind a few bytes, as in a profile blob, or alone."""
    prefix = rng.randbytes(rng.choice([0, 1, 17]))
    return prefix + section, len(prefix)


# --- tests -------------------------------------------------------------------------------


def test_encoded_sections_decode_as_before() -> None:
    rng = random.Random(1)
    seen = _compare(_framed(rng, section) for section in _sections(rng, 3000))
    assert seen == {"ok": 3000}


def test_truncated_sections_fail_as_before() -> None:
    rng = random.Random(2)
    sections = _sections(rng, 150)
    seen = _compare(
        _framed(rng, section[:size]) for section in sections for size in range(len(section) + 1)
    )
    assert {"no tag section", "truncated tag section", "malformed tag ids"} <= seen.keys()


def test_sections_with_flipped_bits_decode_or_fail_as_before() -> None:
    rng = random.Random(3)
    sections = _sections(rng, 500)
    seen = _compare(_framed(rng, _flip(rng, rng.choice(sections))) for _ in range(12_000))
    assert seen.keys() == {
        "ok",
        "truncated tag section",
        "malformed tag ids",
        "score of a tag that is not there",
    }


def test_random_bytes_decode_or_fail_as_before() -> None:
    rng = random.Random(4)
    seen = _compare(_framed(rng, rng.randbytes(rng.randrange(40))) for _ in range(10_000))
    assert {"no tag section", "truncated tag section", "malformed tag ids"} <= seen.keys()


def test_crafted_sections_decode_or_fail_as_before() -> None:
    rng = random.Random(5)
    seen = _compare(_framed(rng, _crafted(rng)) for _ in range(12_000))
    assert seen.keys() == {"ok", "malformed tag ids", "score of a tag that is not there"}
    assert seen["ok"] > 2000


def test_huge_day_offsets_at_every_bit_position_decode_as_before() -> None:
    """Day offsets of 50 to 65 bits, as only a corrupt section has, starting at every bit of
    a 64-bit word: fields a single read of the reader's word can or cannot hold."""

    def section(before: int, zigzag: int) -> tuple[bytes, int]:
        """The section, and the byte where the wide offset ends."""
        days = before + 2  # ``before`` one-bit days first move the wide one along
        bits = format(1000, f"0{DAY_BITS}b") + "00000000" + _exp_golomb(days, 0)
        bits += "1" * before + _exp_golomb(zigzag, 0)
        end = (len(bits) + 7) // 8
        bits += _exp_golomb(3, 0) + "000" + "1" * days + "1" + "1" * days  # k 0, a tag a day
        bits += "0" * (-len(bits) % 8)
        return int(bits, 2).to_bytes(len(bits) // 8, "big"), end

    wide = [2**50, 2**53 - 1, 2**54, 2**55 + 1, 2**56 - 1, 2**57, 2**60, 2**63 + 1, 2**64]
    sections = [section(before, zigzag) for before in range(64) for zigzag in wide]
    assert _compare((data, 0) for data, _ in sections) == {"ok": len(sections)}
    # Cut short inside the wide offset, at any of its last bits: truncated.
    seen = _compare((data[:size], 0) for data, end in sections for size in range(end - 9, end))
    assert seen == {"truncated tag section": len(sections) * 9}


def test_start_past_the_end_is_no_section() -> None:
    for data, start in [(b"", 0), (b"\x01\x02", 2), (b"\x01\x02", 5)]:
        assert _outcome(decode_section, data, start) == ("error", "no tag section")


def test_negative_start_is_refused() -> None:
    with pytest.raises(ValueError, match="negative start"):
        decode_section(bytes(8), -1)
