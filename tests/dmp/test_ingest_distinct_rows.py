"""``distinct_rows``: snapshots grouped by their columns' codes, tuples made once each."""

from __future__ import annotations

import numpy as np
import pytest

from dmp.ingest_columns import distinct_rows


@pytest.mark.parametrize("seed", range(5))
def test_rows_with_equal_codes_share_a_combination_and_others_do_not(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(1, 3000))
    columns = [rng.integers(0, int(size), rows) for size in rng.integers(1, 40, 6)]
    first, which = distinct_rows(columns)
    tuples = list(zip(*(column.tolist() for column in columns), strict=True))
    assert len(first) == len(set(tuples))
    for row, combination in enumerate(which.tolist()):
        assert tuples[first[combination]] == tuples[row]


def test_codes_too_wide_for_one_int64_key_are_still_told_apart() -> None:
    # Eight columns of a million codes each: the product of their sizes is far past 2**63.
    rng = np.random.default_rng(7)
    columns = [rng.integers(0, 1_000_000, 500) for _ in range(8)]
    columns[3][[10, 20]] = 999_999  # rows 10 and 20 equal in every column
    for column in columns:
        column[20] = column[10]
    first, which = distinct_rows(columns)
    assert which[10] == which[20]
    assert len(first) == 499
