"""An in-memory columnar index of the DMP population: exact audience sizes in milliseconds.

Built from one full profile scan by ``dmp.audience_build`` (and cached there). Devices are
rows ``0..N-1`` in scan order:

    keys      N primary digests (8 bytes each) read as little-endian uint64
    bits      per tag of the taxonomy, a presence bitmap of W = ceil(N / 64) uint64 words
    scores    per tag some device holds with a score other than 100, a uint8 column of N
              (255 where absent: above every score, so ``<``/``<=`` never match it and
              ``>=``/``>``/``=`` are also ANDed with presence)

A set of devices (a *mask*) is a bitmap of W words laid out like ``np.packbits(...,
bitorder="little")``: row r is bit r % 8 of byte r // 8. Bits past N are always zero, so NOT
is one XOR with the all-devices mask and a popcount needs no trimming. Packed words rather
than bool arrays because an AND over 1M devices then touches 125 KB instead of 1 MB: a
10-tag expression costs well under a millisecond.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from dmp.errors import AudienceError
from dmp.profile import UNSCORED
from dmp.tag_expression import And, Expr, Not, Or, TagRef
from dmp.taxonomy import MAX_TAG_ID, Taxonomy

Mask: TypeAlias = npt.NDArray[np.uint64]
Rows: TypeAlias = npt.NDArray[np.intp]
KEY_DTYPE = np.dtype("<u8")
DIGEST_BYTES = 8
ABSENT_SCORE = 255
_BinaryOp: TypeAlias = Callable[..., Mask]
# ``operator`` rather than numpy ufuncs: the same function compares a column and a number.
_COMPARE: Mapping[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "=": operator.eq,
}


def words_for(devices: int) -> int:
    """uint64 words of a mask over ``devices`` rows."""
    return (devices + 63) // 64


def pack(flags: npt.NDArray[np.bool_], words: int) -> Mask:
    """A bool per row packed into a mask of ``words`` uint64 words."""
    packed = np.zeros(words * 8, dtype=np.uint8)
    raw = np.packbits(flags, bitorder="little")
    packed[: raw.size] = raw
    return packed.view(np.uint64)


def unpack(mask: Mask, devices: int) -> npt.NDArray[np.bool_]:
    """A mask as one bool per row."""
    return np.unpackbits(mask.view(np.uint8), count=devices, bitorder="little").view(np.bool_)


def popcount(mask: Mask) -> int:
    return int(np.bitwise_count(mask).sum(dtype=np.int64))


class AudienceIndex:
    """Presence bitmaps and score columns of every device; masks in, masks and counts out.

    Masks returned may be views of the index (read-only): combine them with numpy ops that
    make new arrays, never in place.
    """

    __slots__ = (
        "keys",
        "taxonomy",
        "version",
        "today",
        "_bits",
        "_column",
        "_scores",
        "_all",
        "_none",
        "_groups",
        "_order",
        "_sorted",
    )

    def __init__(
        self,
        digests: npt.NDArray[np.uint64],
        bits: npt.NDArray[np.uint64],
        tag_ids: Sequence[int],
        scores: Mapping[int, npt.NDArray[np.uint8]],
        *,
        taxonomy: Taxonomy,
        version: int = 0,
        today: int = 0,
    ) -> None:
        words = words_for(len(digests))
        if bits.shape != (len(tag_ids), words):
            raise ValueError(f"bits of shape {bits.shape}, expected {(len(tag_ids), words)}")
        self.keys = digests
        self.taxonomy = taxonomy
        self.version = version
        self.today = today
        self._bits = bits
        self._bits.setflags(write=False)
        self._column = np.full(MAX_TAG_ID + 1, -1, dtype=np.int32)
        self._column[np.asarray(tag_ids, dtype=np.int32)] = np.arange(len(tag_ids))
        self._scores = dict(scores)
        self._all = pack(np.ones(len(digests), dtype=np.bool_), words)
        self._all.setflags(write=False)
        self._none = np.zeros(words, dtype=np.uint64)
        self._none.setflags(write=False)
        self._groups: dict[frozenset[int], Mask] = {}
        self._order: Rows | None = None
        self._sorted: npt.NDArray[np.uint64] | None = None

    @property
    def devices(self) -> int:
        return len(self.keys)

    def everyone(self) -> Mask:
        return self._all

    def nothing(self) -> Mask:
        return self._none

    # --- expressions ----------------------------------------------------------------------

    def tag(self, tag_id: int) -> Mask:
        """Devices holding a tag (nobody for a tag the index has no column for)."""
        column = int(self._column[tag_id]) if 0 <= tag_id <= MAX_TAG_ID else -1
        return self._none if column < 0 else self._bits[column]

    def any_of(self, tag_ids: frozenset[int]) -> Mask:
        """Devices holding any of the tags: a category or a dimension, cached."""
        if len(tag_ids) == 1:
            return self.tag(next(iter(tag_ids)))
        found = self._groups.get(tag_ids)
        if found is None:
            found = np.zeros_like(self._none)
            for tag_id in tag_ids:
                np.bitwise_or(found, self.tag(tag_id), out=found)
            found.setflags(write=False)
            self._groups[tag_ids] = found
        return found

    def compare(self, tag_id: int, op: str, value: int) -> Mask:
        """Devices holding the tag with a score ``op value``."""
        present = self.tag(tag_id)
        column = self._scores.get(tag_id)
        if column is None:  # every holder scores UNSCORED
            return present if _COMPARE[op](UNSCORED, value) else self._none
        flags = np.asarray(_COMPARE[op](column, value), dtype=np.bool_)
        return np.bitwise_and(pack(flags, len(present)), present)

    def evaluate(self, expr: Expr, taxonomy: Taxonomy | None = None) -> Mask:
        """The devices an expression matches; raises ``UnknownTag`` for a code not in it."""
        return self._evaluate(expr, taxonomy or self.taxonomy)

    def _evaluate(self, expr: Expr, taxonomy: Taxonomy) -> Mask:
        match expr:
            case TagRef():
                if expr.op is None or expr.value is None:
                    return self.any_of(taxonomy.resolve(expr.code))
                return self.compare(taxonomy.tag(expr.code).id, expr.op, expr.value)
            case Not(child=child):
                return np.bitwise_xor(self._evaluate(child, taxonomy), self._all)
            case And(children=children):
                return self._fold(children, taxonomy, np.bitwise_and)
            case Or(children=children):
                return self._fold(children, taxonomy, np.bitwise_or)

    def _fold(self, children: Sequence[Expr], taxonomy: Taxonomy, op: _BinaryOp) -> Mask:
        out = op(self._evaluate(children[0], taxonomy), self._evaluate(children[1], taxonomy))
        for child in children[2:]:
            op(out, self._evaluate(child, taxonomy), out=out)  # ``out`` is ours: a new array
        return out

    # --- counting and rows ----------------------------------------------------------------

    def size(self, mask: Mask) -> int:
        """How many devices a mask holds."""
        return popcount(mask)

    def rows(self, mask: Mask) -> Rows:
        """The rows of a mask, ascending."""
        return np.flatnonzero(unpack(mask, self.devices))

    def mask_of_rows(self, rows: Rows) -> Mask:
        flags = np.zeros(self.devices, dtype=np.bool_)
        flags[rows] = True
        return pack(flags, len(self._none))

    def rows_of(self, packed: bytes) -> Rows:
        """Rows of the devices among packed 8-byte primary digests; unknown ones are skipped."""
        if len(packed) % DIGEST_BYTES:
            raise AudienceError("digests", "packed digests must be 8 bytes each")
        wanted = np.frombuffer(packed, dtype=KEY_DTYPE)
        if not self.devices or not len(wanted):
            return np.zeros(0, dtype=np.intp)
        order, ordered = self._sorted_keys()
        at = np.minimum(np.searchsorted(ordered, wanted), self.devices - 1)
        return np.unique(order[at[ordered[at] == wanted]])

    def mask_of(self, packed: bytes) -> Mask:
        """The mask of packed 8-byte primary digests (unknown devices left out)."""
        return self.mask_of_rows(self.rows_of(packed))

    def digests_of(self, rows: Rows) -> list[bytes]:
        """The 8-byte primary digests of rows."""
        raw = self.keys[rows].astype(KEY_DTYPE).tobytes()
        return [raw[i : i + DIGEST_BYTES] for i in range(0, len(raw), DIGEST_BYTES)]

    def _sorted_keys(self) -> tuple[Rows, npt.NDArray[np.uint64]]:
        if self._order is None or self._sorted is None:
            self._order = np.argsort(self.keys, kind="stable")
            self._sorted = self.keys[self._order]
        return self._order, self._sorted

    # --- splits ---------------------------------------------------------------------------

    def split(self, mask: Mask, ratios: Sequence[float], seed: int = 0) -> list[Mask]:
        """Disjoint parts of a mask in the given ratios, each within one device of its share.

        Devices are ordered by a hash of their digest and ``seed`` and the order is cut at
        the rounded cumulative ratios, so the same devices always fall in the same part:
        splitting again gives the same parts, and a device stays put as others come and go.
        """
        rows = self.rows(mask)
        ordered = rows[np.argsort(_mix(self.keys[rows], seed), kind="stable")]
        total = float(sum(ratios))
        cuts = [0]
        running = 0.0
        for ratio in ratios:
            running += ratio
            cuts.append(round(len(rows) * running / total))
        cuts[-1] = len(rows)
        return [self.mask_of_rows(ordered[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]


def _mix(values: npt.NDArray[np.uint64], seed: int) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser: a bijection, so distinct devices never tie."""
    z = values.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) % (1 << 64))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))
