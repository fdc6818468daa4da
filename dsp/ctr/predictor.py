"""The bidder's CTR predictor: a model file, reloaded when it changes, priced per line.

``maybe_reload`` compares the file's (mtime, size) with the loaded one and swaps in the new
model whole; the campaign refresher calls it, so a retrained model is bidding within one
refresh interval, without a restart. A file that cannot be read leaves the old model in
place (and without any model, ``predict`` answers None: the caller uses its prior).

Per line, the model is folded once into a small ``LineScorer``: the line's constant part
(bias, creative), a dict of the summed weights of each tag its targeting can match, and
lazily filled dicts for context values. A prediction is then a few dict lookups and one
exponential: about a microsecond per candidate.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dmp.profile import UNSCORED
from dmp.taxonomy import Taxonomy
from dsp.bidder.openrtb import BidRequest, Imp
from dsp.campaigns.index import Line
from dsp.ctr import features as f
from dsp.ctr.model import CtrModel, ModelFileError
from dsp.events.tags import TagMatcher

log = logging.getLogger(__name__)

SCORE_LOW, SCORE_HIGH = f.SCORE_EDGES
MAX_CACHED = 100_000  # scorers and context values kept per model before starting afresh
# issue 12: what a predictor's model file must have been trained on (``dsp ctr train --label``)
MODEL_LABEL = {"ctr": "click", "cvr": "conversion"}


class LineScorer:
    """One line's share of the model: a click probability from the bid's facts."""

    __slots__ = ("_model", "_creative", "_base", "_tags", "_scored", "_tops", "_counts", "_context")

    def __init__(self, model: CtrModel, creative: str, tags: Iterable[int]) -> None:
        self._model = model
        self._creative = creative
        bits = model.bits

        keep = f.FEATURE_SETS[model.features]  # issue 12: names outside the model's set weigh 0

        def weight(*names: str) -> float:
            return sum(
                model.weight(f.bucket(name, bits)) for name in names if keep is None or keep(name)
            )

        self._base = weight(f.BIAS, f.creative_key(creative))
        self._tags = {tag: weight(*f.tag_keys(creative, tag)) for tag in tags}
        # issue 12: per tag, its weight in each score bucket; per top bucket, the row's
        buckets = range(f.SCORE_BUCKETS)
        self._scored = {
            tag: tuple(weight(f.tag_score_key(tag, b)) for b in buckets) for tag in self._tags
        }
        self._tops = tuple(weight(f.top_score_key(b)) for b in buckets)
        self._counts = tuple(
            weight(f.count_key(creative, n), f.pooled_count_key(n))
            for n in range(f.MAX_COUNT_BUCKET + 1)
        )
        self._context: dict[tuple[str, str] | tuple[str, int, int], float] = {}

    def _cached(self, key: tuple[str, str] | tuple[str, int, int], names: tuple[str, str]) -> float:
        value = self._context.get(key)
        if value is None:
            model = self._model
            keep = f.FEATURE_SETS[model.features]
            value = sum(
                model.weight(f.bucket(name, model.bits))
                for name in names
                if keep is None or keep(name)
            )
            if len(self._context) < MAX_CACHED:
                self._context[key] = value
        return value

    def predict(
        self, device_tags: Mapping[int, int], site_cat: Iterable[str], os: str, w: int, h: int
    ) -> float:
        z = self._base
        matched = 0
        weights = self._tags
        if weights:
            top = -1
            for tag in device_tags:
                value = weights.get(tag)
                if value is not None:
                    z += value
                    matched += 1
                    score = device_tags[tag]
                    if score < UNSCORED:  # issue 12: as features.score_bucket, inlined
                        b = 0 if score < SCORE_LOW else 1 if score < SCORE_HIGH else 2
                        z += self._scored[tag][b]
                        if b > top:
                            top = b
            if top >= 0:
                z += self._tops[top]
        z += self._counts[min(matched, f.MAX_COUNT_BUCKET)]
        c = self._creative
        for category in site_cat:
            z += self._cached(("s", category), f.category_keys(c, category))
        z += self._cached(("o", os), f.os_keys(c, os))
        z += self._cached(("z", w, h), f.size_keys(c, w, h))
        return 1.0 / (1.0 + math.exp(-max(-35.0, min(35.0, z))))


@dataclass(slots=True)
class _State:
    model: CtrModel | None
    stamp: tuple[int, int] | None
    scorers: dict[tuple[str, str, str | None], LineScorer] = field(default_factory=dict)


class CtrPredictor:
    """Click probabilities for the bidder's lines from the model file at ``path``.

    issue 12: a pCVR model file has the same format and features, so the same class gives
    target-CPA lines their conversion probability given a click."""

    def __init__(self, path: Path, taxonomy: Taxonomy, name: str = "ctr") -> None:
        self.path = path
        self.name = name  # issue 12: "cvr" for a pCVR model (same file format), in the logs
        self._tags = TagMatcher(taxonomy)  # the tags a line's expression looks at
        # One attribute swapped whole: a reader sees the old state or the new, never half.
        self._state = _State(None, None)
        self.loads = 0

    @property
    def model(self) -> CtrModel | None:
        return self._state.model

    def maybe_reload(self) -> bool:
        """Load the file if it changed since the last load; True when a new model is in."""
        try:
            stat = os.stat(self.path)
        except OSError:
            return False
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._state.stamp:
            return False
        try:
            model = CtrModel.load(self.path)
        except ModelFileError as error:
            log.warning(
                f"{self.name} model not loaded", extra={"path": str(self.path), "error": str(error)}
            )
            return False
        label = model.meta.get("label", "click")  # files from before issue 12 carry none
        if label != MODEL_LABEL.get(self.name, label):
            log.warning(
                f"{self.name} model not loaded: the file is a {label} model",
                extra={"path": str(self.path)},
            )
            return False
        self._state = _State(model, stamp)
        self.loads += 1
        rows = model.meta.get("rows")
        log.info(f"{self.name} model loaded", extra={"path": str(self.path), "rows": rows})
        return True

    def scorer(self, line: Line) -> LineScorer | None:
        state = self._state
        if state.model is None:
            return None
        expression = line.campaign.targeting.tags
        key = (line.campaign.id, line.creative.id, expression)
        scorer = state.scorers.get(key)
        if scorer is None:
            scorer = LineScorer(state.model, line.creative.id, self._tags.referenced(expression))
            if len(state.scorers) >= MAX_CACHED:
                state.scorers.clear()
            state.scorers[key] = scorer
        return scorer

    def predict(
        self, line: Line, tags: Mapping[int, int], request: BidRequest, imp: Imp
    ) -> float | None:
        """The click probability of ``line`` shown for ``imp``; None without a model."""
        scorer = self.scorer(line)
        if scorer is None:
            return None
        creative = line.creative
        w, h = creative.w, creative.h
        if not (w and h) and imp.banner_sizes:
            w, h = imp.banner_sizes[0]
        # As the bid event records them (dsp/events/bid_log.py): sorted categories.
        return scorer.predict(tags, request.categories, request.os, w or 0, h or 0)
