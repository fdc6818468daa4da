from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import orjson

from adx_mock.population import generate_population
from dmp.taxonomy import Taxonomy

from .fake_dsp import FakeDsp, serve


def _command() -> list[str]:
    script = Path(sys.executable).parent / "adx-mock"
    if script.exists():
        return [str(script)]
    found = shutil.which("adx-mock")
    return [found] if found else [sys.executable, "-m", "adx_mock.cli"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_command(), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_help() -> None:
    for args in ([], ["population"], ["run"]):
        done = _run(*args, "--help")
        assert done.returncode == 0, done.stderr
        assert "usage: adx-mock" in done.stdout
    assert "--dsp" in _run("run", "--help").stdout


def test_population_command(tmp_path: Path) -> None:
    out = tmp_path / "devices.jsonl"
    done = _run("population", "--devices", "40", "--seed", "6", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout.splitlines()[-1])["devices"] == 40
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert records == list(generate_population(40, 6, Taxonomy.default()))


def test_bad_arguments_exit_2() -> None:
    for args in (
        ["run", "--dsp", "http://127.0.0.1:9/bid", "--qps", "0"],
        ["run", "--dsp", "http://127.0.0.1:9/bid", "--tmax", "-5"],
        ["run", "--dsp", "127.0.0.1:9/bid"],
        ["run", "--dsp", "http://127.0.0.1:9/bid", "--auction", "third"],
        ["run"],
        ["population", "--devices", "5"],
    ):
        done = _run(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert "error" in done.stderr
    done = _run("run", "--dsp", "http://127.0.0.1:9/bid", "--population", "/nonexistent.jsonl")
    assert done.returncode == 2 and "nonexistent" in done.stderr


async def test_run_command_prints_summary_last() -> None:
    async with serve(FakeDsp("cli", price=1.5)) as dsp:
        process = await asyncio.create_subprocess_exec(
            *_command(),
            "run",
            "--dsp",
            dsp.bid_url,
            "--qps",
            "200",
            "--requests",
            "20",
            "--devices",
            "100",
            # What is checked is the summary, not timing: a loaded CI machine once answered
            # one of the 20 past the default 100 ms.
            "--tmax",
            "2000",
            "--no-progress",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    summary = orjson.loads(stdout.decode().strip().splitlines()[-1])
    assert summary["requests"] == 20 == len(dsp.requests)
    assert summary["wins"] == len(dsp.hits("win")) > 0
    assert summary["per_dsp"][dsp.bid_url]["bids"] == 20
