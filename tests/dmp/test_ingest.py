from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from dmp.errors import IngestError
from dmp.ids import parse_device_id
from dmp.ingest import DEFAULT_BATCH_SIZE, IngestReport, detect_format, ingest_file, ingest_records
from dmp.profile import Profile, Snapshot, TagEntry, day_number, decode, decode_entries, encode
from dmp.profile_store import ProfileStore
from dmp.taxonomy import Taxonomy

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
TODAY = day_number(NOW)
IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
GAID = "38400000-8cf0-11bd-b23e-10b96e40000d"
IMEI = "490154203237518"
FEMALE = "base.gender.female"
INTENT = "interest.automotive.purchase_intent"  # scored
SUV = "interest.automotive.suv"


@pytest.fixture
def taxonomy() -> Taxonomy:
    return Taxonomy.default()


def tag_id(code: str) -> int:
    return Taxonomy.default().tag(code).id


def ttl(code: str) -> int:
    return Taxonomy.default().tag(code).ttl_days


def jsonl(path: Path, *lines: object) -> Path:
    text = "".join(
        (line if isinstance(line, str) else orjson.dumps(line).decode()) + "\n" for line in lines
    )
    path.write_text(text, encoding="utf-8")
    return path


async def load(
    redis: Redis,
    path: Path,
    taxonomy: Taxonomy,
    mode: str = "merge",
    rejects_path: Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> IngestReport:
    return await ingest_file(
        redis,
        path,
        taxonomy=taxonomy,
        mode=mode,
        rejects_path=rejects_path,
        now=NOW,
        batch_size=batch_size,
    )


async def blob_of(redis: Redis, id_type: str, value: str) -> bytes | None:
    found = await ProfileStore(redis).lookup(parse_device_id(id_type, value).digests())
    return None if found is None else found.profile


async def profile_of(redis: Redis, id_type: str, value: str) -> Profile:
    blob = await blob_of(redis, id_type, value)
    assert blob is not None, f"{id_type} {value} not stored"
    return decode(blob, TODAY)


async def dump(redis: Redis) -> dict[object, object]:
    return {key: await redis.hgetall(key) async for key in redis.scan_iter(match=b"dmp:p:*")}


async def test_good_lines_load_and_decode_back(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    path = jsonl(
        tmp_path / "devices.jsonl",
        {
            "id_type": "idfa",
            "id": IDFA.lower(),
            "os": "iOS",
            "model": "iPhone15,2",
            "price_tier": 3,
            "country": "chn",
            "region": "gd",
            "city": "Shenzhen",
            "make": "Apple",
            "lat": 22.5,
            "tags": [FEMALE, {"tag": INTENT, "score": 72, "ttl_days": 7}, tag_id(SUV)],
        },
        {"id_type": "gaid", "id": GAID, "ttl_days": 30, "tags": [SUV]},
    )
    report = await load(redis, path, taxonomy)
    assert (report.loaded, report.rejected, report.rejects_path) == (2, 0, None)
    assert not (tmp_path / "devices.jsonl.rejects").exists()

    profile = await profile_of(redis, "idfa", IDFA)
    assert profile.tags == {tag_id(FEMALE): 100, tag_id(INTENT): 72, tag_id(SUV): 100}
    assert (profile.os, profile.model, profile.price_tier) == ("ios", "iPhone15,2", 3)
    assert (profile.country, profile.region, profile.city) == ("CHN", "GD", "Shenzhen")
    blob = await blob_of(redis, "idfa", IDFA)
    assert blob is not None
    expiries = {e.tag_id: e.expires_day for e in decode_entries(blob)[1]}
    assert expiries == {
        tag_id(FEMALE): TODAY + ttl(FEMALE),
        tag_id(INTENT): TODAY + 7,
        tag_id(SUV): TODAY + ttl(SUV),
    }
    gaid_blob = await blob_of(redis, "gaid", GAID)
    assert gaid_blob is not None
    assert decode_entries(gaid_blob)[1] == [TagEntry(tag_id(SUV), TODAY + 30)]


async def found_by_hash(redis: Redis, form: str, text: str) -> bool:
    hexdigest = hashlib.new(form, text.encode()).hexdigest()
    return await blob_of(redis, f"idfa_{form}", hexdigest) is not None


async def test_a_device_given_by_idfa_is_found_by_its_md5_and_sha1(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    line = {"id_type": "idfa", "id": IDFA, "tags": [FEMALE]}
    await load(redis, jsonl(tmp_path / "a.jsonl", line), taxonomy)
    for form in ("md5", "sha1"):
        hexdigest = hashlib.new(form, IDFA.encode()).hexdigest()
        profile = await profile_of(redis, f"idfa_{form}", hexdigest)
        assert profile.tags == {tag_id(FEMALE): 100}
        # Hashes of other spellings (lower case) cost an alias each: only when asked for.
        assert not await found_by_hash(redis, form, IDFA.lower())


async def test_every_spelling_stores_an_alias_for_each_hash(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    path = jsonl(tmp_path / "a.jsonl", {"id_type": "idfa", "id": IDFA, "tags": [FEMALE]})
    await ingest_file(redis, path, taxonomy=taxonomy, now=NOW, every_spelling=True)
    for form in ("md5", "sha1"):
        for text in (IDFA, IDFA.lower()):
            assert await found_by_hash(redis, form, text)


async def test_more_ids_of_a_device_are_aliases_of_the_first(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    line = {
        "id_type": "idfa",
        "id": IDFA,
        "ids": [{"id_type": "imei", "id": IMEI}, {"id_type": "mac", "id": "a4-5e-60-c2-1b-9f"}],
        "tags": [FEMALE],
    }
    await load(redis, jsonl(tmp_path / "a.jsonl", line), taxonomy)
    for id_type, value in (("imei", IMEI), ("mac", "A4:5E:60:C2:1B:9F"), ("idfa", IDFA)):
        assert (await profile_of(redis, id_type, value)).tags == {tag_id(FEMALE): 100}
    imei_key = parse_device_id("imei", IMEI).key
    idfa_key = parse_device_id("idfa", IDFA).key
    assert await ProfileStore(redis).get_many([imei_key]) == [b"\x00" + idfa_key]


BAD_LINES = [
    ("not json", "line: not JSON"),
    ("[1, 2]", "line: expected a JSON object, got a list"),
    ({"id": IDFA, "tags": [FEMALE]}, "id_type: missing"),
    ({"id_type": "idfa", "tags": [FEMALE]}, "id: missing"),
    ({"id_type": "idfa", "id": 42}, "id: expected a string, got a number"),
    ({"id_type": "idfa", "id": "not-a-uuid"}, "id: invalid idfa 'not-a-uuid': not a UUID"),
    ({"id_type": "phone", "id": IDFA}, "id_type: unknown id type 'phone'"),
    ({"id_type": "idfa", "id": "00000000-0000-0000-0000-000000000000"}, "id: invalid idfa"),
    ({"id_type": "idfa", "id": IDFA, "tags": [FEMALE, SUV, "interest.foo"]},
     "tags[2]: unknown tag 'interest.foo'"),
    ({"id_type": "idfa", "id": IDFA, "tags": [99999]}, "tags[0]: unknown tag 99999"),
    ({"id_type": "idfa", "id": IDFA, "tags": [True]},
     "tags[0]: expected a tag code, id or object, got a boolean"),
    ({"id_type": "idfa", "id": IDFA, "tags": FEMALE}, "tags: expected a list, got a string"),
    ({"id_type": "idfa", "id": IDFA, "tags": [{"tag": INTENT, "score": 101}]},
     "tags[0].score: expected an integer 0..100, got 101"),
    ({"id_type": "idfa", "id": IDFA, "tags": [{"tag": INTENT, "score": -1}]},
     "tags[0].score: expected an integer 0..100, got -1"),
    ({"id_type": "idfa", "id": IDFA, "tags": [{"tag": FEMALE, "score": 50}]},
     "tags[0].score: 'base.gender.female' is not a scored tag"),
    ({"id_type": "idfa", "id": IDFA, "tags": [{"score": 50}]}, "tags[0].tag: missing"),
    ({"id_type": "idfa", "id": IDFA, "tags": [{"tag": SUV, "ttl_days": 0}]},
     "tags[0].ttl_days: expected an integer 1..3650, got 0"),
    ({"id_type": "idfa", "id": IDFA, "ttl_days": "7"}, "ttl_days: expected an integer 1..3650"),
    ({"id_type": "idfa", "id": IDFA, "price_tier": 12}, "price_tier: expected an integer 0..9"),
    ({"id_type": "idfa", "id": IDFA, "price_tier": "3"}, "price_tier: expected an integer 0..9"),
    ({"id_type": "idfa", "id": IDFA, "country": "CN"}, "country: expected an ISO 3166-1 alpha-3"),
    ({"id_type": "idfa", "id": IDFA, "os": 1}, "os: expected a string, got a number"),
    ({"id_type": "idfa", "id": IDFA, "city": "x" * 300}, "city: longer than 255 bytes"),
    ({"id_type": "idfa", "id": IDFA, "ids": [{"id_type": "imei", "id": "123"}]},
     "ids[0].id: invalid imei '123'"),
    ({"id_type": "idfa", "id": IDFA, "ids": {"id_type": "imei"}}, "ids: expected a list"),
]  # fmt: skip


async def test_bad_lines_are_rejected_with_their_number_and_reason_and_good_ones_load(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    good = {"id_type": "gaid", "id": GAID, "tags": [SUV]}
    lines: list[object] = [good, ""]  # a blank line is skipped, not rejected
    lines += [line for line, _ in BAD_LINES]
    lines.append({"id_type": "idfa", "id": IDFA, "tags": [FEMALE]})
    path = jsonl(tmp_path / "mixed.jsonl", *lines)

    report = await load(redis, path, taxonomy)

    assert (report.loaded, report.rejected) == (2, len(BAD_LINES))
    assert report.rejects_path == tmp_path / "mixed.jsonl.rejects"
    originals = path.read_text().splitlines()
    rejects = report.rejects_path.read_text(encoding="utf-8").splitlines()
    assert len(rejects) == len(BAD_LINES)
    for reject, (_, reason) in zip(rejects, BAD_LINES, strict=True):
        number, got_reason, text = reject.split("\t")
        assert got_reason.startswith(reason), (got_reason, reason)
        assert text == originals[int(number) - 1]
    assert [int(r.split("\t")[0]) for r in rejects] == list(range(3, 3 + len(BAD_LINES)))
    assert (await profile_of(redis, "gaid", GAID)).tags == {tag_id(SUV): 100}
    assert (await profile_of(redis, "idfa", IDFA)).tags == {tag_id(FEMALE): 100}


async def test_rejects_go_where_asked_and_a_clean_rerun_removes_a_stale_file(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    rejects = tmp_path / "out" / "bad.tsv"
    rejects.parent.mkdir()
    path = jsonl(tmp_path / "a.jsonl", "{oops")
    report = await load(redis, path, taxonomy, rejects_path=rejects)
    assert report.rejects_path == rejects
    assert rejects.read_text().startswith("1\tline: not JSON: ")
    jsonl(path, {"id_type": "idfa", "id": IDFA})
    assert (await load(redis, path, taxonomy, rejects_path=rejects)).rejects_path is None
    assert not rejects.exists()


async def test_merge_keeps_stored_tags_and_fields_and_takes_the_later_expiry(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    first = {
        "id_type": "idfa",
        "id": IDFA,
        "os": "ios",
        "city": "Shenzhen",
        "price_tier": 3,
        "tags": [FEMALE, {"tag": INTENT, "score": 40, "ttl_days": 30}],
    }
    second = {
        "id_type": "idfa",
        "id": IDFA,
        "city": "Guangzhou",
        "tags": [SUV, {"tag": INTENT, "score": 90, "ttl_days": 3}],
    }
    await load(redis, jsonl(tmp_path / "1.jsonl", first), taxonomy)
    await load(redis, jsonl(tmp_path / "2.jsonl", second), taxonomy)

    profile = await profile_of(redis, "idfa", IDFA)
    # INTENT's stored expiry (30 days) is later than the new one (3 days), so it stays.
    assert profile.tags == {tag_id(FEMALE): 100, tag_id(SUV): 100, tag_id(INTENT): 40}
    assert (profile.os, profile.city, profile.price_tier) == ("ios", "Guangzhou", 3)


async def test_merge_drops_tags_that_have_expired(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    digests = parse_device_id("idfa", IDFA).digests()
    stale = encode(Snapshot(os="ios"), [TagEntry(tag_id(SUV), TODAY - 1)])
    await ProfileStore(redis).put_many([(digests, stale)])
    line = {"id_type": "idfa", "id": IDFA, "tags": [FEMALE]}
    await load(redis, jsonl(tmp_path / "a.jsonl", line), taxonomy)
    blob = await blob_of(redis, "idfa", IDFA)
    assert blob is not None
    assert decode_entries(blob) == (
        Snapshot(os="ios"),
        [TagEntry(tag_id(FEMALE), TODAY + ttl(FEMALE))],
    )


async def test_replace_makes_the_line_the_whole_profile(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    first = {"id_type": "idfa", "id": IDFA, "os": "ios", "city": "Shenzhen", "tags": [FEMALE]}
    second = {"id_type": "idfa", "id": IDFA, "model": "iPhone16,1", "tags": [SUV]}
    await load(redis, jsonl(tmp_path / "1.jsonl", first), taxonomy)
    await load(redis, jsonl(tmp_path / "2.jsonl", second), taxonomy, mode="replace")
    profile = await profile_of(redis, "idfa", IDFA)
    assert profile.tags == {tag_id(SUV): 100}
    assert (profile.os, profile.model, profile.city) == ("", "iPhone16,1", "")


@pytest.mark.parametrize("mode", ["merge", "replace"])
async def test_lines_of_one_device_in_one_file_apply_in_order(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy, mode: str
) -> None:
    path = jsonl(
        tmp_path / "a.jsonl",
        {"id_type": "idfa", "id": IDFA, "os": "ios", "tags": [FEMALE]},
        {"id_type": "gaid", "id": GAID, "tags": [FEMALE]},
        {"id_type": "idfa", "id": IDFA.lower(), "tags": [SUV]},
    )
    await load(redis, path, taxonomy, mode=mode, batch_size=2)  # the IDFA spans two batches
    await load(redis, path, taxonomy, mode=mode, batch_size=10)  # and then sits in one
    profile = await profile_of(redis, "idfa", IDFA)
    if mode == "merge":
        assert (profile.tags, profile.os) == ({tag_id(FEMALE): 100, tag_id(SUV): 100}, "ios")
    else:
        assert (profile.tags, profile.os) == ({tag_id(SUV): 100}, "")


async def test_merge_follows_an_id_stored_as_an_alias_to_its_device(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    by_imei = {"id_type": "imei", "id": IMEI, "ids": [{"id_type": "idfa", "id": IDFA}]}
    await load(redis, jsonl(tmp_path / "1.jsonl", {**by_imei, "tags": [FEMALE]}), taxonomy)
    by_idfa = {"id_type": "idfa", "id": IDFA, "tags": [SUV]}
    await load(redis, jsonl(tmp_path / "2.jsonl", by_idfa), taxonomy)
    expected = {tag_id(FEMALE): 100, tag_id(SUV): 100}
    assert (await profile_of(redis, "imei", IMEI)).tags == expected
    assert (await profile_of(redis, "idfa", IDFA)).tags == expected


@pytest.mark.parametrize("mode", ["merge", "replace"])
async def test_loading_a_file_twice_stores_identical_bytes(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy, mode: str
) -> None:
    path = jsonl(
        tmp_path / "a.jsonl",
        {"id_type": "idfa", "id": IDFA, "os": "ios", "tags": [FEMALE, {"tag": INTENT, "score": 5}]},
        {"id_type": "gaid", "id": GAID, "ids": [{"id_type": "imei", "id": IMEI}], "tags": [SUV]},
        {"id_type": "idfa", "id": IDFA, "tags": [{"tag": INTENT, "score": 9}]},
        "not json",
    )
    await load(redis, path, taxonomy, mode=mode)
    before = await dump(redis)
    await load(redis, path, taxonomy, mode=mode)
    assert await dump(redis) == before
    assert (await profile_of(redis, "idfa", IDFA)).tags[tag_id(INTENT)] == 9


async def test_csv_input_loads_like_json_lines(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    path = tmp_path / "devices.csv"
    path.write_text(
        "\ufeffid_type,id,tags,os,model,price_tier,country,region,city\n"
        f'idfa,{IDFA},{FEMALE}|{INTENT}:72|{tag_id(SUV)}|,ios,"iPhone15,2",3,CHN,GD,Shenzhen\n'
        f"gaid,{GAID},{SUV},android,,,,,\n"
        "\n"
        f"idfa,{IDFA},{INTENT}:high,ios,x,1,CHN,GD,Shenzhen\n"
        f"gaid,{GAID},interest.foo,android,x,1,CHN,GD,Shenzhen\n"
        f"gaid,{GAID},{SUV},android,x,cheap,CHN,GD,Shenzhen\n"
        f"gaid,{GAID},{SUV}\n",
        encoding="utf-8",
    )
    report = await load(redis, path, taxonomy)
    assert (report.loaded, report.rejected) == (2, 4)
    profile = await profile_of(redis, "idfa", IDFA)
    assert profile.tags == {tag_id(FEMALE): 100, tag_id(INTENT): 72, tag_id(SUV): 100}
    assert (profile.model, profile.price_tier, profile.city) == ("iPhone15,2", 3, "Shenzhen")
    assert (await profile_of(redis, "gaid", GAID)).os == "android"
    assert report.rejects_path is not None
    reasons = [line.split("\t")[:2] for line in report.rejects_path.read_text().splitlines()]
    assert reasons == [
        ["5", "tags[0].score: expected an integer 0..100, got 'high'"],
        ["6", "tags[0]: unknown tag 'interest.foo'"],
        ["7", "price_tier: expected an integer 0..9, got 'cheap'"],
        ["8", "line: expected 9 fields, got 3"],
    ]


async def test_a_csv_header_without_ids_fails_the_whole_file(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    path = tmp_path / "a.csv"
    path.write_text("device,tags\nx,y\n")
    with pytest.raises(IngestError, match="header: no id_type or id column"):
        await load(redis, path, taxonomy)


@pytest.mark.parametrize("name", ["a.jsonl.gz", "a.csv.gz"])
async def test_gzipped_files_load(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy, name: str
) -> None:
    if name.startswith("a.csv"):
        text = f"id_type,id,tags\nidfa,{IDFA},{FEMALE}\n"
    else:
        text = orjson.dumps({"id_type": "idfa", "id": IDFA, "tags": [FEMALE]}).decode() + "\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()))
    assert (await load(redis, path, taxonomy)).loaded == 1
    assert (await profile_of(redis, "idfa", IDFA)).tags == {tag_id(FEMALE): 100}


async def test_a_byte_order_mark_and_a_bad_utf8_csv_row_are_handled(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    line = orjson.dumps({"id_type": "idfa", "id": IDFA, "tags": [FEMALE]})
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + line + b"\n")
    assert (await load(redis, path, taxonomy)).loaded == 1
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        f"id_type,id,city\nidfa,{IDFA},M\xfcnchen\n".encode("latin-1")
        + f"gaid,{GAID},Shenzhen\n".encode()
    )
    report = await load(redis, path, taxonomy)
    assert (report.loaded, report.rejected) == (1, 1)
    assert report.rejects_path is not None
    assert report.rejects_path.read_text().startswith("2\tline: not UTF-8\tidfa,")


async def test_an_unknown_mode_is_refused(redis: Redis, tmp_path: Path, taxonomy: Taxonomy) -> None:
    path = jsonl(tmp_path / "a.jsonl", {"id_type": "idfa", "id": IDFA})
    with pytest.raises(IngestError, match="mode: expected one of merge, replace"):
        await load(redis, path, taxonomy, mode="upsert")


def test_format_comes_from_the_extension_or_is_given() -> None:
    assert detect_format(Path("x.NDJSON")) == "jsonl"
    assert detect_format(Path("x.json.gz")) == "jsonl"
    assert detect_format(Path("x.csv.gz")) == "csv"
    assert detect_format(Path("x.txt"), "csv") == "csv"
    with pytest.raises(IngestError, match="--format"):
        detect_format(Path("x.txt"))


async def test_records_in_memory_load_and_bad_ones_are_skipped(
    redis: Redis, taxonomy: Taxonomy
) -> None:
    records: list[dict[str, object]] = [
        {"id_type": "idfa", "id": IDFA, "tags": [FEMALE]},
        {"id_type": "idfa", "id": "nope"},
        {"id_type": "gaid", "id": GAID, "tags": [{"tag": INTENT, "score": 61}]},
    ]
    loaded = await ingest_records(redis, records, taxonomy=taxonomy, mode="merge", now=NOW)
    assert loaded == 2
    assert (await profile_of(redis, "gaid", GAID)).tags == {tag_id(INTENT): 61}


async def test_a_missing_file_raises_os_error(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    with pytest.raises(FileNotFoundError):
        await load(redis, tmp_path / "missing.jsonl", taxonomy)


async def stored_profiles(redis: Redis) -> dict[bytes, bytes]:
    return {digest: blob async for digest, blob in ProfileStore(redis).scan()}


async def raw_buckets(redis: Redis) -> dict[bytes, object]:
    return {key: await redis.hgetall(key) async for key in redis.scan_iter(match=b"dmp:p:*")}


def population_file(path: Path, devices: int) -> Path:
    from dmp.benchmarks import write_devices

    write_devices(path, devices, seed=3)
    with path.open("ab") as file:  # a device given again later, and a bad line
        file.write(path.read_bytes().splitlines(keepends=True)[5])
        file.write(b'{"id_type": "idfa", "id": "nope"}\n')
    return path


@pytest.mark.parametrize("mode", ["merge", "replace"])
async def test_worker_processes_store_what_one_process_stores(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy, mode: str
) -> None:
    path = population_file(tmp_path / "devices.jsonl", 1200)
    results = []
    for workers in (1, 2):
        await redis.flushdb()
        report = await ingest_file(
            redis, path, taxonomy=taxonomy, mode=mode, now=NOW, batch_size=100, workers=workers
        )
        assert (report.loaded, report.rejected) == (1201, 1)
        assert (tmp_path / "devices.jsonl.rejects").read_text().startswith("1202\t")
        results.append(await stored_profiles(redis))
    assert len(results[0]) == 1200
    assert results[0] == results[1]


async def test_a_reload_stores_the_same_bytes(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    path = population_file(tmp_path / "devices.jsonl", 600)
    await ingest_file(redis, path, taxonomy=taxonomy, now=NOW, batch_size=100, workers=2)
    first = await raw_buckets(redis)
    await ingest_file(redis, path, taxonomy=taxonomy, now=NOW, batch_size=100, workers=2)
    assert await raw_buckets(redis) == first
    await ingest_file(redis, path, taxonomy=taxonomy, now=NOW, mode="replace", workers=1)
    assert await raw_buckets(redis) == first


async def test_merge_across_chunks_and_processes_keeps_file_order(
    redis: Redis, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    filler = [
        {"id_type": "gaid", "id": f"38400000-8cf0-11bd-b23e-10b96e40{n:04x}"} for n in range(300)
    ]
    lines: list[object] = [
        {"id_type": "idfa", "id": IDFA, "city": "Shenzhen", "tags": [FEMALE]},
        *filler,
        {"id_type": "idfa", "id": IDFA, "city": "Guangzhou", "tags": [SUV]},
    ]
    path = jsonl(tmp_path / "a.jsonl", *lines)
    await ingest_file(redis, path, taxonomy=taxonomy, now=NOW, batch_size=50, workers=2)
    profile = await profile_of(redis, "idfa", IDFA)
    assert profile.tags == {tag_id(FEMALE): 100, tag_id(SUV): 100}
    assert profile.city == "Guangzhou"
