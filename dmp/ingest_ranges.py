"""A plain file cut into byte ranges that worker processes read themselves.

Handing workers byte offsets instead of text spares the loader reading the whole file,
finding its newlines and pickling it through pipes: that was half a core of a two-core
load. A range owns the lines that start inside it, so every line belongs to exactly one
range whatever the cut points, and each range can be found from the file alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

BOM = b"\xef\xbb\xbf"
_TAIL_READ = 1 << 16


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``[start, end)`` of a file: the lines starting there."""

    start: int
    end: int


def byte_ranges(first: int, size: int, step: int) -> Iterator[ByteRange]:
    """``[first, size)`` in ranges of ``step`` bytes (the last one shorter)."""
    for start in range(first, size, max(1, step)):
        yield ByteRange(start, min(start + step, size))


def read_range(file: BinaryIO, span: ByteRange) -> bytes:
    """The lines of ``file`` that start in ``span``, the last one read to its newline (or the
    end of the file)."""
    begin = max(span.start - 1, 0)
    file.seek(begin)
    data = file.read(span.end - begin)
    if span.start > 0:
        # A line starts at the byte after a newline: skip the one under way at ``start``.
        cut = data.find(b"\n")
        if cut < 0:
            return b""
        data = data[cut + 1 :]
    if not data or data.endswith(b"\n"):
        return data
    tail = bytearray(data)
    while True:
        more = file.read(_TAIL_READ)
        if not more:
            break
        newline = more.find(b"\n")
        if newline >= 0:
            tail += more[: newline + 1]
            break
        tail += more
    return bytes(tail)


def read_path_range(path: str, span: ByteRange) -> bytes:
    """``read_range`` of the file at ``path``."""
    with open(path, "rb") as file:
        return read_range(file, span)
