"""The worker-process side of a load: one ``ChunkParser`` per process, made by the pool.

A process pool initializer can only leave its state in the process's module, hence the one
global here; nothing else in the package keeps state this way.
"""

from __future__ import annotations

import gc
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import redis

from dmp.ingest_csv_columns import Header, plain_block, plain_layout
from dmp.ingest_ranges import BOM, ByteRange, read_path_range
from dmp.ingest_worker import ChunkParser, ChunkResult, Settings
from dmp.profile_refs import INTERN_LUA
from infra import keys
from infra.malloc import retain_freed_memory

_state: dict[str, Any] = {}


def redis_options(connection_kwargs: dict[str, Any]) -> dict[str, Any]:
    """What a worker needs to reach the loader's server (picklable)."""
    names = ("host", "port", "db", "password", "username", "path")
    return {name: connection_kwargs[name] for name in names if connection_kwargs.get(name)}


def start(settings: Settings, options: dict[str, Any]) -> None:
    """Pool initializer: the parser, and a client that only interns new snapshots."""
    # A worker allocates millions of short-lived acyclic objects: collect rarely.
    gc.freeze()
    # One process a core already: arrow's own thread pools would only contend with them.
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    gc.set_threshold(50_000, 50, 100)
    # Blocks allocate and drop tens of megabytes of arrays: reuse the pages (infra.malloc).
    retain_freed_memory()
    path = options.pop("path", None)
    client = redis.Redis(unix_socket_path=path, **options) if path else redis.Redis(**options)
    script = client.register_script(INTERN_LUA)

    def intern(snapshots: list[bytes]) -> list[bytes]:
        refs = script(keys=[keys.SNAPSHOTS, keys.SNAPSHOT_REFS], args=snapshots)
        return [bytes(ref) for ref in refs]

    _state["parser"] = ChunkParser(settings)
    _state["intern"] = intern


def warm_up(settings: Settings, sample: bytes, header: Header | None) -> None:
    """Parse ``sample`` (whole lines from the file's start) once with a throwaway parser, in
    the loader before it forks. Every worker then starts with pyarrow's CSV reader and
    kernels set up and the interpreter's bytecode specialised, instead of paying some 60 ms
    of CPU on its first block. Nothing is written anywhere: snapshots stay inline."""
    if header is not None and not plain_block(sample):
        return
    parser = ChunkParser(settings)

    def inline(snapshots: list[bytes]) -> list[bytes]:
        return [b""] * len(snapshots)

    if header is None:
        parser.parse_json(sample, 1, inline)
    else:
        parser.parse_csv(sample, 1, header, inline)


def parse_json(text: bytes, first_line: int) -> ChunkResult:
    """One chunk of JSON Lines, numbered from ``first_line``."""
    parser: ChunkParser = _state["parser"]
    return parser.parse_json(text, first_line, _state["intern"])


def parse_csv(text: bytes, first_line: int, header: Header) -> ChunkResult:
    """One block of plain CSV lines (no header), numbered from ``first_line``."""
    parser: ChunkParser = _state["parser"]
    return parser.parse_csv(text, first_line, header, _state["intern"])


def parse_json_range(path: str, span: ByteRange) -> ChunkResult:
    """The JSON lines starting in ``span`` of the file, numbered from 1 (the loader renumbers)."""
    parser: ChunkParser = _state["parser"]
    text = read_path_range(path, span)
    if span.start == 0:
        text = text.removeprefix(BOM)
    return parser.parse_json(text, 1, _state["intern"])


def parse_csv_range(path: str, span: ByteRange, header: Header) -> ChunkResult | None:
    """The CSV rows starting in ``span``, numbered from 1; None when its lines are not one row
    each (``plain_block``), for the loader to parse them itself, reading on."""
    parser: ChunkParser = _state["parser"]
    text = read_path_range(path, span)
    layout = plain_layout(text) if text else None
    if text and layout is None:
        return None
    return parser.parse_csv(text, 1, header, _state["intern"], layout)
