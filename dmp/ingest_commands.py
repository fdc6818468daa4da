"""The ``HSET`` commands of many devices at once, assembled with numpy.

The common device (a raw ID: a profile under its MD5 head and an alias under its SHA1 head)
takes two commands whose bytes are fixed but for the bucket names, fields and the blob; a
batch of them is written as one byte buffer, each part scattered to its offset, instead of
formatting each command in Python. The bytes are those ``ingest_worker.device_commands``
(and so ``resp.command``) make; a test holds them equal. Key names come from ``infra.keys``.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from infra import keys

Bytes2D = npt.NDArray[np.uint8]
_DIGEST = 8
_MAX_DIGITS = 4
MAX_BLOB = 10**_MAX_DIGITS - 1  # longer blobs go through ingest_worker.device_commands


def _const(data: bytes, rows: int) -> Bytes2D:
    return np.broadcast_to(np.frombuffer(data, dtype=np.uint8), (rows, len(data)))


@functools.cache
def bucket_names() -> tuple[bytes, ...]:
    """The bucket name of every two-byte digest head, made once by ``keys`` (a twentieth of
    a second: ``bulk_commands`` is made before the workers fork)."""
    heads = [bytes((a, b)) + bytes(_DIGEST - 2) for a in range(256) for b in range(256)]
    return tuple(keys.profile_bucket(head) for head in heads)


@functools.cache
def bulk_commands() -> BulkCommands:
    """The process's ``BulkCommands``; made by the loader before it forks its workers, as
    ``bucket_names`` is (checking and copying that table costs a worker some 25 ms)."""
    return BulkCommands()


class BulkCommands:
    """Commands assembled from the bucket-name table (``bucket_names``)."""

    def __init__(self) -> None:
        names = bucket_names()
        self.bucket_size = len(names[0])
        self.usable = all(len(name) == self.bucket_size for name in names)
        self._buckets = np.frombuffer(b"".join(names), dtype=np.uint8).reshape(
            len(names), self.bucket_size
        )
        probe = bytes(range(1, _DIGEST + 1))
        self._field = len(keys.profile_field(probe))
        self._alias = len(keys.alias_field(probe))
        # The fields are tails of the digest; anything else leaves the path unusable.
        self.usable &= keys.profile_field(probe) == probe[-self._field :]
        self.usable &= keys.alias_field(probe) == probe[-self._alias :]

    def _head(self, rows: int) -> Bytes2D:
        return _const(b"*4\r\n$4\r\nHSET\r\n$%d\r\n" % self.bucket_size, rows)

    def build(self, primaries: bytes, aliases: bytes, blobs: list[bytes]) -> bytes:
        """Commands for devices ``i``: profile ``blobs[i]`` under ``primaries[8i:8i+8]`` and
        its alias ``aliases[8i:8i+8]`` (each different from its primary)."""
        return self.build_with_lengths(primaries, aliases, blobs)[0]

    def build_with_lengths(
        self, primaries: bytes, aliases: bytes, blobs: list[bytes]
    ) -> tuple[bytes, npt.NDArray[np.int64]]:
        """``build``'s bytes, and how many of them each device's two commands take (they
        follow each other in device order)."""
        rows = len(blobs)
        if rows == 0:
            return b"", np.zeros(0, dtype=np.int64)
        first = np.frombuffer(primaries, dtype=np.uint8).reshape(rows, _DIGEST)
        second = np.frombuffer(aliases, dtype=np.uint8).reshape(rows, _DIGEST)
        sizes = np.fromiter(map(len, blobs), dtype=np.int64, count=rows)
        digits = 1 + (sizes >= 10) + (sizes >= 100) + (sizes >= 1000)
        before = np.hstack(
            [
                self._head(rows),
                self._buckets[first[:, 0].astype(np.int64) << 8 | first[:, 1]],
                _const(b"\r\n$%d\r\n" % self._field, rows),
                first[:, _DIGEST - self._field :],
                _const(b"\r\n$", rows),
            ]
        )
        after = np.hstack(
            [
                _const(b"\r\n", rows),
                self._head(rows),
                self._buckets[second[:, 0].astype(np.int64) << 8 | second[:, 1]],
                _const(b"\r\n$%d\r\n" % self._alias, rows),
                second[:, _DIGEST - self._alias :],
                _const(b"\r\n$%d\r\n" % _DIGEST, rows),
                first,
                _const(b"\r\n", rows),
            ]
        )
        lengths = before.shape[1] + digits + 2 + sizes + after.shape[1]
        starts = np.zeros(rows, dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        out = np.empty(int(lengths.sum()), dtype=np.uint8)
        _put(out, starts, before)
        at = starts + before.shape[1]
        for column in range(_MAX_DIGITS):  # the blob's length in decimal, most significant first
            has = digits > column
            power = 10 ** (digits[has] - 1 - column)
            out[at[has] + column] = sizes[has] // power % 10 + ord("0")
        at += digits
        out[at] = ord("\r")
        out[at + 1] = ord("\n")
        at += 2
        flat = np.frombuffer(b"".join(blobs), dtype=np.uint8)
        offsets = np.zeros(rows, dtype=np.int64)
        np.cumsum(sizes[:-1], out=offsets[1:])
        out[np.repeat(at - offsets, sizes) + np.arange(len(flat))] = flat
        _put(out, at + sizes, after)
        return out.tobytes(), lengths

    def presence(self, primaries: bytes) -> bytes:
        """``HMGET bucket profile-field alias-field`` of each 8-byte digest in
        ``primaries``: whether anything is stored under it (``ingest_merge``)."""
        rows = len(primaries) // _DIGEST
        if rows == 0:
            return b""
        first = np.frombuffer(primaries, dtype=np.uint8).reshape(rows, _DIGEST)
        return np.hstack(
            [
                _const(b"*4\r\n$5\r\nHMGET\r\n$%d\r\n" % self.bucket_size, rows),
                self._buckets[first[:, 0].astype(np.int64) << 8 | first[:, 1]],
                _const(b"\r\n$%d\r\n" % self._field, rows),
                first[:, _DIGEST - self._field :],
                _const(b"\r\n$%d\r\n" % self._alias, rows),
                first[:, _DIGEST - self._alias :],
                _const(b"\r\n", rows),
            ]
        ).tobytes()


def _put(out: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], parts: Bytes2D) -> None:
    out[starts[:, None] + np.arange(parts.shape[1])] = parts
