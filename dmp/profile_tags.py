"""The tag section of a profile blob: tag ids, expiry days and scores as one bit stream.

Bytes per device decide how many devices a Redis holds, and 24 tags are most of a profile,
so the section is packed to a few bits a tag (about 29 bytes for 24 tags, against 60 for a
byte-aligned varint layout). Read MSB first, padded with zero bits to a whole byte:

    14 bits  base day B (days since 2020-01-01)
     8 bits  which standard expiries B + 1, 7, 14, 30, 60, 90, 180, 365 days hold tags
    EG0      number of other expiry days, then each as EG0(zigzag(day - B))
     3 bits  k, the order of the Exp-Golomb codes of the tag ids
    EG0      per expiry day, earliest first: its number of tags - 1
    EG0      number of scored tags, then each as its position among the tags (fixed width)
             and a 7-bit score
    EG(k)    per expiry day, earliest first: the first id, then each (id - previous id - 1)

Tags loaded together share their taxonomy TTLs, so the expiry days of a fresh load cost the
base day and one byte of flags; after merges of several loads the odd days take a few bits
more each. Ids grouped by expiry day are dense enough within a group for Exp-Golomb gaps.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

from dmp.errors import DmpError

DAY_BITS = 14
MAX_DAY = (1 << DAY_BITS) - 1  # 2064-11-09: expiries later than this are clamped
STANDARD_OFFSETS = (1, 7, 14, 30, 60, 90, 180, 365)
SCORE_BITS = 7
MAX_K = 7
_TABLE_SIZE = 4096  # every tag id (taxonomy.MAX_TAG_ID) has a precomputed code


class ProfileFormatError(DmpError):
    """Bytes that are not a profile of a known version (or a truncated one)."""


def _exp_golomb(value: int, k: int) -> str:
    word = value + (1 << k)
    return "0" * (word.bit_length() - k - 1) + format(word, "b")


# Code strings by order and value: encoding a profile is then a join of table lookups.
_CODES = tuple(tuple(_exp_golomb(v, k) for v in range(_TABLE_SIZE)) for k in range(MAX_K + 1))


def _code(value: int, k: int) -> str:
    return _CODES[k][value] if value < _TABLE_SIZE else _exp_golomb(value, k)


def _zigzag(value: int) -> int:
    return value * 2 if value >= 0 else -value * 2 - 1


def _unzigzag(value: int) -> int:
    return value >> 1 if not value & 1 else -(value >> 1) - 1


def _header(days: tuple[int, ...]) -> str:
    """Base day, standard-expiry flags and the other days, for ascending ``days``."""
    counts: dict[int, int] = {}
    for day in days:
        for offset in STANDARD_OFFSETS:
            counts[day - offset] = counts.get(day - offset, 0) + 1
    # The base covering most days; the latest of equals, which keeps it a recent load day.
    base = max((n, b) for b, n in counts.items() if 0 <= b <= MAX_DAY)[1] if counts else 0
    flags = 0
    others: list[int] = []
    for day in days:
        offset = day - base
        if offset in STANDARD_OFFSETS:
            flags |= 0x80 >> STANDARD_OFFSETS.index(offset)
        else:
            others.append(offset)
    parts = [format(base, f"0{DAY_BITS}b"), format(flags, "08b"), _code(len(others), 0)]
    parts += [_code(_zigzag(offset), 0) for offset in others]
    return "".join(parts)


def header_bits(days: tuple[int, ...]) -> str:
    """The header bits (base day, flags, other days) of ascending expiry ``days``.

    For batch encoders (``dmp.ingest_tags``), which must write the same bits as ``TagEncoder``.
    """
    return _header(days)


def _order(values: list[int]) -> int:
    # Exp-Golomb of order k suits values around 2**k: the median gap is a cheap, close guess.
    middle = sorted(values)[len(values) // 2] if values else 0
    return min(MAX_K, max(0, middle.bit_length() - 1))


class TagEncoder:
    """Encodes tag sections; keeps the headers of the expiry-day sets it has seen.

    A file loaded in one run yields a handful of such sets, so the cache is nearly always hit.
    """

    __slots__ = ("_headers",)
    _CACHE_SIZE = 10_000

    def __init__(self) -> None:
        self._headers: dict[tuple[int, ...], str] = {}

    def encode(self, entries: Iterable[tuple[int, int, int | None]]) -> bytes:
        """``(tag id, expiry day, score or None)`` entries as a tag section.

        A tag given twice keeps its later expiry (the later entry among equals).
        """
        latest: dict[int, tuple[int, int | None]] = {}
        for tag_id, day, score in entries:
            kept = latest.get(tag_id)
            if kept is None or day >= kept[0]:
                latest[tag_id] = (day, score)
        groups: dict[int, list[int]] = {}
        for tag_id, (day, _) in latest.items():
            if not 0 <= day <= MAX_DAY:
                day = 0 if day < 0 else MAX_DAY
            groups.setdefault(day, []).append(tag_id)
        days = tuple(sorted(groups))
        header = self._headers.get(days)
        if header is None:
            if len(self._headers) >= self._CACHE_SIZE:
                self._headers.clear()
            header = self._headers[days] = _header(days)
        return _pack(header, [sorted(groups[day]) for day in days], latest)


def _pack(header: str, groups: list[list[int]], latest: dict[int, tuple[int, int | None]]) -> bytes:
    values: list[int] = []
    for ids in groups:
        values.append(ids[0])
        values += [b - a - 1 for a, b in itertools.pairwise(ids)]
    k = _order(values)
    counts = _CODES[0]
    parts = [header, format(k, "03b"), *[counts[len(ids) - 1] for ids in groups]]
    parts.append(_scores(groups, latest, len(values)))
    codes = _CODES[k]
    if values and max(values) >= _TABLE_SIZE:
        parts += [_code(v, k) for v in values]
    else:
        parts += [codes[v] for v in values]
    return _to_bytes("".join(parts))


def _scores(groups: list[list[int]], latest: dict[int, tuple[int, int | None]], total: int) -> str:
    width = max(1, (total - 1).bit_length())
    scored = [
        format(position, f"0{width}b") + format(max(0, min(100, score)), "07b")
        for position, tag_id in enumerate(itertools.chain.from_iterable(groups))
        if (score := latest[tag_id][1]) is not None
    ]
    return _CODES[0][len(scored)] + "".join(scored)


def _to_bytes(bits: str) -> bytes:
    size = (len(bits) + 7) // 8
    return int(bits.ljust(size * 8, "0"), 2).to_bytes(size, "big")


def _exp_golomb_at(bits: str, pos: int, k: int) -> tuple[int, int]:
    one = bits.find("1", pos)
    end = 2 * one - pos + k + 1
    if one < 0 or end > len(bits):
        raise ProfileFormatError("truncated tag section")
    return int(bits[one:end], 2) - (1 << k), end


def _fixed_at(bits: str, pos: int, width: int) -> tuple[int, int]:
    end = pos + width
    if end > len(bits):
        raise ProfileFormatError("truncated tag section")
    return int(bits[pos:end], 2), end


def _days_at(bits: str) -> tuple[list[int], int]:
    base, pos = _fixed_at(bits, 0, DAY_BITS)
    flags, pos = _fixed_at(bits, pos, 8)
    days = [base + o for i, o in enumerate(STANDARD_OFFSETS) if flags & (0x80 >> i)]
    others, pos = _exp_golomb_at(bits, pos, 0)
    for _ in range(others):
        offset, pos = _exp_golomb_at(bits, pos, 0)
        days.append(base + _unzigzag(offset))
    days.sort()
    return days, pos


def _id_code(k: int) -> re.Pattern[str]:
    # An Exp-Golomb code is z zeros, a one and z + k more bits; ids stay under 2**12.
    return re.compile("|".join(f"0{{{z}}}1[01]{{{z + k}}}" for z in range(_ZEROS)))


_ZEROS = 14
# The ids close the section so that one findall per order k reads them all at C speed:
# decode runs on every bid.
_ID_CODES = tuple(_id_code(k) for k in range(MAX_K + 1))


def _ids_at(bits: str, pos: int, k: int, counts: list[int]) -> list[list[int]]:
    codes = _ID_CODES[k].findall(bits, pos)
    # findall skips what does not match: the codes must tile the rest but for the padding.
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


def _scores_at(bits: str, pos: int, total: int) -> tuple[dict[int, int], int]:
    count, pos = _exp_golomb_at(bits, pos, 0)
    width = max(1, (total - 1).bit_length())
    scores: dict[int, int] = {}
    for _ in range(count):
        position, pos = _fixed_at(bits, pos, width)
        scores[position], pos = _fixed_at(bits, pos, SCORE_BITS)
    if any(position >= total for position in scores):
        raise ProfileFormatError("score of a tag that is not there")
    return scores, pos


def decode_section(data: bytes, start: int) -> tuple[list[int], list[list[int]], dict[int, int]]:
    """Expiry days (ascending), the ids of each day, and scores by position among all ids."""
    size = len(data) - start
    if size <= 0:
        raise ProfileFormatError("no tag section")
    bits = format(int.from_bytes(data[start:], "big"), f"0{size * 8}b")
    days, pos = _days_at(bits)
    k, pos = _fixed_at(bits, pos, 3)
    counts: list[int] = []
    for _ in days:
        count, pos = _exp_golomb_at(bits, pos, 0)
        counts.append(count + 1)
    scores, pos = _scores_at(bits, pos, sum(counts))
    return days, _ids_at(bits, pos, k, counts), scores
