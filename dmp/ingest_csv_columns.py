"""The columnar fast path for CSV: a block of plain CSV lines validated and encoded as arrays.

The loader (``dmp.ingest``) hands this only blocks that start at a row, are valid UTF-8
without NUL byte or carriage return (but in CR LF line ends) and quote nothing but whole
fields within a line (``plain_block``), so each line is one row. ``pyarrow.csv`` splits the
block into string columns in C++; every cell is then read as
``dmp.ingest_format.csv_record`` reads it (stripped, empty meaning absent, ``code[:score]``
tag items split at ``|``) once per distinct value, in Python, with the functions the
per-line parser uses, and the rest is the JSON Lines fast path's (``dmp.ingest_columns``):
ID hashing, batch tag encoding. A line without the header's number of fields, or any row
the fast path does not take for certain valid, is left to the per-line parser, so what is
stored and rejected is the same either way.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable

import numpy as np

# pyarrow ships no type information: its values are Any here (see dmp.ingest_columns).
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.csv as pa_csv  # type: ignore[import-untyped]

from dmp.errors import IngestError
from dmp.ingest_columns import Coded, ColumnReader, Columns
from dmp.ingest_format import MAX_PRICE_TIER, MAX_TTL_DAYS, TEXT_FIELDS, TagTable
from dmp.ingest_tags import MAX_TAGS, Entries, Ints
from dmp.taxonomy import MAX_SCORE

Header = list[tuple[str, int]]
_Mask = np.ndarray[tuple[int], np.dtype[np.bool_]]
_TEXTS = ("os", "model", "country", "region", "city")
# csv.field_size_limit()'s default: a longer field stops the per-line parser, so a line
# that long is left to it.
_FIELD_LIMIT = 131_072
# Printable ASCII without space: IDs and ID types that stripping leaves as they are.
_PLAIN = "^[!-~]+$"
_PARSE = pa_csv.ParseOptions(
    quote_char='"',
    double_quote=True,
    escape_char=False,
    newlines_in_values=False,
    ignore_empty_lines=False,
)
_BLOCK_BYTES = 1 << 20  # pyarrow parses blocks of this size on its threads
_ITEM_CACHE = 100_000  # distinct tag items (code and score) kept parsed
_NEWLINE, _RETURN, _QUOTE, _COMMA = ord("\n"), ord("\r"), ord('"'), ord(",")


def _bounds(raw: Ints | np.ndarray[tuple[int], np.dtype[np.uint8]]) -> tuple[Ints, Ints]:
    ends = np.flatnonzero(raw == _NEWLINE).astype(np.int64)
    starts = np.zeros(len(ends), dtype=np.int64)
    starts[1:] = ends[:-1] + 1
    return starts, ends


def _quotes(raw: np.ndarray[tuple[int], np.dtype[np.uint8]], ends: Ints) -> tuple[Ints, Ints]:
    """Quote positions, and how many quotes come before each line."""
    quotes = np.flatnonzero(raw == _QUOTE).astype(np.int64)
    per_line = np.bincount(np.searchsorted(ends, quotes), minlength=len(ends))
    before = np.zeros(len(ends), dtype=np.int64)
    np.cumsum(per_line[:-1], out=before[1:])
    return quotes, before


class Layout:
    """A block's bytes (newline-ended) and where its lines and quotes are, each found once
    and shared by the plain check and the reader (a scan of a block costs a few ms)."""

    def __init__(self, data: bytes) -> None:
        self.data = data if data.endswith(b"\n") else data + b"\n"
        self.raw = np.frombuffer(self.data, dtype=np.uint8)
        self._bounds: tuple[Ints, Ints] | None = None
        self._quotes: tuple[Ints, Ints] | None = None

    @property
    def bounds(self) -> tuple[Ints, Ints]:
        """Each line's start and end (its newline)."""
        if self._bounds is None:
            self._bounds = _bounds(self.raw)
        return self._bounds

    @property
    def quotes(self) -> tuple[Ints, Ints]:
        """Quote positions, and how many quotes come before each line."""
        if self._quotes is None:
            self._quotes = (
                _quotes(self.raw, self.bounds[1])
                if b'"' in self.data
                else (np.zeros(0, dtype=np.int64), np.zeros(len(self.bounds[1]), dtype=np.int64))
            )
        return self._quotes


def plain_block(data: bytes) -> bool:
    """Whether every line of ``data`` is one CSV row (``plain_layout``)."""
    return plain_layout(data) is not None


def plain_layout(data: bytes) -> Layout | None:
    """The block's layout when every line of ``data`` is one CSV row, the block UTF-8
    without NUL and without CR but in CR LF line ends; else None.

    Quotes are allowed where they only enclose whole fields on one line (``,"iPhone15,2",``):
    a line's quotes pair up, each opening one right after a comma or the line's start and
    closing it right before a comma or the line's end (no doubled quotes). Such a line ends
    outside quotes for ``csv.reader`` and pyarrow alike, and both read its fields the same.
    """
    if b"\x00" in data:
        return None
    try:
        data.decode()
    except UnicodeDecodeError:
        return None
    layout = Layout(data)
    raw = layout.raw
    if b"\r" in data:  # CR LF line ends are fine, a CR anywhere else is not
        returns = np.flatnonzero(raw == _RETURN)
        if bool(np.any(raw[returns + 1] != _NEWLINE)):
            return None
    if b'"' not in data:
        return layout
    starts, ends = layout.bounds
    quotes, before = layout.quotes
    line = np.searchsorted(ends, quotes)
    rank = np.arange(len(quotes), dtype=np.int64) - before[line]
    opening = rank % 2 == 0
    if bool(np.any(np.bincount(line, minlength=len(ends)) % 2)):
        return None
    after = raw[np.minimum(quotes + 1, len(raw) - 1)]
    previous = raw[np.maximum(quotes - 1, 0)]
    opens = (quotes == starts[line]) | (previous == _COMMA)
    closes = (after == _COMMA) | (after == _NEWLINE) | (after == _RETURN)
    return layout if bool(np.all(np.where(opening, opens, closes))) else None


def _distinct(column: pa.ChunkedArray | pa.Array) -> tuple[list[str], Ints]:
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return encoded.dictionary.to_pylist(), codes


def _number(cell: str, low: int, high: int) -> int | None:
    """A number cell as ``csv_record`` and the validator read it: -1 when absent, None when
    the per-line parser would reject it."""
    text = cell.strip()
    if not text:
        return -1
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if low <= value <= high else None


class CsvColumnReader(ColumnReader):
    """Reads plain CSV blocks for one load (its tag table and tag-section header cache)."""

    def __init__(self, table: TagTable) -> None:
        super().__init__(table)
        self._items: dict[str, tuple[int, int, int, int, int]] = {}

    def read_csv(self, data: bytes, header: Header, layout: Layout | None = None) -> Columns | None:
        """The block's columns (rows numbered as its lines); None: all of it line by line.
        ``layout``: the block's, if ``plain_layout`` made it already."""
        where = dict(header)
        if len(where) != len(header) or "ids" in where:
            return None
        layout = layout or Layout(data)
        starts, ends = layout.bounds
        short: _Mask = ends - starts <= _FIELD_LIMIT
        # Optimistic first: pyarrow refuses a block with a line of another field count, so
        # a block it reads whole has every line a row, without counting commas.
        table = self._table_of(layout.data, header, where) if bool(short.all()) else None
        if table is not None and table.num_rows == len(ends):
            good = short
            lines = np.arange(len(ends), dtype=np.int64)
        else:
            good = short & self._rows(layout, len(header))
            lines = np.flatnonzero(good)
            if len(lines) == 0:
                return None
            data = layout.data
            if len(lines) < len(ends):
                data = layout.raw[np.repeat(good, ends - starts + 1)].tobytes()
            table = self._table_of(data, header, where)
            if table is None or table.num_rows != len(lines):
                return None
        columns = self._encode(table, where)
        if columns is None:
            return None
        others = sorted(np.flatnonzero(~good).tolist() + lines[columns.others].tolist())
        return dataclasses.replace(columns, others=others)

    @staticmethod
    def _rows(layout: Layout, fields: int) -> _Mask:
        """Lines with ``fields`` fields (commas outside quotes, plus one)."""
        raw, (_, ends) = layout.raw, layout.bounds
        commas = np.flatnonzero(raw == _COMMA)
        line = np.searchsorted(ends, commas)
        quotes, before = layout.quotes
        if len(quotes):  # commas between a line's quotes are in a field
            quoted = (np.searchsorted(quotes, commas) - before[line]) % 2 == 1
            line = line[~quoted]
        found: _Mask = np.bincount(line, minlength=len(ends)) == fields - 1
        return found

    def _table_of(self, data: bytes, header: Header, where: dict[str, int]) -> pa.Table | None:
        names = [f"c{index}" for index in range(len(header))]
        wanted = ["id_type", "id", "tags", "ttl_days", "price_tier", *_TEXTS]
        include = [names[where[name]] for name in wanted if name in where]
        options = pa_csv.ReadOptions(
            column_names=names, block_size=max(_BLOCK_BYTES, 1), use_threads=True
        )
        convert = pa_csv.ConvertOptions(
            column_types=dict.fromkeys(include, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            include_columns=include,
        )
        try:
            table = pa_csv.read_csv(
                io.BytesIO(data),
                read_options=options,
                parse_options=_PARSE,
                convert_options=convert,
            )
        except (pa.ArrowException, ValueError):
            return None
        return table.rename_columns([name for name in wanted if name in where])

    def _encode(self, table: pa.Table, where: dict[str, int]) -> Columns | None:
        rows = table.num_rows
        types, values = table.column("id_type"), table.column("id")
        ok: _Mask = np.ones(rows, dtype=bool)
        for column in (types, values):
            plain = pc.match_substring_regex(column, _PLAIN)
            ok &= np.asarray(plain.to_numpy(zero_copy_only=False), dtype=bool)
        row_ttl = self._numbers(table, where, "ttl_days", 1, MAX_TTL_DAYS, ok)
        tier = self._numbers(table, where, "price_tier", 0, MAX_PRICE_TIER, ok)
        row_ttl = np.where(row_ttl > 0, row_ttl, 0)
        texts = [self._cells(table, where, name, ok) for name in _TEXTS]
        entries = self._csv_entries(table, where, row_ttl, ok)
        digests = self._digests(types, values, ok)
        return self._columns(ok, digests, entries, texts, tier)

    def _numbers(
        self, table: pa.Table, where: dict[str, int], name: str, low: int, high: int, ok: _Mask
    ) -> Ints:
        """The column's numbers (-1 where absent); ``ok`` cleared where bad."""
        if name not in where:
            return np.full(table.num_rows, -1, dtype=np.int64)
        cells, codes = _distinct(table.column(name))
        found = [_number(cell, low, high) for cell in cells]
        values = np.array([-1 if f is None else f for f in found], dtype=np.int64)
        bad = np.array([f is None for f in found], dtype=bool)
        if len(cells):
            ok &= ~bad[codes]
            return values[codes]
        return np.full(table.num_rows, -1, dtype=np.int64)

    def _cells(self, table: pa.Table, where: dict[str, int], name: str, ok: _Mask) -> Coded:
        """A text column normalised as the per-line parser does; ``ok`` cleared where bad."""
        if name not in where:
            return Coded.absent(table.num_rows)
        cells, codes = _distinct(table.column(name))
        normal: Callable[[object], str | None] = TEXT_FIELDS[name]
        values: list[str | None] = []
        bad: list[int] = []
        for index, cell in enumerate(cells):
            text = cell.strip()
            try:
                values.append(normal(text) if text else None)
            except IngestError:
                values.append(None)
                bad.append(index)
        if bad:
            ok &= ~np.isin(codes, bad)
        return Coded(values, codes)

    def _item(self, item: str) -> tuple[int, int, int, int, int]:
        """A tags cell's item as ``_csv_tags`` and the validator read it: (kept, valid, tag
        id, default ttl, score or -1); cached, a load's items being few."""
        found = self._items.get(item)
        if found is not None:
            return found
        code, colon, score = item.strip().partition(":")
        tag = self._table.tag_of(code) if code else None
        if not code:  # "a||b", a trailing "|": skipped as _csv_tags skips them
            found = (0, 1, 0, 0, -1)
        elif tag is None:
            found = (1, 0, 0, 0, -1)
        elif not colon:
            found = (1, 1, tag.id, tag.ttl_days, -1)
        else:
            value = _number(score, 0, MAX_SCORE)  # -1: "code:" without a score, rejected
            if value is None or value < 0 or not tag.scored:
                found = (1, 0, tag.id, tag.ttl_days, -1)
            else:
                found = (1, 1, tag.id, tag.ttl_days, value)
        if len(self._items) >= _ITEM_CACHE:
            self._items.clear()
        self._items[item] = found
        return found

    def _csv_entries(
        self, table: pa.Table, where: dict[str, int], row_ttl: Ints, ok: _Mask
    ) -> Entries:
        empty = np.zeros(0, dtype=np.int64)
        if "tags" not in where:
            return Entries(empty, empty, empty, empty)
        lists = pc.split_pattern(table.column("tags"), "|").combine_chunks()
        parents = np.asarray(pc.list_parent_indices(lists).to_numpy(), dtype=np.int64)
        items, which = _distinct(lists.flatten())
        size = len(items)
        info = np.array([self._item(item) for item in items], dtype=np.int64).reshape(size, 5)
        kept, valid = info[:, 0] > 0, info[:, 1] > 0
        ids, ttls, scores = info[:, 2], info[:, 3], info[:, 4]
        if size == 0:
            return Entries(empty, empty, empty, empty)
        # Per distinct item first: the usual block has no bad or skipped item.
        if not bool(valid.all()):
            ok[parents[~valid[which]]] = False
        if not bool(kept.all()):
            mine = kept[which]
            parents, which = parents[mine], which[mine]
        ok &= np.bincount(parents, minlength=len(ok)) <= MAX_TAGS
        if bool(row_ttl.any()):
            days = np.where(row_ttl[parents] > 0, row_ttl[parents], ttls[which])
        else:
            days = ttls[which]
        return Entries(parents, ids[which], self._table.today + days, scores[which])
