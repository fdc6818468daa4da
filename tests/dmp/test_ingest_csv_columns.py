"""The CSV fast path stores and rejects exactly what the per-line CSV parser does."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from dmp import ingest
from dmp.benchmarks import write_devices_csv
from dmp.ingest import ingest_file
from dmp.ingest_columns import Columns
from dmp.ingest_csv_columns import CsvColumnReader, Header, Layout, plain_block
from dmp.taxonomy import Taxonomy
from tests.dmp.test_ingest import FEMALE, GAID, IDFA, INTENT, NOW, SUV, tag_id
from tests.dmp.test_ingest_columns import preload, stored

G2 = "38400000-8cf0-11bd-b23e-10b96e4000"  # + two hex digits
I2 = "6D92078A-8246-4BA4-AE5B-76104861E7"


def odd_rows() -> list[bytes]:
    """Rows of every kind the per-line parser rejects or reads specially (9 columns, then
    ``ttl_days`` and an unknown one)."""
    place = "CHN,GD,Shenzhen"
    rows = [
        # the CSV tests' rows
        f'idfa,{I2}01,{FEMALE}|{INTENT}:72|{tag_id(SUV)}|,ios,"iPhone15,2",3,{place},,x',
        f"gaid,{G2}02,{SUV},android,,,,,,,",
        "",
        f"idfa,{I2}03,{INTENT}:high,ios,x,1,{place},,",
        f"gaid,{G2}04,interest.foo,android,x,1,{place},,",
        f"gaid,{G2}05,{SUV},android,x,cheap,{place},,",
        f"gaid,{G2}06,{SUV}",
        # more of them
        f'gaid,{G2}07,{SUV},android,"two\nlines",1,{place},,',
        f'gaid,{G2}08,{SUV},android,"a""b",1,{place},,',
        f'gaid,{G2}09,{SUV},android,a"b,1,{place},,',
        f'gaid,{G2}10,{SUV},android, "x,y",1,{place},,',
        f" gaid , {G2}11 ,  {SUV} | {FEMALE} ,  Android ,m, 3 , chn , gd , X , 7 ,",
        f"gaid,{G2}12,{SUV},android,x,1,{place},,\r",
        f"gaid,{G2}13,:5|{SUV}||,android,x,1,{place},,",
        f"gaid,{G2}14,{FEMALE}:5,android,x,1,{place},,",
        f"gaid,{G2}15,{INTENT}:,android,x,1,{place},,",
        f"gaid,{G2}16,{INTENT}:101,android,x,1,{place},,",
        f"gaid,{G2}17,{INTENT}: 07 ,android,x,1,{place},,",
        f"gaid,{G2}18,{INTENT}:\u0663,android,x,1,{place},,",
        f"phone,{G2}19,{SUV},android,x,1,{place},,",
        f"idfa,not-a-uuid,{SUV},android,x,1,{place},,",
        f"idfa,,{SUV},android,x,1,{place},,",
        f"oaid,00000000-0000-0000-0000-000000000000,{SUV},android,x,1,{place},,",
        f"idfa,{I2.lower()}20,{SUV},ios,x,1,{place},,",
        f"mac,AA:BB:CC:DD:EE:21,{SUV},android,x,1,{place},,",
        f"imei,490154203237518,{SUV},android,x,1,{place},,",
        f"gaid,{G2}22,{SUV},android,x,1,CN,GD,Shenzhen,,",
        f"gaid,{G2}23,{SUV},android,x,1,CHN,GD,{'x' * 300},,",
        f"gaid,{G2}24,{SUV},android,x,1,CHN,GD,\u3000Shenzhen\x1f,,",
        f"gaid,{G2}25,{SUV},android,x,03,{place},0,",
        f"gaid,{G2}26,{SUV},android,x,1,{place},abc,",
        f"gaid,{G2}27,{SUV},android,x,1,{place},\u0663,",
        f"gaid,{G2}28,{SUV},android,x,1,{place},3650,",
        f"gaid,{G2}29,{SUV},android,x,1,{place},,,",
        f"gaid,{G2}30,{'|'.join([SUV] * 1100)},android,x,1,{place},,",
        f"gaid,{G2}31,{tag_id(SUV)}|99999,android,x,1,{place},,",
        f"gaid,{GAID},{SUV},android,x,1,{place},,",
        f"idfa,{IDFA},{SUV},ios,x,1,{place},,",
    ]
    found = [row.encode() + b"\n" for row in rows]
    found.append(f"idfa,{I2}32,{SUV},ios,M\xfcnchen,1,{place},,\n".encode("latin-1"))
    found.append(f"idfa,{I2}33,{SUV},ios,x,1,{place},,\x00\n".encode())
    return found


def mixed_csv(path: Path) -> Path:
    """Population rows with odd and bad ones spread over them, devices given twice, a
    quoted field over many lines (and blocks), and a quote never closed at the end."""
    write_devices_csv(path, 900, seed=5)
    header, *lines = path.read_bytes().splitlines(keepends=True)
    lines = [line[:-1] + b",,x\n" for line in lines]
    rng = random.Random(5)
    odd = odd_rows() + [lines[10], lines[500], lines[501]]
    many = "x\n" * 100
    odd.append(f'gaid,{G2}34,{SUV},android,"{many}",1,CHN,GD,X,,\n'.encode())
    for line in odd:
        lines.insert(rng.randrange(len(lines)), line)
    end = f'gaid,{G2}35,{SUV},android,"never closed\n{lines[3].decode()}'.encode()
    path.write_bytes(header[:-1] + b",ttl_days,extra\n" + b"".join(lines) + end)
    return path


def crlf_csv(path: Path) -> Path:
    """``mixed_csv`` with CR LF line ends (and a lone CR in one row)."""
    mixed_csv(path)
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    return path


def plain_file(path: Path) -> Path:
    write_devices_csv(path, 700, seed=7)
    return path


@pytest.mark.parametrize(
    ("workers", "make", "mode"),
    [
        (1, mixed_csv, "replace"), (2, mixed_csv, "replace"), (1, crlf_csv, "replace"),
        (1, plain_file, "replace"), (2, plain_file, "replace"),
        (1, mixed_csv, "merge"), (2, mixed_csv, "merge"), (2, plain_file, "merge"),
    ],
)  # fmt: skip
async def test_the_csv_fast_path_stores_and_rejects_what_the_line_parser_does(
    redis: Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
    make: Callable[[Path], Path],
    mode: str,
) -> None:
    path = make(tmp_path / "devices.csv")
    taken: list[Columns] = []
    read = CsvColumnReader.read_csv

    def spy(
        self: CsvColumnReader, data: bytes, header: Header, layout: Layout | None = None
    ) -> Columns | None:
        found = read(self, data, header, layout)
        if found is not None:
            taken.append(found)
        return found

    monkeypatch.setattr(CsvColumnReader, "read_csv", spy)
    results = []
    for per_line in (False, True):
        if per_line:  # the whole file through the per-line parser
            monkeypatch.setattr(ingest, "_csv_header_of", lambda first: None)
        await redis.flushdb()
        if mode == "merge":  # half the devices stored already, with other expiry days
            await preload(redis, tmp_path, *((700, 7) if make is plain_file else (900, 5)))
        report = await ingest_file(
            redis, path, taxonomy=Taxonomy.default(), mode=mode, now=NOW,
            batch_size=64, workers=workers,
        )  # fmt: skip
        rejects = "" if report.rejects_path is None else report.rejects_path.read_text()
        results.append((report.loaded, report.rejected, rejects, await stored(redis)))
    if workers == 1:  # forked workers spy in their own processes
        assert len(taken) >= 5
        if make is not plain_file:
            assert any(columns.others for columns in taken)
    assert results[0][2] == results[1][2]
    assert results[0][:2] == results[1][:2]
    assert results[0][3] == results[1][3]
    if make is not plain_file:
        assert results[0][1] > 15
    else:
        assert results[0][:2] == (700, 0)


def test_plain_blocks_are_those_whose_lines_are_rows() -> None:
    assert plain_block(b'a,"b,c",d\n"",x,"y"\n')
    assert plain_block(b"a,b\nc,d")
    assert not plain_block(b'a,"b\nc",d\n')
    assert not plain_block(b'a,"b""c",d\n')
    assert not plain_block(b'a,b"c,d\n')
    assert not plain_block(b'a, "b",d\n')
    assert plain_block(b'a,"b"\r\nc,d\r\n')
    assert not plain_block(b"a,b\rc\n")
    assert not plain_block(b"a,\xfc\n")


async def test_quoted_rows_across_worker_ranges_are_read_on_and_later_rows_load_once(
    redis: Redis, tmp_path: Path
) -> None:
    """Workers read 512-byte ranges here (batch_size 1): rows with a quoted field over many
    lines cross range ends, so the loader parses them itself, reading on, and the rows after
    them, in ranges the workers parsed too, load once and keep their line numbers."""
    path = tmp_path / "devices.csv"
    write_devices_csv(path, 120, seed=9)
    header, *lines = path.read_bytes().splitlines(keepends=True)
    many = "y\n" * 110
    for at in (10, 30, 50, 70, 90, 99):
        lines.insert(at, f'gaid,{G2}{at:02d},{SUV},android,"{many}",1,CHN,GD,X\n'.encode())
    lines.insert(60, b"gaid,not-an-id,,,,,,,\n")
    text = header + b"".join(lines)
    path.write_bytes(text)
    quoted = [m.start() for m in re.finditer(b'"y', text)]
    assert any(start // 512 != (start + len(many)) // 512 for start in quoted)
    found = []
    for workers in (2, 1):
        await redis.flushdb()
        report = await ingest_file(
            redis, path, taxonomy=Taxonomy.default(), mode="replace", now=NOW,
            batch_size=1, workers=workers,
        )  # fmt: skip
        assert report.rejects_path is not None
        rejects = report.rejects_path.read_text()
        found.append((report.loaded, report.rejected, rejects, await stored(redis)))
    assert found[0] == found[1]
    assert found[0][:2] == (126, 1)
    bad = text[: text.index(b"not-an-id")].count(b"\n") + 1
    assert found[0][2].startswith(f"{bad}\tid: invalid gaid 'not-an-id'")
