"""Bid request bodies for the exchange scenario: real OpenRTB requests and synthetic ones.

A body is kept as a *template*: compact JSON whose top-level ``id`` is a marker, so each
send gets a fresh auction id by one string replacement (no JSON work while loading the
bidder). A real exchange never repeats an auction id, and the tracking ledger counts a
win once per auction: replayed ids would turn the tracking scenario into duplicates.
"""

from __future__ import annotations

import itertools
import os
import random
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

import orjson

from adx_mock.supply import SupplyConfig, build_request

ID_MARKER = "__loadtest_auction_id__"
_MARKED = orjson.dumps(ID_MARKER).decode()
TMAX_MS = 100  # the tmax of synthetic requests, as an exchange sets it


def corpus_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The shared corpus: ``CORPUS_DIR``, else ``../shared/corpus`` beside the repository."""
    given = environ.get("CORPUS_DIR")
    return Path(given) if given else Path(__file__).resolve().parents[2] / "shared" / "corpus"


def template(request: Mapping[str, object]) -> str:
    """``request`` as compact JSON with the auction-id marker in place of its ``id``."""
    return orjson.dumps({**request, "id": ID_MARKER}).decode()


def corpus_templates(directory: Path) -> list[str]:
    """Every request of ``openrtb/valid`` (each must get 200 or 204, never an error)."""
    files = sorted((directory / "openrtb" / "valid").glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no OpenRTB requests in {directory / 'openrtb' / 'valid'}")
    return [template(orjson.loads(path.read_bytes())) for path in files]


def synthetic_templates(records: Iterable[Mapping[str, object]], seed: int) -> list[str]:
    """One request per DMP record, naming the record's device (stored by the runner)."""
    rng = random.Random(seed)
    config = SupplyConfig(tmax_ms=TMAX_MS, unknown_device_share=0.0)
    return [template(build_request(rng, record, config)) for record in records]


def write_templates(path: Path, templates: Iterable[str]) -> int:
    """Templates one a line (compact JSON has no newline); returns how many were written."""
    count = 0
    with path.open("w", encoding="utf-8") as file:
        for line in templates:
            file.write(line + "\n")
            count += 1
    return count


def read_templates(path: Path) -> list[str]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line]
    if not lines:
        raise ValueError(f"no request templates in {path}")
    return lines


class Stamper:
    """Fresh auction ids: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = f"lt-{secrets.token_hex(4)}-"
        self._counter = itertools.count()

    def stamp(self, template: str) -> str:
        auction_id = orjson.dumps(f"{self._prefix}{next(self._counter)}").decode()
        return template.replace(_MARKED, auction_id, 1)
