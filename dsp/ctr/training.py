"""Retraining: archive -> examples -> held-out split -> model file, metrics, calibration chart."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsp.ctr.dataset import LABELS, Examples, read_examples
from dsp.ctr.model import CtrModel, Design, TrainConfig, auc, calibration, log_loss, train

DEFAULT_CONFIG = TrainConfig()
# issue 12: a pCVR model learns from a few hundred clicked bids holding a few dozen
# conversions. At pCTR's 4 passes of 1024 rows that is 4 optimiser steps, too few for any
# weight to leave the base rate; 40 passes of 128 rows let it. The pooled feature set and a
# stronger shrinkage keep it from fitting the handful of positives' noise.
# With enough conversions ("auto": AUTO_ALL_FROM of them in the training days) it learns
# every feature, as pCTR does: which tags and creatives convert.
AUTO = "auto"
AUTO_ALL_FROM = 200
CVR_CONFIG = TrainConfig(epochs=40, batch=128, l2=3e-3, features=AUTO)


class TrainingError(Exception):
    """Nothing sensible to train or evaluate on (an empty archive, too few days)."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    rows: int
    clicks: int
    auc: float | None
    log_loss: float
    base_log_loss: float  # a constant prediction at the training CTR, for comparison
    calibration: list[tuple[float, float, int]]

    def to_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "clicks": self.clicks,
            "auc": None if self.auc is None else round(self.auc, 4),
            "log_loss": round(self.log_loss, 6),
            "base_log_loss": round(self.base_log_loss, 6),
        }


@dataclass(frozen=True, slots=True)
class Trained:
    model: CtrModel
    train_days: tuple[int, ...]
    holdout_days: tuple[int, ...]
    train_rows: int
    holdout: Evaluation | None


# What the rows of each label are, for the error that there are none.
ROWS_OF = {"click": "shown bids", "conversion": "clicked bids"}


def split_days(
    examples: Examples, holdout_days: int, label: str = "click"
) -> tuple[list[int], list[int]]:
    """Row numbers of the training days and of the last ``holdout_days`` days."""
    days = sorted(set(examples.days))
    if not days:
        raise TrainingError(f"the archive holds no {ROWS_OF.get(label, 'rows')} to learn from")
    if holdout_days and len(days) <= holdout_days:
        raise TrainingError(
            f"the archive covers {len(days)} day(s): holding out {holdout_days} leaves none"
        )
    held = set(days[len(days) - holdout_days :]) if holdout_days else set()
    train_rows = [i for i, day in enumerate(examples.days) if day not in held]
    test_rows = [i for i, day in enumerate(examples.days) if day in held]
    return train_rows, test_rows


def fit(
    examples: Examples,
    holdout_days: int,
    config: TrainConfig = DEFAULT_CONFIG,
    label: str = "click",
) -> Trained:
    """Train on every day but the last ``holdout_days`` and evaluate on those."""
    train_rows, test_rows = split_days(examples, holdout_days, label)
    rows = [examples.rows[i] for i in train_rows]
    labels = [examples.labels[i] for i in train_rows]
    if not any(labels):
        raise TrainingError(
            f"the training days hold {len(rows)} {ROWS_OF.get(label, 'rows')} and no "
            f"{label}: nothing to learn from"
        )
    if config.features == AUTO:  # issue 12: the features the positives can support
        pooled = sum(labels) < AUTO_ALL_FROM
        config = dataclasses.replace(config, features="pooled" if pooled else "all")
    model = train(Design.build(rows, labels, config.bits, config.features), config)
    evaluation = None
    if test_rows:
        test = Design.build(
            [examples.rows[i] for i in test_rows],
            [examples.labels[i] for i in test_rows],
            config.bits,
            config.features,
        )
        predicted = model.predict(test)
        rate = float(np.clip(np.mean(labels) if labels else 0.0, 1e-6, 1 - 1e-6))
        evaluation = Evaluation(
            rows=len(test),
            clicks=int(test.labels.sum()),
            auc=auc(test.labels, predicted),
            log_loss=log_loss(test.labels, predicted),
            base_log_loss=log_loss(test.labels, np.full(len(test), rate)),
            calibration=calibration(test.labels, predicted),
        )
        model.meta["holdout"] = evaluation.to_dict()
    held = sorted({examples.days[i] for i in test_rows})
    kept = sorted({examples.days[i] for i in train_rows})
    return Trained(model, tuple(kept), tuple(held), len(train_rows), evaluation)


def train_archive(
    archive: Path,
    out: Path,
    *,
    holdout_days: int = 1,
    calibration_png: Path | None = None,
    config: TrainConfig = DEFAULT_CONFIG,
    progress: bool = False,
    label: str = "click",
) -> Trained:
    """The whole retraining: read, fit, write the model (atomically) and the chart.

    ``label`` "click" trains pCTR over shown bids; "conversion" (issue 12) trains pCVR over
    clicked bids, labelled by their click-through conversion."""
    if label not in LABELS:
        raise TrainingError(f"unknown label {label!r}: expected one of {', '.join(LABELS)}")
    if not archive.is_dir():
        raise TrainingError(f"{archive} is not a directory")
    examples = read_examples(archive, progress=progress, label=label)
    trained = fit(examples, holdout_days, config, label)
    trained.model.meta["label"] = label
    trained.model.save(out)
    if calibration_png is not None:
        calibration_chart(trained, calibration_png, "CVR" if label == "conversion" else "CTR")
    return trained


def calibration_chart(trained: Trained, path: Path, rate: str = "CTR") -> None:
    """Mean predicted rate (CTR, or CVR) against observed per decile of the held-out rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evaluation = trained.holdout
    points = evaluation.calibration if evaluation is not None else []
    fig, ax = plt.subplots(figsize=(5.5, 5.0), dpi=100)
    top = max([0.001, *(max(p, o) for p, o, _ in points)]) * 1.1
    ax.plot(
        [0, top * 100], [0, top * 100], color="#999999", linestyle="--", linewidth=1,
        label="perfect",
    )  # fmt: skip
    if points:
        predicted = [p * 100 for p, _, _ in points]
        observed = [o * 100 for _, o, _ in points]
        ax.plot(predicted, observed, marker="o", color="#1f6feb", label="held-out deciles")
    ax.set_xlim(0, top * 100)
    ax.set_ylim(0, top * 100)
    ax.set_xlabel(f"predicted {rate} (%)")
    ax.set_ylabel(f"observed {rate} (%)")
    title = f"{rate} model calibration"
    if evaluation is not None:
        auc_text = "n/a" if evaluation.auc is None else f"{evaluation.auc:.3f}"
        title += f"\nAUC {auc_text}, log loss {evaluation.log_loss:.4f} ({evaluation.rows} rows)"
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
