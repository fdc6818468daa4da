"""Benchmarks of the audience index: size of a 10-tag expression, and a build from a scan.

``bench_audience_size_ms`` builds its index from numpy arrays directly (random presence
bitmaps and scores for every tag of the default taxonomy) rather than from a million
profiles in Redis: the size of an expression depends only on the array shapes, and a real
build of a million devices takes over twenty seconds of profile decoding.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from redis.asyncio import Redis

from dmp.audience_build import build_index
from dmp.audience_index import ABSENT_SCORE, AudienceIndex, pack, unpack
from dmp.tag_expression import parse
from dmp.taxonomy import Taxonomy

RUNS = 20


def synthetic_index(devices: int, taxonomy: Taxonomy, seed: int = 7) -> AudienceIndex:
    """An index of random devices: each tag held by 1/2 .. 1/64 of them, scores 0..100."""
    rng = np.random.default_rng(seed)
    words = (devices + 63) // 64
    everyone = pack(np.ones(devices, dtype=np.bool_), words)
    bits = np.empty((len(taxonomy.tags), words), dtype=np.uint64)
    for row in range(len(taxonomy.tags)):
        draws = rng.integers(1, 7)  # AND of k random words: density 2**-k
        bits[row] = everyone
        for _ in range(draws):
            bits[row] &= rng.integers(0, 2**64, size=words, dtype=np.uint64, endpoint=False)
    scores = {}
    for row, tag in enumerate(taxonomy.tags):
        if tag.scored:
            score = rng.integers(0, 101, size=devices, dtype=np.uint8)
            score[~unpack(bits[row], devices)] = ABSENT_SCORE
            scores[tag.id] = score
    keys = rng.integers(0, 2**64, size=devices, dtype=np.uint64, endpoint=False)
    tag_ids = [tag.id for tag in taxonomy.tags]
    return AudienceIndex(keys, bits, tag_ids, scores, taxonomy=taxonomy)


def ten_tag_expression(taxonomy: Taxonomy) -> str:
    """Ten distinct tags under AND, OR and NOT, one of them a score comparison."""
    plain = [tag.code for tag in taxonomy.tags if not tag.scored]
    scored = next(tag.code for tag in taxonomy.tags if tag.scored)
    a, b, c, d, e, f, g, h, i = plain[:: max(1, len(plain) // 9)][:9]
    return (
        f"({a} OR {b} OR {c}) AND ({d} OR {e}) AND NOT {f} "
        f"AND {scored} >= 60 AND ({g} OR {h} OR NOT {i})"
    )


def time_size_ms(index: AudienceIndex, expression: str, runs: int = RUNS) -> float:
    """Median milliseconds to parse an expression, evaluate it and count its devices."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        index.size(index.evaluate(parse(expression)))
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def bench_audience_size_ms(devices: int = 1_000_000) -> float:
    """``audience_size_ms``: median exact size of a 10-tag expression over ``devices``."""
    taxonomy = Taxonomy.default()
    index = synthetic_index(devices, taxonomy)
    return time_size_ms(index, ten_tag_expression(taxonomy))


async def bench_index_build_s(redis: Redis, taxonomy: Taxonomy) -> tuple[int, float]:
    """Devices indexed and seconds taken to build an index over what ``redis`` holds."""
    started = time.perf_counter()
    index = await build_index(redis, taxonomy)
    return index.devices, time.perf_counter() - started
