"""issue 12, item 4: ``dsp ctr train --label conversion`` trains the pCVR model from an archive."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from dsp.cli import main
from dsp.ctr.dataset import MS_PER_DAY as DAY
from dsp.ctr.features import Row
from dsp.ctr.model import CtrModel
from tests.dsp.ctr.test_ctr import DAY0, SEDAN, SUV, write_archive


def clicked_history(n: int, seed: int, *, converting: bool = True) -> list[dict[str, Any]]:
    """Three days of clicked bids (and some shown, unclicked ones): SUV clicks convert at
    12 %, sedan ones at 2 %."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for i in range(n):
        suv = rng.random() < 0.5
        ts = DAY0 + (i * 3 // n) * DAY + rng.randrange(DAY // 2)
        key = {"auction": f"a{i}", "imp": "1", "campaign": "c1", "creative": "cr1"}
        events.append(
            {"type": "bid", "ts": ts, **key, "device": "", "tags": [SUV if suv else SEDAN],
             "price": 2_000_000, "site_cat": ["IAB2"], "os": "ios", "w": 300, "h": 250}
        )  # fmt: skip
        events.append({"type": "imp", "ts": ts + 1, **key, "price": 0})
        if i % 4:  # three bids in four are clicked, the rest only shown
            events.append({"type": "click", "ts": ts + 2, **key, "price": 0})
            if converting and rng.random() < (0.12 if suv else 0.02):
                events.append(
                    {"type": "conversion", "ts": ts + 3, **key, "price": 5_000_000,
                     "order": f"o{i}", "touch_ts": ts + 2}
                )  # fmt: skip
    return events


def train(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["ctr", "train", "--no-progress", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_label_conversion_learns_pcvr_over_clicked_bids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_archive(tmp_path / "events", clicked_history(12_000, seed=3))
    out = tmp_path / "cvr.npz"
    code, text, err = train(
        capsys, "--label", "conversion", "--archive", str(tmp_path / "events"),
        "--out", str(out), "--calibration-png", str(tmp_path / "cvr.png"),
    )  # fmt: skip
    assert code == 0, err
    assert "clicks" in text and "conversions" in text and "AUC" in text
    summary = orjson.loads(text.strip().splitlines()[-1])
    assert summary["label"] == "conversion"
    # Rows are the clicked bids (3 in 4 of them), the last day held out.
    assert 5_000 < summary["train_rows"] < 7_000
    assert summary["holdout"]["auc"] > 0.65
    model = CtrModel.load(out)
    assert model.meta["label"] == "conversion"
    suv, sedan = model.predict_rows(
        [Row("cr1", (tag,), ("IAB2",), "ios", 300, 250) for tag in (SUV, SEDAN)]
    )
    assert 0.08 < suv < 0.17 and 0.01 < sedan < 0.05 and suv > 2.5 * sedan  # truth: 12 %, 2 %
    assert (tmp_path / "cvr.png").read_bytes()[:4] == b"\x89PNG"


def test_clear_errors_without_clicks_or_conversions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    no_conversions = tmp_path / "no-conversions"
    write_archive(no_conversions, clicked_history(400, seed=4, converting=False))
    code, _, err = train(
        capsys, "--label", "conversion", "--archive", str(no_conversions),
        "--out", str(tmp_path / "cvr.npz"),
    )  # fmt: skip
    assert code == 2 and "no conversion" in err, err
    assert not (tmp_path / "cvr.npz").exists()

    no_clicks = tmp_path / "no-clicks"
    shown_only = [e for e in clicked_history(400, seed=4) if e["type"] in ("bid", "imp")]
    write_archive(no_clicks, shown_only)
    code, _, err = train(
        capsys, "--label", "conversion", "--archive", str(no_clicks),
        "--out", str(tmp_path / "cvr.npz"),
    )  # fmt: skip
    assert code == 2 and "no clicked bids" in err, err

    code, _, err = train(
        capsys, "--label", "conversion", "--archive", str(tmp_path / "missing"),
        "--out", str(tmp_path / "cvr.npz"),
    )  # fmt: skip
    assert code == 2 and "not a directory" in err

    with pytest.raises(SystemExit) as exited:
        train(capsys, "--label", "purchase", "--archive", str(no_clicks), "--out", "x.npz")
    assert exited.value.code == 2
    assert "--label" in capsys.readouterr().err


def test_help_names_the_label(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["ctr", "train", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "--label {click,conversion}" in text and "pCVR" in text
