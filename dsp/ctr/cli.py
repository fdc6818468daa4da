"""``dsp ctr train``: retrain the CTR model (or the pCVR model) from the event archive.

    dsp ctr train --archive DATA/events --out ctr-model.npz --holdout-days 1 \
        --calibration-png calibration.png
    dsp ctr train --label conversion --archive DATA/events --out cvr-model.npz

``--label conversion`` (issue 12) trains the pCVR model target-CPA campaigns bid with: the
same features and file format, over the clicked bids, labelled by their click-through
conversion. A bidder loads it from ``DSP_CVR_MODEL`` (the CTR model: ``DSP_CTR_MODEL``).

Prints the held-out AUC and log loss (and a constant-rate baseline's log loss), then one
JSON line. A bidder given the model file reloads it within a refresh interval. Also runs
as ``python -m dsp.ctr``. Exit codes: 0 trained, 2 bad arguments or nothing to train on.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from dsp.ctr.dataset import LABELS
from dsp.ctr.features import DEFAULT_BITS, FEATURE_SETS
from dsp.ctr.training import (
    AUTO,
    AUTO_ALL_FROM,
    CVR_CONFIG,
    DEFAULT_CONFIG,
    TrainingError,
    train_archive,
)

COMMAND = "ctr"


def add_ctr_command(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        COMMAND,
        help="CTR model: retrain it from the event archive",
        description="CTR model for target-CPC bidding: `train` reads the event archive "
        "(bid events joined with clicks), holds out the last days, writes the model file.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    train = actions.add_parser(
        "train",
        help="train from an archive, print held-out AUC and log loss",
        description="Train logistic regression on hashed tag x creative x context features "
        "from an event archive; print AUC and log loss on the held-out days; write the "
        "model file (atomically) and a calibration chart. --label click (default) learns "
        "pCTR over shown bids; --label conversion learns pCVR over clicked bids.",
    )
    train.add_argument(
        "--label",
        choices=sorted(LABELS),
        default="click",
        help="what to predict: click (pCTR, for target CPC) or conversion (pCVR, for target "
        "CPA); default click",
    )
    train.add_argument("--archive", type=Path, required=True, help="event archive directory")
    train.add_argument("--out", type=Path, required=True, help="model file to write (.npz)")
    train.add_argument(
        "--holdout-days", type=int, default=1, help="last days held out for evaluation (default 1)"
    )
    train.add_argument("--calibration-png", type=Path, help="write a calibration chart here")
    train.add_argument(
        "--bits", type=int, default=DEFAULT_BITS, help=f"hash bits (default {DEFAULT_BITS})"
    )
    # issue 12: the defaults depend on --label (a pCVR model learns from a few dozen
    # conversions: small batches, more passes, more shrinkage, the pooled features)
    click, conversion = DEFAULT_CONFIG, CVR_CONFIG
    train.add_argument(
        "--epochs",
        type=int,
        help=f"passes over the data (default {click.epochs}; {conversion.epochs} for conversion)",
    )
    train.add_argument(
        "--batch",
        type=int,
        help=f"rows per step (default {click.batch}; {conversion.batch} for conversion)",
    )
    train.add_argument(
        "--l2",
        type=float,
        help=f"L2 shrinkage (default {click.l2:g}; {conversion.l2:g} for conversion)",
    )
    train.add_argument(
        "--features",
        choices=sorted([*FEATURE_SETS, AUTO]),
        help=f"feature set (default {click.features}; {conversion.features} for conversion: "
        f"pooled, i.e. the bias, matched-tag count and top score bucket only, below "
        f"{AUTO_ALL_FROM} conversions, else all)",
    )
    train.add_argument("--seed", type=int, default=1, help="shuffling seed (default 1)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_ctr)
    return parser


def run_ctr(args: argparse.Namespace, *_: object) -> int:
    base = CVR_CONFIG if args.label == "conversion" else DEFAULT_CONFIG
    config = dataclasses.replace(
        base,
        bits=args.bits,
        epochs=base.epochs if args.epochs is None else args.epochs,
        batch=base.batch if args.batch is None else args.batch,
        l2=base.l2 if args.l2 is None else args.l2,
        features=args.features or base.features,
        seed=args.seed,
    )
    if (
        args.holdout_days < 0
        or not 10 <= config.bits <= 26
        or config.epochs < 1
        or config.batch < 1
        or config.l2 < 0
    ):
        print(
            "dsp ctr: --holdout-days >= 0, --bits 10..26, --epochs >= 1, --batch >= 1, --l2 >= 0",
            file=sys.stderr,
        )
        return 2
    try:
        trained = train_archive(
            args.archive,
            args.out,
            holdout_days=args.holdout_days,
            calibration_png=args.calibration_png,
            config=config,
            progress=not args.no_progress,
            label=args.label,
        )
    except (TrainingError, OSError) as error:
        print(f"dsp ctr: {error}", file=sys.stderr)
        return 2
    summary: dict[str, object] = {
        "model": str(args.out),
        "label": args.label,
        "train_rows": trained.train_rows,
        "train_days": len(trained.train_days),
        "holdout_days": len(trained.holdout_days),
    }
    evaluation = trained.holdout
    if evaluation is not None:
        auc_text = "n/a" if evaluation.auc is None else f"{evaluation.auc:.4f}"
        rows, positives = (
            ("clicks", "conversions") if args.label == "conversion" else ("impressions", "clicks")
        )
        print(
            f"held-out {len(trained.holdout_days)} day(s): {evaluation.rows} {rows}, "
            f"{evaluation.clicks} {positives}, AUC {auc_text}, "
            f"log loss {evaluation.log_loss:.5f} "
            f"(constant-rate baseline {evaluation.base_log_loss:.5f})"
        )
        summary["holdout"] = evaluation.to_dict()
    else:
        print("no days held out: nothing to evaluate on")
    if args.calibration_png is not None:
        summary["calibration_png"] = str(args.calibration_png)
    print(orjson.dumps(summary).decode())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dsp.ctr", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_ctr_command(commands)
    args = parser.parse_args([COMMAND, *(sys.argv[1:] if argv is None else argv)])
    return int(args.run(args))
