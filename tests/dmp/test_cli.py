from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from dmp.cli import main
from dmp.ids import parse_device_id
from dmp.profile import day_number, decode
from dmp.profile_store import ProfileStore
from dmp.taxonomy import Taxonomy

DMP = str(Path(sys.executable).parent / "dmp")
IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"


def run(*args: str, redis_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    return subprocess.run(
        [DMP, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_help_lists_the_commands() -> None:
    done = run("--help")
    assert done.returncode == 0
    assert "ingest" in done.stdout and "taxonomy" in done.stdout


def test_ingest_help_names_its_options() -> None:
    done = run("ingest", "--help")
    assert done.returncode == 0
    for option in ("--format", "--mode", "--rejects", "--batch-size", "--redis-url"):
        assert option in done.stdout


def test_main_returns_exit_codes_instead_of_exiting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["taxonomy", "--help"]) == 0
    assert main([]) == 2
    assert "usage: dmp" in capsys.readouterr().err


def test_taxonomy_searches_codes_and_names() -> None:
    done = run("taxonomy", "auto")
    assert done.returncode == 0
    assert "interest.automotive.purchase_intent" in done.stdout
    assert "base.gender.female" not in done.stdout
    as_json = run("taxonomy", "auto", "--json")
    rows = orjson.loads(as_json.stdout)
    assert rows and all("auto" in row["code"] or "auto" in row["name"].lower() for row in rows)
    assert run("taxonomy", "no-such-thing").returncode == 1


async def test_ingest_loads_a_file_and_prints_a_json_summary(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "devices.jsonl"
    good = {"id_type": "idfa", "id": IDFA, "tags": ["base.gender.female"]}
    path.write_bytes(orjson.dumps(good) + b"\nnot json\n")

    done = run("ingest", str(path), "--redis-url", redis_url, "--no-progress")

    assert done.returncode == 0, done.stderr
    summary = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert summary["loaded"] == 1 and summary["rejected"] == 1
    assert summary["rejects_file"] == f"{path}.rejects"
    assert {"seconds", "devices_per_s"} <= summary.keys()
    assert Path(summary["rejects_file"]).read_text().startswith("2\tline: not JSON")
    found = await ProfileStore(redis).lookup(parse_device_id("idfa", IDFA).digests())
    assert found is not None and found.profile is not None
    blob = found.profile
    female = Taxonomy.default().tag("base.gender.female").id
    assert female in decode(blob, day_number(0)).tags


async def test_ingest_reads_redis_url_from_the_environment(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "devices.csv"
    path.write_text(f"id_type,id,tags\nidfa,{IDFA},base.gender.female\n")
    done = run("ingest", str(path), "--mode", "replace", "--no-progress", redis_url=redis_url)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["loaded"] == 1
    assert await ProfileStore(redis).lookup(parse_device_id("idfa", IDFA).digests())


def test_ingest_without_a_redis_warns_and_uses_an_embedded_one(tmp_path: Path) -> None:
    path = tmp_path / "devices.jsonl"
    path.write_bytes(orjson.dumps({"id_type": "idfa", "id": IDFA}) + b"\n")
    done = run("ingest", str(path), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "embedded Redis" in done.stderr
    assert orjson.loads(done.stdout)["loaded"] == 1


def test_ingest_of_a_missing_file_exits_1_with_a_message(tmp_path: Path) -> None:
    done = run("ingest", str(tmp_path / "missing.jsonl"), "--redis-url", "redis://127.0.0.1:1")
    assert done.returncode == 1
    assert "cannot open" in done.stderr and "missing.jsonl" in done.stderr
    assert done.stdout == ""


def test_ingest_of_a_file_of_unknown_format_exits_1(tmp_path: Path, redis_url: str) -> None:
    path = tmp_path / "devices.txt"
    path.write_text("x\n")
    done = run("ingest", str(path), "--redis-url", redis_url)
    assert done.returncode == 1
    assert "--format" in done.stderr


def test_tokens_are_created_for_an_owner_and_revoked(redis_url: str) -> None:
    created = subprocess.run(
        [sys.executable, "-m", "dmp.cli", "tokens", "create", "--owner", "team-a",
         "--scope", "audiences", "--redis-url", redis_url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    token = created.stdout.strip()
    assert token.startswith("dmp_") and len(token) > 40
    revoked = subprocess.run(
        [sys.executable, "-m", "dmp.cli", "tokens", "revoke", "--token", token,
         "--redis-url", redis_url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert revoked.stdout.strip() == "revoked"


def test_serve_has_help() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "dmp.cli", "serve", "--help"], capture_output=True, text=True
    )
    assert shown.returncode == 0 and "--port" in shown.stdout
