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
_TAIL_READ = 1 << 12


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
    # One read with room for the last line's end, one slice: copies of megabytes add up.
    data = file.read(span.end - begin + _TAIL_READ)
    first = 0
    if span.start > 0:
        # A line starts at the byte after a newline: skip the one under way at ``start``.
        first = data.find(b"\n", 0, span.end - begin) + 1
        if first == 0:
            return b""
    if first >= span.end - begin:
        return b""  # the next line starts at ``end``: the next range's
    last = data.find(b"\n", span.end - begin - 1) + 1
    if last > 0 or len(data) < span.end - begin + _TAIL_READ:
        return data[first : last or len(data)]
    tail = [data[first:]]
    while more := file.read(_TAIL_READ):
        newline = more.find(b"\n")
        if newline >= 0:
            tail.append(more[: newline + 1])
            break
        tail.append(more)
    return b"".join(tail)


def read_path_range(path: str, span: ByteRange) -> bytes:
    """``read_range`` of the file at ``path``."""
    with open(path, "rb") as file:
        return read_range(file, span)
