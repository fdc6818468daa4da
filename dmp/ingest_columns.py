"""The columnar fast path of a load: a block of JSON Lines validated and encoded as arrays.

``pyarrow.json`` parses a block into columns in C++; checks run over whole columns (texts
and tag codes once per distinct value, with the same functions the per-line parser uses),
and the tag sections of every device are packed at once (``dmp.ingest_tags``). A line the
fast path does not take for certain valid goes to the per-line parser
(``dmp.ingest_format``), so rejects and their reasons stay what that parser says; a block
pyarrow will not read as a whole (a line of another shape, a type it would not convert,
invalid JSON or UTF-8, blank lines, CR LF endings) goes to it entirely.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from dataclasses import dataclass

import numpy as np

# pyarrow ships no type information: its values are Any here, turned into numpy arrays
# (typed) or Python lists at once.
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.json as pa_json  # type: ignore[import-untyped]

from dmp.errors import IngestError, InvalidDeviceId
from dmp.ids import md5_of, parse_device_id
from dmp.ingest_format import (
    MAX_PRICE_TIER,
    MAX_TTL_DAYS,
    TEXT_FIELDS,
    SnapshotFields,
    TagTable,
)
from dmp.ingest_tags import MAX_TAGS, Entries, HeaderOf, Ints, encode_sections
from dmp.profile_tags import header_bits
from dmp.taxonomy import MAX_SCORE

_TAG = pa.struct([("tag", pa.string()), ("score", pa.int64()), ("ttl_days", pa.int64())])
_ID = pa.struct([("id_type", pa.string()), ("id", pa.string())])


def _schema(tags: pa.DataType) -> pa.Schema:
    return pa.schema(
        [
            ("id_type", pa.string()),
            ("id", pa.string()),
            ("ids", pa.list_(_ID)),
            ("os", pa.string()),
            ("model", pa.string()),
            ("price_tier", pa.int64()),
            ("country", pa.string()),
            ("region", pa.string()),
            ("city", pa.string()),
            ("ttl_days", pa.int64()),
            ("tags", tags),
        ]
    )


# Tags as objects ({"tag": code, "score": ..}) or as bare codes: a block holds one kind.
_PARSES = tuple(
    pa_json.ParseOptions(explicit_schema=_schema(tags), unexpected_field_behavior="ignore")
    for tags in (pa.list_(_TAG), pa.list_(pa.string()))
)
_GIVE_UP = 3  # blocks in a row that pyarrow read nothing of: the rest go line by line
_FEW_LINES = 16
_MAX_DEPTH = 1000  # below orjson's limit of 1024 nested arrays and objects
_TEXTS = ("os", "model", "country", "region", "city")
_LOWER = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_UPPER = "^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$"
_LOWER_UUID_TYPES = pa.array(["gaid", "oaid"])
_ZERO_UUID = "00000000-0000-0000-0000-000000000000"
_UUID_SIZE = len(_ZERO_UUID)
_IMEI = "^[0-9]{15}$"
_IMEI_SIZE = 15
_LUHN_DOUBLED = np.array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9], dtype=np.int64)
_Mask = np.ndarray[tuple[int], np.dtype[np.bool_]]


@dataclass(frozen=True, slots=True)
class Columns:
    """A block's lines: the devices the fast path encoded, and the others' line indexes."""

    digests: list[tuple[bytes, ...]]
    sections: list[bytes]
    snapshots: list[SnapshotFields]  # distinct: a block has a few hundred among thousands
    snapshot_of: list[int]  # each device's index in ``snapshots``
    others: list[int]  # 0-based indexes of lines left to the per-line parser
    # The devices' tag entries as given (rows numbered as ``digests``, file order within a
    # row): what merge mode needs of a device found stored.
    entries: Entries


@dataclass(frozen=True, slots=True)
class Coded:
    """A text column as its distinct values and each row's index among them."""

    values: list[str | None]
    codes: Ints

    @classmethod
    def absent(cls, rows: int) -> Coded:
        return cls([None], np.zeros(rows, dtype=np.int64))


def distinct_rows(columns: list[Ints]) -> tuple[Ints, Ints]:
    """For rows given as equally long columns of small non-negative codes: the first row of
    each distinct combination, and each row's combination (an index into the first)."""
    key = np.zeros(len(columns[0]) if columns else 0, dtype=np.int64)
    for codes in columns:
        size = int(codes.max()) + 1 if len(codes) else 1
        if int(key.max(initial=0)) >= (1 << 62) // size:  # keep the mixed radix in int64
            key = np.unique(key, return_inverse=True)[1].astype(np.int64)
        key = key * size + codes
    _, first, which = np.unique(key, return_index=True, return_inverse=True)
    return first.astype(np.int64), which.astype(np.int64).reshape(-1)


def _line_bounds(data: bytes) -> tuple[Ints, Ints] | None:
    """Each line's start and end (its newline), when every line is one ``{...}``."""
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw == 10).astype(np.int64)
    starts = np.zeros(len(ends), dtype=np.int64)
    starts[1:] = ends[:-1] + 1
    if len(ends) == 0 or ends[-1] != len(raw) - 1 or bool(np.any(raw == 13)):
        return None
    if bool(np.any(raw[starts] != ord("{"))) or bool(np.any(raw[ends - 1] != ord("}"))):
        return None
    return starts, ends


def _read(data: bytes, lines: int, parse: pa_json.ParseOptions) -> pa.Table | None:
    options = pa_json.ReadOptions(use_threads=False, block_size=len(data) + 1)
    try:
        table = pa_json.read_json(io.BytesIO(data), read_options=options, parse_options=parse)
    except (pa.ArrowException, ValueError):
        return None
    # Lines are one object each (``_line_bounds``), so any more rows means "{}{}" lines.
    return table if table.num_rows == lines else None


_Parts = list[tuple[int, int, pa.Table | None]]


def _tables(
    data: bytes, starts: Ints, ends: Ints, lo: int, hi: int, parse: pa_json.ParseOptions
) -> _Parts:
    """Lines ``lo`` to ``hi`` as tables, halved where pyarrow will not read them whole, down
    to a few lines (None: left to the per-line parser). A bad line costs a few re-reads."""
    table = _read(data[int(starts[lo]) : int(ends[hi - 1]) + 1], hi - lo, parse)
    if table is not None or hi - lo <= _FEW_LINES:
        return [(lo, hi, table)]
    middle = (lo + hi) // 2
    return _tables(data, starts, ends, lo, middle, parse) + _tables(
        data, starts, ends, middle, hi, parse
    )


def _deep(data: bytes, starts: Ints, ends: Ints) -> _Mask:
    """Lines that may nest deeper than orjson reads (1024 levels), which pyarrow reads."""
    deep = np.zeros(len(starts), dtype=bool)
    for index in np.flatnonzero(ends - starts > 2 * _MAX_DEPTH).tolist():
        line = data[int(starts[index]) : int(ends[index])]
        deep[index] = line.count(b"[") + line.count(b"{") > _MAX_DEPTH
    return deep


def _ints(column: pa.ChunkedArray | pa.Array, fill: int) -> Ints:
    return np.asarray(pc.fill_null(column, fill).to_numpy(zero_copy_only=False), dtype=np.int64)


def _optional(
    column: pa.ChunkedArray | pa.Array, low: int, high: int, absent: int
) -> tuple[Ints, _Mask]:
    """An optional integer: ``absent`` where not given, and where given, whether in range."""
    given = np.asarray(pc.is_valid(column).to_numpy(zero_copy_only=False), dtype=bool)
    values = _ints(column, absent)
    good: _Mask = ~given | ((values >= low) & (values <= high))
    return np.where(given & good, values, absent), good


def _canonical_uuids(types: pa.ChunkedArray, values: pa.ChunkedArray) -> _Mask:
    """Rows whose ID is a raw IDFA, GAID or OAID spelt as ``parse_device_id`` would spell it
    (hyphenated, in the type's case), and not the zero placeholder."""
    lower = pc.and_(pc.is_in(types, _LOWER_UUID_TYPES), pc.match_substring_regex(values, _LOWER))
    upper = pc.and_(pc.equal(types, "idfa"), pc.match_substring_regex(values, _UPPER))
    found = pc.and_(pc.or_(lower, upper), pc.not_equal(values, _ZERO_UUID))
    return np.asarray(pc.fill_null(found, False).to_numpy(zero_copy_only=False), dtype=bool)


def _canonical_imeis(types: pa.ChunkedArray, values: pa.ChunkedArray) -> _Mask:
    """Rows whose ID is a raw IMEI as ``parse_device_id`` keeps it: 15 digits whose last is
    the Luhn check digit of the others, not all zeros."""
    shaped = pc.and_(pc.equal(types, "imei"), pc.match_substring_regex(values, _IMEI))
    found = np.asarray(pc.fill_null(shaped, False).to_numpy(zero_copy_only=False), dtype=bool)
    rows = np.flatnonzero(found)
    if len(rows) == 0:
        return found
    text = _joined(pc.take(values, pa.array(rows)))
    digits = np.frombuffer(text, dtype=np.uint8).reshape(len(rows), _IMEI_SIZE).astype(np.int64)
    digits -= ord("0")
    # Luhn over the 14-digit body: counted from its right end, the first, third... digit
    # (here the 2nd, 4th... from the left) doubled, with the digits of the double summed.
    total = _LUHN_DOUBLED[digits[:, 1:14:2]].sum(axis=1) + digits[:, 0:14:2].sum(axis=1)
    valid = ((-total) % 10 == digits[:, 14]) & digits.any(axis=1)
    found[rows] = valid
    return found


def _joined(column: pa.ChunkedArray | pa.Array) -> bytes:
    """A string column's values one after the other, as UTF-8 (its data buffer's span)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if len(column) == 0:
        return b""
    if column.type != pa.string():
        return "".join(column.to_pylist()).encode()
    offsets = column.buffers()[1]
    bounds = np.frombuffer(offsets, dtype=np.int32)[column.offset : column.offset + len(column) + 1]
    data: bytes = column.buffers()[2].to_pybytes()
    return data[int(bounds[0]) : int(bounds[-1])]


class ColumnReader:
    """Reads blocks for one load: its tag table and a cache of tag-section headers."""

    def __init__(self, table: TagTable) -> None:
        self._table = table
        self._headers: dict[tuple[int, ...], str] = {}
        self._parse = _PARSES[0]
        self._misses = 0

    def read(self, data: bytes) -> Columns | None:
        """The block's columns; None when the whole block must go line by line."""
        if not data.endswith(b"\n"):
            data += b"\n"
        bounds = _line_bounds(data)
        if bounds is None:
            return None
        parts = self._parts(data, *bounds)
        tables = [table for _, _, table in parts if table is not None]
        if not tables:
            return None
        table = pa.concat_tables(tables)
        lines = np.concatenate(
            [np.arange(lo, hi) for lo, hi, found in parts if found is not None]
        ).astype(np.int64)
        unread = [index for lo, hi, found in parts if found is None for index in range(lo, hi)]
        ok = np.asarray(pc.is_null(table.column("ids")).to_numpy(zero_copy_only=False))
        ok &= ~_deep(data, *bounds)[lines]
        row_ttl, good_ttl = _optional(table.column("ttl_days"), 1, MAX_TTL_DAYS, 0)
        tier, good_tier = _optional(table.column("price_tier"), 0, MAX_PRICE_TIER, -1)
        ok &= good_ttl & good_tier
        texts = [self._texts(table.column(name), name, ok) for name in _TEXTS]
        entries = self._entries(table.column("tags"), row_ttl, ok)
        digests = self._digests(table.column("id_type"), table.column("id"), ok)
        columns = self._columns(ok, digests, entries, texts, tier)
        if columns is None:
            return None
        others = sorted(unread + lines[columns.others].tolist())
        return dataclasses.replace(columns, others=others)

    def _parts(self, data: bytes, starts: Ints, ends: Ints) -> _Parts:
        """The block read whole with either kind of tags, else in pieces with the kind that
        worked last; after a few blocks of which nothing could be read, no longer tried."""
        if self._misses >= _GIVE_UP:
            return []
        for parse in (self._parse, *(p for p in _PARSES if p is not self._parse)):
            table = _read(data, len(starts), parse)
            if table is not None:
                self._parse, self._misses = parse, 0
                return [(0, len(starts), table)]
        parts = _tables(data, starts, ends, 0, len(starts), self._parse)
        read = any(table is not None for _, _, table in parts)
        self._misses = 0 if read else self._misses + 1
        return parts

    def _texts(self, column: pa.ChunkedArray, name: str, ok: _Mask) -> Coded:
        """The column normalised as the per-line parser does; ``ok`` cleared where bad."""
        encoded = pc.dictionary_encode(column).combine_chunks()
        normal = TEXT_FIELDS[name]
        values: list[str | None] = []
        bad: list[int] = []
        for index, value in enumerate(encoded.dictionary.to_pylist()):
            try:
                values.append(normal(value))
            except IngestError:
                values.append(None)
                bad.append(index)
        codes = _ints(encoded.indices, len(values))
        values.append(None)
        if bad:
            ok &= ~np.isin(codes, bad)
        return Coded(values, codes)

    def _entries(self, column: pa.ChunkedArray, row_ttl: Ints, ok: _Mask) -> Entries:
        tags = column.combine_chunks()
        parents = np.asarray(pc.list_parent_indices(tags).to_numpy(), dtype=np.int64)
        items = tags.flatten()
        if pa.types.is_struct(items.type):
            codes, scores, ttls = items.flatten()
        else:  # bare codes
            codes, scores = items, pa.nulls(len(items), pa.int64())
            ttls = scores
        good = ~np.asarray(items.is_null().to_numpy(zero_copy_only=False))
        encoded = pc.dictionary_encode(codes)
        ids, default_ttl, scored = self._tag_info(encoded.dictionary.to_pylist())
        which = _ints(encoded.indices, len(ids) - 1)
        score, good_score = _optional(scores, 0, MAX_SCORE, -1)
        ttl, good_ttl = _optional(ttls, 1, MAX_TTL_DAYS, 0)
        good &= ids[which] > 0
        good &= good_score & good_ttl & ((score < 0) | scored[which])
        ok[parents[~good]] = False
        ok &= np.bincount(parents, minlength=len(ok)) <= MAX_TAGS
        days = np.where(ttl > 0, ttl, np.where(row_ttl[parents] > 0, row_ttl[parents], 0))
        days = self._table.today + np.where(days > 0, days, default_ttl[which])
        return Entries(parents, ids[which], days, score)

    def _tag_info(self, codes: list[str]) -> tuple[Ints, Ints, _Mask]:
        """Per distinct code (and one more for a missing code): id (0: unknown), ttl, scored."""
        ids = np.zeros(len(codes) + 1, dtype=np.int64)
        ttls = np.zeros(len(codes) + 1, dtype=np.int64)
        scored = np.zeros(len(codes) + 1, dtype=bool)
        for index, code in enumerate(codes):
            tag = self._table.tag_of(code)
            if tag is not None:
                ids[index], ttls[index], scored[index] = tag.id, tag.ttl_days, tag.scored
        return ids, ttls, scored

    def _digests(
        self, types: pa.ChunkedArray, values: pa.ChunkedArray, ok: _Mask
    ) -> list[tuple[bytes, ...] | None]:
        every = self._table.every_spelling
        found: list[tuple[bytes, ...] | None] = [None] * len(ok)
        wanted = ok & ~np.bool_(every)
        uuids = wanted & _canonical_uuids(types, values)
        imeis = wanted & ~uuids & _canonical_imeis(types, values)
        md5, sha1 = md5_of, hashlib.sha1
        for plain, size in ((uuids, _UUID_SIZE), (imeis, _IMEI_SIZE)):
            rows = np.flatnonzero(plain)
            # DeviceId.exchange_digests of IDs already in canonical form, ``size`` bytes each.
            data = _joined(pc.take(values, pa.array(rows)))
            for row, at in zip(rows.tolist(), range(0, len(data), size), strict=True):
                raw = data[at : at + size]
                found[row] = (md5(raw).digest()[:8], sha1(raw).digest()[:8])
        rows = np.flatnonzero(ok & ~uuids & ~imeis)
        chosen = pa.array(rows)
        for row, id_type, value in zip(
            rows.tolist(),
            pc.take(types, chosen).to_pylist(),
            pc.take(values, chosen).to_pylist(),
            strict=True,
        ):
            if id_type is None or value is None:
                ok[row] = False
                continue
            try:
                device = parse_device_id(id_type, value)
            except InvalidDeviceId:
                ok[row] = False
                continue
            found[row] = device.digests() if every else device.exchange_digests()
        return found

    def _header(self, days: tuple[int, ...]) -> str:
        header = self._headers.get(days)
        if header is None:
            header = self._headers[days] = header_bits(days)
        return header

    def _columns(
        self,
        ok: _Mask,
        digests: list[tuple[bytes, ...] | None],
        entries: Entries,
        texts: list[Coded],
        tier: Ints,
    ) -> Columns | None:
        rows = np.flatnonzero(ok)
        renumber = np.cumsum(ok) - 1
        mine = ok[entries.rows]
        fast = Entries(
            renumber[entries.rows[mine]],
            entries.tag_ids[mine],
            entries.days[mine],
            entries.scores[mine],
        )
        header_of: HeaderOf = self._header
        sections = encode_sections(fast, len(rows), header_of)
        if sections is None:
            return None
        # Snapshots by their columns' codes: tuples made and looked up once per distinct one.
        codes = [text.codes[rows] for text in texts]
        first, which = distinct_rows([*codes, tier[rows] + 1])
        os_, model, country, region, city = (
            [text.values[code] for code in column[first].tolist()]
            for text, column in zip(texts, codes, strict=True)
        )
        tiers: list[int | None] = [None if t < 0 else t for t in tier[rows][first].tolist()]
        snapshots: list[SnapshotFields] = list(
            zip(os_, model, tiers, country, region, city, strict=True)
        )
        found = digests if len(rows) == len(ok) else [digests[row] for row in rows.tolist()]
        kept = [d for d in found if d is not None]
        assert len(kept) == len(rows)
        others = np.flatnonzero(~ok).tolist()
        return Columns(kept, sections, snapshots, which.tolist(), others, fast)
