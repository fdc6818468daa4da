"""Tag sections of many devices at once, with numpy: the bytes ``TagEncoder.encode`` makes.

A bulk load encodes hundreds of thousands of sections; the reference encoder costs some
17 µs each in Python. Here a batch's entries are sorted, deduplicated and turned into
Exp-Golomb codes as arrays, and every code (a piece of at most 25 bits) is added into one
byte buffer at its bit offset: pieces never overlap, so adding is writing. The layout is the
one ``dmp.profile_tags`` documents; a test holds the two encoders to the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dmp.profile_tags import MAX_DAY, MAX_K, SCORE_BITS

Ints = npt.NDArray[np.int64]
HeaderOf = Callable[[tuple[int, ...]], str]
_PIECE_BITS = 24  # header bits are cut into pieces this long (codes stay within 32-bit words)
_MAX_DAYS = 62  # distinct expiry days a batch may hold: each is a bit of a per-device mask
MAX_TAGS = 1024  # more per device and a score position could outgrow a piece
_ID_BITS = 12  # tag ids are below 4096 (taxonomy.MAX_TAG_ID)
_ID_MASK = (1 << _ID_BITS) - 1
# Bit lengths of 0 .. 2**MAX_K, for ``_order``.
_SMALL_BIT_LENGTH = np.array([v.bit_length() for v in range((1 << MAX_K) + 1)], dtype=np.int64)


@dataclass(frozen=True, slots=True)
class Entries:
    """A batch's tag entries, grouped by device (``rows`` ascending, file order within)."""

    rows: Ints
    tag_ids: Ints
    days: Ints
    scores: Ints  # -1: no score


def _bit_length(values: Ints) -> Ints:
    # frexp's exponent is the bit length for the non-negative integers below 2**53.
    return np.frexp(values.astype(np.float64))[1].astype(np.int64)


def _exclusive(values: Ints) -> Ints:
    out = np.zeros(len(values), dtype=np.int64)
    np.cumsum(values[:-1], out=out[1:])
    return out


def _per_row(rows: Ints, values: Ints, n_rows: int) -> Ints:
    return np.bincount(rows, weights=values, minlength=n_rows).astype(np.int64)


class _Pieces:
    """Codes of a batch as (row, value, bit length), laid out section after section."""

    def __init__(self, n_rows: int) -> None:
        self.n_rows = n_rows
        self.used = np.zeros(n_rows, dtype=np.int64)  # bits of each row laid out so far
        self._parts: list[tuple[Ints, Ints, Ints, Ints]] = []

    def add(self, rows: Ints, values: Ints, lengths: Ints) -> None:
        """Pieces following the row's earlier ones; ``rows`` ascending, row order within."""
        within = _exclusive(lengths)
        sums = _per_row(rows, lengths, self.n_rows)
        within -= _exclusive(sums)[rows]
        self._parts.append((rows, values, lengths, within + self.used[rows]))
        self.used += sums

    def add_rows(self, values: Ints, lengths: Ints) -> None:
        """One piece for every row."""
        self.add(np.arange(self.n_rows, dtype=np.int64), values, lengths)

    def pack(self) -> list[bytes]:
        # Rows start on 32-bit words here, then are cut to whole bytes. A piece (at most 25
        # bits) spans at most two words; the parts of a word are disjoint bits below 2**32,
        # so a float64 bincount sums them exactly, much faster than a scatter ufunc.at.
        sizes = (self.used + 7) // 8
        word_starts = _exclusive((self.used + 31) // 32)
        rows = np.concatenate([p[0] for p in self._parts])
        values = np.concatenate([p[1] for p in self._parts])
        offsets = np.concatenate([p[3] for p in self._parts])
        ends = (offsets & 31) + np.concatenate([p[2] for p in self._parts])
        index = word_starts[rows] + (offsets >> 5)
        over = ends > 32
        high = np.where(
            over, values >> np.maximum(ends - 32, 0), values << np.maximum(32 - ends, 0)
        )
        low = (values[over] << (64 - ends[over])) & 0xFFFFFFFF
        total = int(word_starts[-1] + (self.used[-1] + 31) // 32)
        words = np.bincount(
            np.concatenate([index, index[over] + 1]),
            weights=np.concatenate([high, low]).astype(np.float64),
            minlength=total,
        )
        data = words.astype(np.uint32).byteswap().tobytes()
        starts = (word_starts * 4).tolist()
        return [data[at : at + size] for at, size in zip(starts, sizes.tolist(), strict=True)]


def _latest(entries: Entries) -> Entries:
    """One entry per (device, tag): the latest expiry, the later entry among equals."""
    rows, ids, days = entries.rows, entries.tag_ids, entries.days
    order = np.lexsort((np.arange(len(rows)), days, ids, rows))
    r, i = rows[order], ids[order]
    last = np.ones(len(r), dtype=bool)
    last[:-1] = (r[1:] != r[:-1]) | (i[1:] != i[:-1])
    keep = np.sort(order[last])
    return Entries(rows[keep], ids[keep], days[keep], entries.scores[keep])


def _repeats(rows: Ints, ids: Ints) -> bool:
    """Whether a device holds a tag id twice: one bit per (device, id), counted."""
    words = np.zeros((int(rows[-1]) + 1) << (_ID_BITS - 6), dtype=np.uint64)
    bits = np.left_shift(np.uint64(1), (ids & 63).astype(np.uint64))
    np.bitwise_or.at(words, (rows << (_ID_BITS - 6)) | (ids >> 6), bits)
    return int(np.bitwise_count(words).sum()) != len(ids)


def _kept(entries: Entries) -> Entries:
    """Deduplicated (``_latest``), clamped and sorted by device, expiry day and id.

    One sort of packed 64-bit keys (device, day, id, score) does it.
    days span more than 16 bits.
    """
    rows, ids = entries.rows, entries.tag_ids
    if len(rows) == 0:
        return entries
    if _repeats(rows, ids):  # a tag given twice to a device: rare
        entries = _latest(entries)
        rows, ids = entries.rows, entries.tag_ids
    days = np.clip(entries.days, 0, MAX_DAY)
    low = int(days.min())
    # Rows come ascending, so the keys are runs of a device's few entries: a stable sort
    # (timsort, galloping over those runs) is several times faster than the default one.
    keys = np.sort(
        (rows << 36) | ((days - low) << 20) | (ids << 8) | (entries.scores + 1), kind="stable"
    )
    return Entries(
        keys >> 36,
        (keys >> 8) & _ID_MASK,
        ((keys >> 20) & 0xFFFF) + low,
        (keys & 0xFF) - 1,
    )


def _exp_golomb(values: Ints, k: Ints) -> tuple[Ints, Ints]:
    words = values + (1 << k)
    return words, 2 * _bit_length(words) - k - 1


def _headers(e: Entries, n_rows: int, header_of: HeaderOf) -> tuple[Ints, Ints] | None:
    """Each row's header pieces: (values, lengths), both ``(n_rows, pieces)``."""
    present = np.bincount(e.days, minlength=MAX_DAY + 1) > 0  # days are clamped already
    known = np.flatnonzero(present)
    if len(known) > _MAX_DAYS:
        return None
    index = np.cumsum(present) - 1
    masks = np.zeros(n_rows, dtype=np.int64)
    if len(e.rows):
        starts = np.flatnonzero(np.diff(e.rows, prepend=-1))
        bits = np.left_shift(1, index[e.days])
        masks[e.rows[starts]] = np.bitwise_or.reduceat(bits, starts)
    unique, which = np.unique(masks, return_inverse=True)
    texts = []
    for mask in unique.tolist():
        days = tuple(int(day) for bit, day in enumerate(known.tolist()) if mask >> bit & 1)
        text = header_of(days)
        texts.append([text[i : i + _PIECE_BITS] for i in range(0, len(text), _PIECE_BITS)])
    width = max(len(t) for t in texts)
    values = np.zeros((len(texts), width), dtype=np.int64)
    lengths = np.zeros((len(texts), width), dtype=np.int64)
    for row, pieces in enumerate(texts):
        for column, piece in enumerate(pieces):
            values[row, column], lengths[row, column] = int(piece, 2), len(piece)
    return values[which], lengths[which]


def encode_sections(entries: Entries, n_rows: int, header_of: HeaderOf) -> list[bytes] | None:
    """The tag section of each of ``n_rows`` devices; None for a batch of too many expiry
    days (over 62), left to the reference encoder. ``header_of``: ``header_bits`` or a cache.
    """
    if n_rows == 0:
        return []
    if len(entries.tag_ids) and int(entries.tag_ids.max()) > _ID_MASK:
        return None
    e = _kept(entries)
    counts = np.bincount(e.rows, minlength=n_rows).astype(np.int64)
    if len(e.rows) and int(counts.max()) > MAX_TAGS:
        return None
    headers = _headers(e, n_rows, header_of)
    if headers is None:
        return None
    row_start = _exclusive(counts)
    # Groups of one expiry day: their first id as is, the others as the gap to the previous.
    first = np.ones(len(e.rows), dtype=bool)
    first[1:] = (e.rows[1:] != e.rows[:-1]) | (e.days[1:] != e.days[:-1])
    gaps = e.tag_ids.copy()
    gaps[1:] -= e.tag_ids[:-1] + 1
    values = np.where(first, e.tag_ids, gaps)
    pieces = _Pieces(n_rows)
    for column in range(headers[0].shape[1]):
        pieces.add_rows(headers[0][:, column], headers[1][:, column])
    k = _order(values, e.rows, counts)
    pieces.add_rows(k, np.full(n_rows, 3, dtype=np.int64))
    group_rows = e.rows[first]
    sizes = np.diff(np.append(np.flatnonzero(first), len(e.rows)))
    pieces.add(group_rows, *_exp_golomb(sizes - 1, np.zeros_like(sizes)))
    _scores(pieces, e, counts, row_start)
    pieces.add(e.rows, *_exp_golomb(values, k[e.rows]))
    return pieces.pack()


def _order(values: Ints, rows: Ints, counts: Ints) -> Ints:
    """Each row's Exp-Golomb order, as ``profile_tags._order``: the bit length of its median
    value less one, clipped to 0..7; the median is at least 2**j exactly when no more than
    half the row's values (rounded down) are below 2**j."""
    n_rows = len(counts)
    half = counts // 2
    # One count per row and clipped bit length (value < 2**j exactly when its bit length
    # is at most j), summed up along the bit lengths.
    lengths = _SMALL_BIT_LENGTH[np.minimum(values, 1 << MAX_K)]
    counts_by = np.bincount(rows * (MAX_K + 2) + lengths, minlength=n_rows * (MAX_K + 2))
    below = np.cumsum(counts_by.reshape(n_rows, MAX_K + 2), axis=1)[:, 1 : MAX_K + 1]
    k: Ints = np.count_nonzero(below <= half[:, None], axis=1).astype(np.int64)
    k[counts == 0] = 0
    return k


def _scores(pieces: _Pieces, e: Entries, counts: Ints, row_start: Ints) -> None:
    scored = e.scores >= 0
    zeros = np.zeros(pieces.n_rows, dtype=np.int64)
    pieces.add_rows(*_exp_golomb(np.bincount(e.rows[scored], minlength=pieces.n_rows), zeros))
    rows = e.rows[scored]
    width = np.maximum(1, _bit_length(np.maximum(counts - 1, 0)))[rows]
    positions = np.flatnonzero(scored) - row_start[rows]
    score = np.clip(e.scores[scored], 0, 100)
    pieces.add(rows, (positions << SCORE_BITS) | score, width + SCORE_BITS)
