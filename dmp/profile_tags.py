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
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final, final

from dmp.errors import DmpError

if TYPE_CHECKING:  # mypy_extensions comes with mypy, not a runtime dependency
    from mypy_extensions import i64  # a C int64 compiled by mypyc, int interpreted

DAY_BITS: Final = 14
MAX_DAY: Final = (1 << DAY_BITS) - 1  # 2064-11-09: expiries later than this are clamped
STANDARD_OFFSETS: Final = (1, 7, 14, 30, 60, 90, 180, 365)
SCORE_BITS: Final = 7
MAX_K: Final = 7
_TABLE_SIZE: Final = 4096  # every tag id (taxonomy.MAX_TAG_ID) has a precomputed code


class ProfileFormatError(DmpError):
    """Bytes that are not a profile of a known version (or a truncated one)."""


def _exp_golomb(value: int, k: int) -> str:
    word = value + (1 << k)
    return "0" * (word.bit_length() - k - 1) + format(word, "b")


# Code strings by order and value: encoding a profile is then a join of table lookups.
_CODES: Final = tuple(
    tuple(_exp_golomb(v, k) for v in range(_TABLE_SIZE)) for k in range(MAX_K + 1)
)


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


# Decoding runs on every bid, compiled by mypyc (infra/compiled.py): there a reader of native
# 64-bit words, each byte loaded once, is several times faster than slicing a '0'/'1' string.
_READ: Final = 54  # the widest read of a loaded word (_BitReader.read)
# Ids under 2**12 have codes of at most 12 leading zeros; the reader before this one took 13,
# and left up to 7 bits (a byte's padding) unmatched anywhere among the ids (_skip_to_code).
_MAX_ZEROS: Final = 13
_MAX_PADDING: Final = 7


@final
class _BitReader:
    """The bits of a tag section, MSB first, read through a word of at most 61 bits."""

    __slots__ = ("_data", "_next", "_end", "_word", "_held")

    def __init__(self, data: bytes, start: i64) -> None:
        self._data = data
        self._next: i64 = start  # the next byte to load
        self._end: i64 = len(data)
        self._word: i64 = 0  # the loaded bits not read yet, in its low ``_held`` bits
        self._held: i64 = 0

    def left(self) -> int:
        # int, not i64: compared with fields a corrupt section can make any size, and mypyc
        # would convert those to i64 (and overflow) for a comparison with an i64.
        return (self._end - self._next) * 8 + self._held

    def _load(self) -> None:
        # Up to 61 bits: a word under 2**62 is a small int to mypyc (bit_length's fast path),
        # and a read of up to _READ bits needs one load at most.
        word, held, at = self._word, self._held, self._next
        while held < _READ and at < self._end:
            word = word << 8 | self._data[at]
            at += 1
            held += 8
        self._word, self._held, self._next = word, held, at

    def read(self, width: i64) -> i64:
        """The next ``width`` bits; ``width`` at most ``_READ`` (``read_wide`` takes any)."""
        if self._held < width:
            self._load()
            if self._held < width:
                raise ProfileFormatError("truncated tag section")
        self._held -= width
        value = self._word >> self._held
        self._word ^= value << self._held
        return value

    def read_wide(self, width: int) -> int:
        """The next ``width`` bits, however many: a corrupt section can claim huge fields."""
        if width <= _READ:
            return self.read(width)
        if width > self.left():
            raise ProfileFormatError("truncated tag section")
        if width <= self._held:
            return self.read(width)
        # The held bits, then whole bytes at once: linear in the width, unlike word by word.
        width -= self._held
        size = (width + 7) // 8
        value = int.from_bytes(self._data[self._next : self._next + size], "big")
        spare = size * 8 - width
        high = int(self._word) << width | value >> spare
        self._next += size
        self._word = value & ((1 << spare) - 1)
        self._held = spare
        return high

    def zeros(self) -> i64:
        """Reads the zero bits before the next one bit (left unread) and counts them; -1 when
        no one bit is left."""
        count: i64 = 0
        while self._word == 0:
            count += self._held
            self._held = 0
            if self._next == self._end:
                return -1
            self._load()
        ones: i64 = int(self._word).bit_length()  # int(): the i64 stub has no bit_length
        count += self._held - ones
        self._held = ones
        return count

    def exp_golomb(self, k: int) -> int:
        zeros = self.zeros()
        if zeros < 0:
            raise ProfileFormatError("truncated tag section")
        return self.read_wide(zeros + k + 1) - (1 << k)

    def id_groups(self, k: i64, counts: list[int], total: int) -> list[list[int]]:
        """The ids, ``counts`` of them a group, that close the section: their codes of order
        ``k`` must tile the rest but for under 8 bits of padding, where no code starts."""
        if total > self.left():  # a code takes a bit at least
            raise ProfileFormatError("malformed tag ids")
        # Most of a section, read on every bid: the reader's state stays in locals here,
        # which took about a fifth off a section's time compiled (a method call per id did
        # not), and a tenth or more interpreted.
        data, end = self._data, self._end
        word, held, at = self._word, self._held, self._next
        offset = (1 << k) - 1
        padding: i64 = 0
        groups: list[list[int]] = []
        for count in counts:
            ids: list[int] = []
            tag: i64 = -1
            for _ in range(count):
                while held < _READ and at < end:
                    word = word << 8 | data[at]
                    at += 1
                    held += 8
                ones: i64 = int(word).bit_length()
                zeros = held - ones
                rest = ones - zeros - k - 1  # the bits held after the code
                if zeros <= _MAX_ZEROS and rest >= 0:
                    code = word >> rest
                    word ^= code << rest
                    held = rest
                else:
                    self._word, self._held, self._next = word, held, at
                    code, padding = self._skip_to_code(k, padding)
                    word, held, at = self._word, self._held, self._next
                tag += code - offset
                ids.append(tag)
            groups.append(ids)
        self._word, self._held, self._next = word, held, at
        rest = self.left()
        # A code in the padding would be an id too many.
        if padding + rest > _MAX_PADDING or self.read(rest) >> k:
            raise ProfileFormatError("malformed tag ids")
        return groups

    def _skip_to_code(self, k: i64, padding: i64) -> tuple[i64, i64]:
        """The next id code, which has more than _MAX_ZEROS leading zeros or runs past the
        end, and the padding bits so far.

        Sections were read with a regular expression (a code: z < 14 zeros, a one, z + k bits)
        whose ``findall`` skipped what did not match, and up to _MAX_PADDING bits went unmatched:
        this skips the same bits, so every section read before reads the same now.
        """
        zeros = self.zeros()
        while True:
            if zeros < 0:
                raise ProfileFormatError("malformed tag ids")
            if zeros > _MAX_ZEROS:
                padding += zeros - _MAX_ZEROS
                zeros = _MAX_ZEROS
            if padding > _MAX_PADDING:
                raise ProfileFormatError("malformed tag ids")
            if zeros + k + 1 <= self.left():
                return self.read(zeros + k + 1), padding
            padding += 1
            if zeros:
                zeros -= 1
            else:
                self.read(1)
                zeros = self.zeros()


def _days_at(bits: _BitReader) -> list[int]:
    base: int = bits.read(DAY_BITS)  # int: a corrupt section can hold days beyond 64 bits
    flags = bits.read(8)
    days: list[int] = [base + o for i, o in enumerate(STANDARD_OFFSETS) if flags & (0x80 >> i)]
    others = bits.exp_golomb(0)
    # Each day takes a bit at least: a corrupt count beyond the bits left is a truncation.
    if others > bits.left():
        raise ProfileFormatError("truncated tag section")
    for _ in range(others):
        days.append(base + _unzigzag(bits.exp_golomb(0)))
    days.sort()
    return days


def _scores_at(bits: _BitReader, total: int) -> dict[int, int]:
    count = bits.exp_golomb(0)
    width = max(1, (total - 1).bit_length())
    if count * (width + SCORE_BITS) > bits.left():
        raise ProfileFormatError("truncated tag section")
    scores: dict[int, int] = {}
    for _ in range(count):
        position = bits.read_wide(width)
        scores[position] = bits.read(SCORE_BITS)
    if any(position >= total for position in scores):
        raise ProfileFormatError("score of a tag that is not there")
    return scores


def decode_section(data: bytes, start: int) -> tuple[list[int], list[list[int]], dict[int, int]]:
    """Expiry days (ascending), the ids of each day, and scores by position among all ids."""
    if start < 0:
        raise ValueError(f"negative start {start}")
    if len(data) <= start:
        raise ProfileFormatError("no tag section")
    bits = _BitReader(data, start)
    days = _days_at(bits)
    k = bits.read(3)
    counts = [bits.exp_golomb(0) + 1 for _ in days]
    total = sum(counts)
    scores = _scores_at(bits, total)
    return days, bits.id_groups(k, counts, total), scores
