"""Training rows from the event archive: bid events joined with clicks by auction and imp.

A row is a bid that was shown: a bid event whose (auction, imp) also has an ``imp`` event
(the impression pixel), or, in an archive without impression events, a ``win`` event. Its
label is 1 when a ``click`` event has the same key (``invalid_click`` events do not count).
Rows carry their UTC day, so the trainer can hold out the last days.

issue 12: the pCVR model's rows (``join_conversions``) are the bids that were *clicked*,
labelled 1 when a click-through ``conversion`` event names the same auction and imp.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson
from tqdm import tqdm

from dsp.ctr.features import Row, row_of
from dsp.events.archive import read_archive

MS_PER_DAY = 86_400_000


@dataclass(frozen=True, slots=True)
class Examples:
    rows: list[Row]
    labels: list[int]
    days: list[int]  # UTC day number of each row's bid

    def __len__(self) -> int:
        return len(self.rows)


_Key = tuple[str, str]


def _by_kind(
    events: Iterable[dict[str, object]],
) -> tuple[dict[_Key, dict[str, object]], defaultdict[str, set[_Key]]]:
    """Each (auction, imp)'s first bid event, and the keys every other event type names."""
    bids: dict[_Key, dict[str, object]] = {}
    keys: defaultdict[str, set[_Key]] = defaultdict(set)
    for event in events:
        kind = event.get("type")
        key = (str(event.get("auction", "")), str(event.get("imp", "")))
        if kind == "bid":
            bids.setdefault(key, event)
        else:
            keys[str(kind)].add(key)
    return bids, keys


def _examples(
    bids: dict[_Key, dict[str, object]], among: set[_Key], positive: set[_Key]
) -> Examples:
    """The bids ``among`` holds, labelled 1 where ``positive`` holds them too."""
    rows, labels, days = [], [], []
    for key, event in bids.items():
        if key not in among:
            continue
        rows.append(row_of(event))
        labels.append(1 if key in positive else 0)
        ts = event.get("ts")
        days.append(ts // MS_PER_DAY if isinstance(ts, int) else 0)
    return Examples(rows, labels, days)


def join(events: Iterable[dict[str, object]]) -> Examples:
    """Shown bids with their click label, in bid order."""
    bids, keys = _by_kind(events)
    return _examples(bids, keys["imp"] or keys["win"], keys["click"])


def join_conversions(events: Iterable[dict[str, object]]) -> Examples:
    """issue 12: clicked bids with their conversion label, in bid order."""
    bids, keys = _by_kind(events)
    return _examples(bids, keys["click"], keys["conversion"])


Joiner = Callable[[Iterable[dict[str, object]]], Examples]
# What a model learns: "click" (pCTR, over shown bids) or "conversion" (pCVR, over clicks).
LABELS: dict[str, Joiner] = {"click": join, "conversion": join_conversions}


def read_events(directory: Path, *, progress: bool = False) -> Iterable[dict[str, object]]:
    """Every event of the archive in ``directory`` (lines that are not JSON objects skipped)."""
    lines = tqdm(read_archive(directory), unit="ev", file=sys.stderr, disable=not progress)
    for line in lines:
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict):
            yield event


def read_examples(directory: Path, *, progress: bool = False, label: str = "click") -> Examples:
    """``join`` (or the ``label``'s joiner) over every event of the archive in ``directory``."""
    return LABELS[label](read_events(directory, progress=progress))
