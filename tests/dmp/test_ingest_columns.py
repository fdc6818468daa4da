"""The columnar fast path stores and rejects exactly what the per-line parser does."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import orjson
import pyarrow as pa  # type: ignore[import-untyped]
import pytest
from redis.asyncio import Redis

from dmp import resp
from dmp.benchmarks import write_devices
from dmp.errors import InvalidDeviceId
from dmp.ids import IdForm, parse_device_id
from dmp.ingest import ingest_file
from dmp.ingest_columns import ColumnReader, Columns, _canonical_imeis
from dmp.ingest_commands import BulkCommands
from dmp.ingest_worker import device_commands
from dmp.profile_store import ProfileStore
from dmp.taxonomy import Taxonomy
from infra import keys
from tests.dmp.test_ingest import BAD_LINES, NOW, raw_buckets

GAID = b"38400000-8cf0-11bd-b23e-10b96e40abcd"

MORE_LINES: list[object] = [
    {"id_type": "gaid", "id": "38400000-8CF0-11BD-B23E-10B96E40000D", "tags": [9]},
    {"id_type": "idfa", "id": " 6D92078A-8246-4BA4-AE5B-76104861E7DC ", "ttl_days": 3},
    {"id_type": "oaid", "id": "00000000-0000-0000-0000-000000000000"},
    {"id_type": "GAID", "id": "38400000-8cf0-11bd-b23e-10b96e40000e", "os": " Android "},
    {"id_type": "imei", "id": "49015420323751", "country": "chn", "region": "gd"},
    {"id_type": "mac", "id": "aa-bb-cc-dd-ee-01", "tags": [{"tag": "base.gender.female"}] * 2},
    {"id_type": "gaid_md5", "id": "0123456789abcdef0123456789ABCDEF", "price_tier": 0},
    {"id_type": "idfa", "id": "6D92078A-8246-4BA4-AE5B-76104861E7DD", "tags": [{"tag": "nope"}]},
    {"id_type": "idfa", "id": "6D92078A-8246-4BA4-AE5B-76104861E7DE", "price_tier": 12},
    {"id_type": "idfa", "id": "6D92078A-8246-4BA4-AE5B-76104861E7DF", "ttl_days": 0},
    {"id_type": "idfa", "id": "6D92078A-8246-4BA4-AE5B-76104861E7D0", "country": "China"},
    {"id_type": "gaid", "id": "38400000-8cf0-11bd-b23e-10b96e40000f", "tags": [
        {"tag": "interest.automotive.purchase_intent", "score": 101}]},
    {"id_type": "gaid", "id": "38400000-8cf0-11bd-b23e-10b96e400010", "tags": [
        {"tag": "base.gender.female", "score": 5}]},
    {"id_type": "gaid", "id": "38400000-8cf0-11bd-b23e-10b96e400011", "tags": [
        {"tag": "interest.automotive.suv", "ttl_days": 9999}, None]},
    {"id_type": "gaid", "id": "38400000-8cf0-11bd-b23e-10b96e400012", "tags": [
        {"tag": "interest.automotive.suv", "ttl_days": 2}, {"tag": "interest.automotive.suv"}]},
]  # fmt: skip


def mixed_file(path: Path) -> Path:
    """Population lines with odd and bad ones spread over them, and a repeated device."""
    write_devices(path, 900, seed=5)
    lines = path.read_bytes().splitlines(keepends=True)
    rng = random.Random(5)
    odd = [orjson.dumps(line) + b"\n" for line, _ in BAD_LINES]
    odd += [orjson.dumps(line) + b"\n" for line in MORE_LINES]
    odd += [b"not json\n", b"\n", lines[10], b'{"id_type":"gaid","id":"1","x":1e400}\n']
    odd.append(b'{"id_type":"gaid","id":"%s","x":%s}\n' % (GAID, b"[" * 1100 + b"]" * 1100))
    for line in odd:
        lines.insert(rng.randrange(len(lines)), line)
    path.write_bytes(
        b"".join(lines) + b'{"id_type":"idfa","id":"6D92078A-8246-4BA4-AE5B-76104861E7E0"}'
    )
    return path


async def stored(redis: Redis) -> tuple[object, object]:
    profiles = {digest: blob async for digest, blob in ProfileStore(redis).scan()}
    aliases = {
        key: {f: v for f, v in fields.items() if len(f) == keys.ALIAS_FIELD_BYTES}  # type: ignore[attr-defined]
        for key, fields in (await raw_buckets(redis)).items()
    }
    return profiles, aliases


def bare_codes_file(path: Path) -> Path:
    """Tags given as bare codes, in blocks of their own and mixed with ids in others."""
    write_devices(path, 300, seed=6)
    lines = []
    for number, line in enumerate(path.read_bytes().splitlines()):
        record = orjson.loads(line)
        codes: list[object] = [tag["tag"] for tag in record["tags"]]
        if number > 200 and number % 10 == 0:
            codes.append(9)
        if number == 50:
            codes.append("no.such.tag")
        lines.append(orjson.dumps({**record, "tags": codes}) + b"\n")
    path.write_bytes(b"".join(lines))
    return path


async def preload(redis: Redis, tmp_path: Path, count: int, seed: int) -> None:
    """Every other device of the population of ``seed``, stored five days before ``NOW``
    (other expiry days), for merge mode to merge into."""
    base = tmp_path / "base.jsonl"
    write_devices(base, count, seed=seed)
    base.write_bytes(b"".join(base.read_bytes().splitlines(keepends=True)[::2]))
    report = await ingest_file(
        redis, base, taxonomy=Taxonomy.default(), mode="replace", now=NOW - 5 * 86400,
        rejects_path=tmp_path / "base.rejects",
    )  # fmt: skip
    assert report.loaded == (count + 1) // 2


@pytest.mark.parametrize(
    ("workers", "make", "mode"),
    [
        (1, mixed_file, "replace"), (2, mixed_file, "replace"), (1, bare_codes_file, "replace"),
        (1, mixed_file, "merge"), (2, mixed_file, "merge"), (1, bare_codes_file, "merge"),
    ],
)  # fmt: skip
async def test_the_fast_path_stores_and_rejects_what_the_line_parser_does(
    redis: Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
    make: Callable[[Path], Path],
    mode: str,
) -> None:
    path = make(tmp_path / "devices.jsonl")
    taken: list[Columns] = []
    read = ColumnReader.read

    def spy(self: ColumnReader, data: bytes) -> Columns | None:
        found = read(self, data)
        if found is not None:
            taken.append(found)
        return found

    results = []
    for reader in (spy, lambda self, data: None):
        monkeypatch.setattr(ColumnReader, "read", reader)
        await redis.flushdb()
        if mode == "merge":  # half the devices stored already, with other expiry days
            await preload(redis, tmp_path, *((900, 5) if make is mixed_file else (300, 6)))
        report = await ingest_file(
            redis, path, taxonomy=Taxonomy.default(), mode=mode, now=NOW,
            batch_size=64, workers=workers,
        )  # fmt: skip
        rejects = "" if report.rejects_path is None else report.rejects_path.read_text()
        results.append((report.loaded, report.rejected, rejects, await stored(redis)))
    if workers == 1:  # forked workers spy in their own processes
        assert len(taken) >= 3 and any(columns.others for columns in taken)
    assert results[0][2] == results[1][2]
    assert results[0][:2] == results[1][:2]
    assert results[0][3] == results[1][3]


def test_device_commands_are_the_resp_of_their_hsets() -> None:
    primary, alias = bytes(range(8)), bytes(range(100, 108))
    found, count = device_commands((primary, alias, primary), b"blob", {})
    expected = resp.command(
        b"HSET", keys.profile_bucket(primary), keys.profile_field(primary), b"blob"
    ) + resp.command(b"HSET", keys.profile_bucket(alias), keys.alias_field(alias), primary)
    assert (found, count) == (expected, 2)


def test_bulk_commands_are_the_bytes_of_device_commands() -> None:
    rng = random.Random(3)
    devices = [
        (rng.randbytes(8), rng.randbytes(8), rng.randbytes(rng.choice((1, 9, 10, 99, 100, 2000))))
        for _ in range(500)
    ]
    bulk = BulkCommands()
    assert bulk.usable
    found = bulk.build(
        b"".join(d[0] for d in devices), b"".join(d[1] for d in devices), [d[2] for d in devices]
    )
    assert found == b"".join(device_commands(d[:2], d[2])[0] for d in devices)
    assert bulk.build(b"", b"", []) == b""
    # merge mode's presence reads: HMGET of each digest's profile and alias fields
    digests = [d[0] for d in devices]
    assert bulk.presence(b"".join(digests)) == b"".join(
        resp.command(b"HMGET", keys.profile_bucket(d), keys.profile_field(d), keys.alias_field(d))
        for d in digests
    )
    assert bulk.presence(b"") == b""


def test_blocks_pyarrow_cannot_read_are_soon_left_to_the_line_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dmp import ingest_columns
    from dmp.ingest_format import TagTable

    reads: list[int] = []
    real = ingest_columns._read

    def counted(data: bytes, lines: int, parse: object) -> object:
        reads.append(lines)
        return real(data, lines, parse)

    monkeypatch.setattr(ingest_columns, "_read", counted)
    reader = ColumnReader(TagTable(Taxonomy.default(), 2200))
    block = b'{"id_type":"gaid","id":"x","tags":[9,"base.gender.female"]}\n' * 64
    for _ in range(ingest_columns._GIVE_UP):
        assert reader.read(block) is None
    tried = len(reads)
    assert tried > ingest_columns._GIVE_UP
    assert reader.read(block) is None
    assert len(reads) == tried


def _luhn_ok(body: str) -> str:
    """An IMEI: ``body`` (14 digits) and its check digit, found by trying each."""
    for digit in "0123456789":
        try:
            parse_device_id("imei", body + digit)
        except InvalidDeviceId:
            continue
        return body + digit
    raise AssertionError("no check digit")


def test_the_vectorised_imei_check_keeps_exactly_the_imeis_parse_device_id_keeps() -> None:
    rng = random.Random(7)
    good = [_luhn_ok("".join(rng.choice("0123456789") for _ in range(14))) for _ in range(300)]
    wrong_check = [imei[:14] + str((int(imei[14]) + 1) % 10) for imei in good[:100]]
    values = [
        *good, *wrong_check, "0" * 15, "490154203237518", "49015420323751", " 490154203237518",
        "4901542032375180", "49015420323751x", "", "a" * 15,
    ]  # fmt: skip
    types = ["imei"] * len(values) + ["IMEI", "gaid"]
    values += ["490154203237518", "490154203237518"]
    kept = _canonical_imeis(pa.chunked_array([types]), pa.chunked_array([values]))
    for id_type, value, fast in zip(types, values, kept.tolist(), strict=True):
        try:
            device = parse_device_id(id_type, value)
            canonical = device.value == value and device.form is IdForm.RAW
        except InvalidDeviceId:
            canonical = False
        # the fast path takes only IDs already canonical; the rest go to parse_device_id
        assert fast == (canonical and id_type == "imei"), (id_type, value)
    assert sum(kept.tolist()) == len(good) + 1
