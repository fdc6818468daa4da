"""Hashed features of one shown ad: the same function for training rows and live bids.

A row is what a bid event records (``dsp/events/schema.py``): the creative, the ids of the
device's tags the campaign's targeting matched, the site or app categories, the OS and the
ad size. Its features are strings hashed into ``2**bits`` buckets (CRC-32, stable across
processes and Python versions): a bias, each part alone, and each part crossed with the
creative, so the model learns which tags and contexts make *this* ad clicked. Campaign ids
are left out on purpose: a new campaign reusing an ad starts from what that ad taught.

issue 12: a matched tag's DMP score counts too, coarsely. A scored tag adds its tag crossed
with its score bucket (below 34, below 67, 67 and up), and the row adds the highest bucket
of its scored tags and its matched-tag count, both alone (not crossed with the creative):
the pooled "how many and how strong" that a few dozen conversions can still learn. A score of
``UNSCORED`` (what a profile holds for an unscored tag, and what an event without scores
means) adds nothing.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from dmp.profile import UNSCORED  # an unscored tag's score in a profile

DEFAULT_BITS = 18
MAX_COUNT_BUCKET = 4  # 0, 1, 2, 3, "4 or more" matched tags
SCORE_EDGES = (34, 67)  # issue 12: score buckets 0 (< 34), 1 (< 67), 2 (the rest)
SCORE_BUCKETS = len(SCORE_EDGES) + 1

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
    # issue 12: the score of each tag in ``tags`` (same order); empty: every tag unscored
    scores: tuple[int, ...] = ()


def score_bucket(score: int) -> int | None:
    """issue 12: the score bucket of a tag's score; None for an unscored tag."""
    if score >= UNSCORED:
        return None
    return 0 if score < SCORE_EDGES[0] else 1 if score < SCORE_EDGES[1] else 2


def bucket(key: str, bits: int) -> int:
    """The hash bucket of a feature name."""
    return zlib.crc32(key.encode()) & ((1 << bits) - 1)


def creative_key(creative: str) -> str:
    return f"c={creative}"


def tag_keys(creative: str, tag: int) -> tuple[str, str]:
    return f"t={tag}", f"c={creative}|t={tag}"


def tag_score_key(tag: int, score_bucket: int) -> str:
    return f"t={tag}|sb={score_bucket}"


def top_score_key(score_bucket: int) -> str:
    return f"ms={score_bucket}"


def count_key(creative: str, count: int) -> str:
    return f"c={creative}|n={min(count, MAX_COUNT_BUCKET)}"


def pooled_count_key(count: int) -> str:
    """issue 12: the matched-tag count alone (every creative's)."""
    return f"n={min(count, MAX_COUNT_BUCKET)}"


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
    top = -1
    for tag, score in zip(row.tags, row.scores, strict=False):
        b = score_bucket(score)
        if b is not None:
            yield tag_score_key(tag, b)
            top = max(top, b)
    if top >= 0:
        yield top_score_key(top)
    yield count_key(c, len(row.tags))
    yield pooled_count_key(len(row.tags))
    for category in row.site_cat:
        yield from category_keys(c, category)
    yield from os_keys(c, row.os)
    yield from size_keys(c, row.w, row.h)


def pooled(name: str) -> bool:
    """issue 12: a feature of the "pooled" set, the one a pCVR model learns from a few dozen
    conversions: the bias, how many of the line's tags matched and the top score bucket
    among them. Creatives, single tags, site categories, OS and sizes are left to the CTR
    model, which has hundreds of clicks for them; fitted to a few dozen conversions they
    were noise (the experiment's target CPA bid worse with them, 0.67x-1.0x)."""
    return name == BIAS or name.startswith(("n=", "ms="))


# issue 12: which of a row's names a model uses (its file's ``meta.features``)
FEATURE_SETS: dict[str, Callable[[str], bool] | None] = {"all": None, "pooled": pooled}


def hashed(row: Row, bits: int, features: str = "all") -> list[int]:
    keep = FEATURE_SETS[features]
    return [bucket(name, bits) for name in names(row) if keep is None or keep(name)]


def row_of(event: dict[str, object]) -> Row:
    """The row of a bid event (fields missing from an old event count as empty; scores that
    do not pair up with the tags, or none, as unscored)."""
    tags = event.get("tags")
    cats = event.get("site_cat")
    ids = tuple(t for t in tags if _is_int(t)) if isinstance(tags, list) else ()
    scores = event.get("scores")
    paired = isinstance(scores, list) and len(scores) == len(ids) and all(map(_is_int, scores))
    return Row(
        creative=str(event.get("creative", "")),
        tags=ids,
        scores=tuple(scores) if paired else (),  # type: ignore[arg-type]
        site_cat=tuple(str(c) for c in cats) if isinstance(cats, list) else (),
        os=str(event.get("os", "")),
        w=_int(event.get("w")),
        h=_int(event.get("h")),
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def sorted_unique(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted(set(values)))
