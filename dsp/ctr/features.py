"""Hashed features of one shown ad: the same function for training rows and live bids.

A row is what a bid event records (``dsp/events/schema.py``): the creative, the ids of the
device's tags the campaign's targeting matched, the site or app categories, the OS and the
ad size. Its features are strings hashed into ``2**bits`` buckets (CRC-32, stable across
processes and Python versions): a bias, each part alone, and each part crossed with the
creative, so the model learns which tags and contexts make *this* ad clicked. Campaign ids
are left out on purpose: a new campaign reusing an ad starts from what that ad taught.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

DEFAULT_BITS = 18
MAX_COUNT_BUCKET = 4  # 0, 1, 2, 3, "4 or more" matched tags

BIAS = "b"


@dataclass(frozen=True, slots=True)
class Row:
    """The facts of one bid that the model sees."""

    creative: str
    tags: tuple[int, ...]
    site_cat: tuple[str, ...]
    os: str
    w: int
    h: int


def bucket(key: str, bits: int) -> int:
    """The hash bucket of a feature name."""
    return zlib.crc32(key.encode()) & ((1 << bits) - 1)


def creative_key(creative: str) -> str:
    return f"c={creative}"


def tag_keys(creative: str, tag: int) -> tuple[str, str]:
    return f"t={tag}", f"c={creative}|t={tag}"


def count_key(creative: str, count: int) -> str:
    return f"c={creative}|n={min(count, MAX_COUNT_BUCKET)}"


def category_keys(creative: str, category: str) -> tuple[str, str]:
    return f"s={category}", f"c={creative}|s={category}"


def os_keys(creative: str, os: str) -> tuple[str, str]:
    return f"os={os}", f"c={creative}|os={os}"


def size_keys(creative: str, w: int, h: int) -> tuple[str, str]:
    return f"sz={w}x{h}", f"c={creative}|sz={w}x{h}"


def names(row: Row) -> Iterator[str]:
    """Every feature name of a row (a name may repeat only if the row repeats a value)."""
    c = row.creative
    yield BIAS
    yield creative_key(c)
    for tag in row.tags:
        yield from tag_keys(c, tag)
    yield count_key(c, len(row.tags))
    for category in row.site_cat:
        yield from category_keys(c, category)
    yield from os_keys(c, row.os)
    yield from size_keys(c, row.w, row.h)


def hashed(row: Row, bits: int) -> list[int]:
    return [bucket(name, bits) for name in names(row)]


def row_of(event: dict[str, object]) -> Row:
    """The row of a bid event (fields missing from an old event count as empty)."""
    tags = event.get("tags")
    cats = event.get("site_cat")
    return Row(
        creative=str(event.get("creative", "")),
        tags=tuple(int(t) for t in tags if isinstance(t, int)) if isinstance(tags, list) else (),
        site_cat=tuple(str(c) for c in cats) if isinstance(cats, list) else (),
        os=str(event.get("os", "")),
        w=_int(event.get("w")),
        h=_int(event.get("h")),
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def sorted_unique(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted(set(values)))
