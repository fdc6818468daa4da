"""Logistic regression over hashed features, in numpy: training, metrics and the model file.

Training is mini-batch Adagrad (a per-feature step size, as CTR models use, so rare tags
learn as fast as common ones) with L2 shrinkage. The model file is a ``.npz``: ``weights``
(float32, ``2**bits``) and ``meta`` (JSON: format version, bits, rows, clicks, metrics).
It is written to a temporary file and renamed over the old one, so a bidder reloading it
never reads half a file.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from dsp.ctr.features import BIAS, DEFAULT_BITS, FEATURE_SETS, Row, bucket, hashed

FORMAT = "rtb-dsp-ctr/1"
EPSILON = 1e-7

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


class ModelFileError(Exception):
    """A model file that cannot be read (missing, truncated, another format)."""


@dataclass(frozen=True, slots=True)
class Design:
    """Rows as sparse binary features: row ``i`` owns ``cols[ptr[i]:ptr[i+1]]``."""

    cols: Ints
    ptr: Ints
    labels: Floats
    bits: int

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def build(
        cls, rows: Sequence[Row], labels: Sequence[int], bits: int, features: str = "all"
    ) -> Design:
        hashed_rows = [hashed(row, bits, features) for row in rows]
        lengths = np.fromiter((len(h) for h in hashed_rows), dtype=np.int64, count=len(rows))
        ptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=ptr[1:])
        cols = np.fromiter((c for h in hashed_rows for c in h), dtype=np.int64, count=int(ptr[-1]))
        return cls(cols, ptr, np.asarray(labels, dtype=np.float64), bits)

    def take(self, index: Ints) -> tuple[Ints, Ints]:
        """(cols, row number within ``index``) of the chosen rows, flattened."""
        starts, ends = self.ptr[index], self.ptr[index + 1]
        lengths = ends - starts
        rows = np.repeat(np.arange(len(index)), lengths)
        offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return self.cols[np.repeat(starts, lengths) + offsets], rows


@dataclass(frozen=True, slots=True)
class TrainConfig:
    bits: int = DEFAULT_BITS
    epochs: int = 4
    batch: int = 1024
    learning_rate: float = 0.05
    l2: float = 1e-4
    seed: int = 1
    # issue 12: or "pooled" (``features.FEATURE_SETS``), or "auto" (``training.fit`` picks)
    features: str = "all"


@dataclass(slots=True)
class CtrModel:
    weights: npt.NDArray[np.float32]
    bits: int
    meta: dict[str, Any] = field(default_factory=dict)

    def weight(self, bucket: int) -> float:
        return float(self.weights[bucket])

    def predict(self, design: Design) -> Floats:
        """Click probability of every row of ``design``."""
        w = self.weights.astype(np.float64)
        rows = np.repeat(np.arange(len(design)), np.diff(design.ptr))
        logits = np.bincount(rows, weights=w[design.cols], minlength=len(design))
        return sigmoid(logits.astype(np.float64))

    @property
    def features(self) -> str:
        """issue 12: the feature set the model was trained on (files before it: "all")."""
        found = self.meta.get("features", "all")
        return found if found in FEATURE_SETS else "all"

    def predict_rows(self, rows: Sequence[Row]) -> Floats:
        return self.predict(Design.build(rows, [0] * len(rows), self.bits, self.features))

    def save(self, path: Path) -> None:
        """Write the model file atomically (temporary file, fsync, rename)."""
        buffer = io.BytesIO()
        meta = {"format": FORMAT, "bits": self.bits, **self.meta}
        np.savez_compressed(
            buffer, weights=self.weights, meta=np.frombuffer(orjson.dumps(meta), dtype=np.uint8)
        )
        directory = path.resolve().parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(buffer.getvalue())
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> CtrModel:
        try:
            with np.load(path, allow_pickle=False) as data:
                weights = np.asarray(data["weights"], dtype=np.float32)
                meta = orjson.loads(bytes(data["meta"]))
        except (OSError, KeyError, ValueError, orjson.JSONDecodeError) as exc:
            raise ModelFileError(f"{path}: {exc}") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ModelFileError(f"{path}: not a {FORMAT} model")
        bits = meta.get("bits")
        if not isinstance(bits, int) or weights.shape != (1 << bits,):
            raise ModelFileError(f"{path}: weights do not match bits={bits!r}")
        return cls(weights, bits, meta)


def sigmoid(z: Floats) -> Floats:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35.0, 35.0)))


def train(design: Design, config: TrainConfig | None = None) -> CtrModel:
    """Fit logistic regression on ``design`` (labels 0/1); ``config.bits`` is the design's."""
    config = config or TrainConfig()
    bits = design.bits
    size = 1 << bits
    w = np.zeros(size, dtype=np.float64)
    g2 = np.full(size, 1e-8, dtype=np.float64)
    n = len(design)
    if n:
        # Start the bias at the base rate: the rest only has to learn the differences.
        rate = float(np.clip(design.labels.mean(), 1e-4, 1 - 1e-4))
        w[bucket(BIAS, bits)] = np.log(rate / (1 - rate))
    # issue 12: the bias is not shrunk: pulled to 0 (a rate of 50 %), it had lifted a pCVR
    # model's every prediction with the L2 its few conversions need
    shrunk = np.ones(size, dtype=np.float64)
    shrunk[bucket(BIAS, bits)] = 0.0
    rng = np.random.default_rng(config.seed)
    for _ in range(config.epochs):
        order = rng.permutation(n)
        for start in range(0, n, config.batch):
            index = order[start : start + config.batch]
            cols, rows = design.take(index)
            logits = np.bincount(rows, weights=w[cols], minlength=len(index)).astype(np.float64)
            error = sigmoid(logits) - design.labels[index]
            touched, inverse = np.unique(cols, return_inverse=True)
            grad = np.bincount(inverse, weights=error[rows], minlength=len(touched)).astype(
                np.float64
            )
            grad += config.l2 * len(index) * w[touched] * shrunk[touched]
            g2[touched] += grad * grad
            w[touched] -= config.learning_rate * grad / np.sqrt(g2[touched])
    meta = {"rows": n, "clicks": int(design.labels.sum()), "features": config.features}
    return CtrModel(w.astype(np.float32), bits, meta)


def log_loss(labels: Floats, predicted: Floats) -> float:
    p = np.clip(predicted, EPSILON, 1 - EPSILON)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def auc(labels: Floats, predicted: Floats) -> float | None:
    """Area under the ROC curve (ties count half); None without both classes."""
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(predicted, kind="mergesort")
    sorted_scores = predicted[order]
    ranks = np.empty(len(predicted), dtype=np.float64)
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    rank_sum = float(ranks[labels == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def calibration(
    labels: Floats, predicted: Floats, bins: int = 10
) -> list[tuple[float, float, int]]:
    """(mean predicted, observed rate, rows) per bin of equal row count, lowest first."""
    if len(labels) == 0:
        return []
    order = np.argsort(predicted, kind="mergesort")
    out = []
    for chunk in np.array_split(order, min(bins, len(order))):
        if len(chunk):
            out.append((float(predicted[chunk].mean()), float(labels[chunk].mean()), len(chunk)))
    return out
