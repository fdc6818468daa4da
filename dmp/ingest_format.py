"""Lines of an ingest file turned into typed device lines, or an ``IngestError`` naming the field.

Two formats carry the same fields. JSON Lines, one device an object::

    {"id_type": "idfa", "id": "...", "ids": [{"id_type": "imei", "id": "..."}],
     "os": "ios", "model": "iPhone15,2", "price_tier": 3, "country": "CHN", "region": "GD",
     "city": "Shenzhen", "ttl_days": 30,
     "tags": ["base.gender.female", 9, {"tag": "interest.automotive.purchase_intent",
              "score": 72, "ttl_days": 14}]}

and CSV with a header naming the columns (any order; ``id_type`` and ``id`` required, others
optional, unknown ones ignored): ``id_type,id,tags,os,model,price_tier,country,region,city``
(and ``ttl_days``), where ``tags`` is ``code[:score]`` items separated by ``|``. A CSV row
becomes the JSON object it stands for, so both formats share one validator and one set of
reject reasons. An absent (JSON ``null``, empty CSV cell) snapshot field means "not given".

This module is the hot loop of a bulk load: tags resolve through one dict built per run and
their ``TagEntry`` values are shared between lines rather than built for each.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import orjson

from dmp.errors import IngestError, InvalidDeviceId
from dmp.ids import DeviceId, parse_device_id
from dmp.profile import TagEntry
from dmp.taxonomy import MAX_SCORE, Tag, Taxonomy

FORMATS = ("jsonl", "csv")
CSV_COLUMNS = ("id_type", "id", "tags", "os", "model", "price_tier", "country", "region", "city")
MAX_TTL_DAYS = 3650
# Tier 0 is "unknown"; one digit leaves room for any vendor's banding (most use 1..5).
MAX_PRICE_TIER = 9
# The profile codec stores each text in at most 255 bytes; longer would be cut mid-character.
MAX_TEXT_BYTES = 255
# Distinct (tag, expiry, score) entries kept for sharing; cleared when full to bound memory.
_ENTRY_CACHE_SIZE = 200_000


# os, model, price_tier, country, region, city as a line gives them; None where it does not.
SnapshotFields = tuple[str | None, str | None, int | None, str | None, str | None, str | None]


class DeviceLine(NamedTuple):
    """One valid line: the device's digests (primary first), its tags and snapshot fields.

    A NamedTuple rather than a frozen dataclass: one is built per line, at half the cost.
    """

    digests: tuple[bytes, ...]
    entries: list[TagEntry]  # shared with nothing else: the loader may keep it as its own
    fields: SnapshotFields


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line that was not loaded: its 1-based number, why, and its text."""

    line_number: int
    reason: str
    text: str


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive lines of a file, parsed: the valid ones and the rejected ones."""

    lines: list[DeviceLine]
    rejected: list[Rejected]


def _kind(value: object) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", str: "a string", int: "a number", float: "a number"}
    return names.get(type(value), "a list" if isinstance(value, list) else "an object")


class TagTable:
    """Tag code or id -> the ``TagEntry`` it makes on ``today``, computed once per run."""

    __slots__ = ("today", "every_spelling", "_tags", "_defaults", "_made")

    def __init__(self, taxonomy: Taxonomy, today: int, *, every_spelling: bool = False) -> None:
        self.today = today
        # Aliases for every spelling of a raw ID (``DeviceId.digests``), not only the hashes
        # of its canonical text that exchanges send (``DeviceId.exchange_digests``).
        self.every_spelling = every_spelling
        self._tags: dict[str | int, Tag] = {}
        for tag in taxonomy:
            # CSV cells are text, so an id may arrive as "94" as well as 94.
            for key in (tag.code, tag.id, str(tag.id)):
                self._tags[key] = tag
        self._defaults = {key: TagEntry(t.id, today + t.ttl_days) for key, t in self._tags.items()}
        self._made: dict[tuple[int, int, int | None], TagEntry] = {}

    def entries(self, tags: object, day: int | None) -> list[TagEntry]:
        """The entries of a line's ``tags``; ``day`` is the line's own expiry, if it sets one."""
        if tags is None:
            return []
        if type(tags) is not list:
            raise IngestError("tags", f"expected a list, got {_kind(tags)}")
        defaults = self._defaults
        found: list[TagEntry] = []
        for index, item in enumerate(tags):
            kind = type(item)
            # type() rather than isinstance: JSON true must not pass for tag id 1.
            if kind is str or kind is int:
                entry = defaults.get(item) if day is None else None
                if entry is None:
                    entry = self._entry(self._tag(item, f"tags[{index}]"), day, None)
            elif kind is dict and len(item) == 1 and day is None and item.get("tag") in defaults:
                entry = defaults[item["tag"]]  # {"tag": code}: the common object, made once
            elif kind is dict:
                entry = self._object_entry(item, index, day)
            else:
                raise IngestError(
                    f"tags[{index}]", f"expected a tag code, id or object, got {_kind(item)}"
                )
            found.append(entry)
        return found

    def tag_of(self, key: str | int) -> Tag | None:
        """The taxonomy tag a line's code or id names, if any."""
        return self._tags.get(key)

    def _tag(self, key: object, field: str) -> Tag:
        if type(key) is str or type(key) is int:
            tag = self._tags.get(key)
            if tag is not None:
                return tag
            raise IngestError(field, f"unknown tag {key!r}")
        raise IngestError(field, f"expected a tag code or id, got {_kind(key)}")

    def _object_entry(self, item: Mapping[str, object], index: int, day: int | None) -> TagEntry:
        code = item.get("tag")
        if code is None:
            raise IngestError(f"tags[{index}].tag", "missing")
        tag = self._tag(code, f"tags[{index}]")
        score = item.get("score")
        if score is not None:
            if type(score) is not int or not 0 <= score <= MAX_SCORE:
                raise IngestError(
                    f"tags[{index}].score", f"expected an integer 0..{MAX_SCORE}, got {score!r}"
                )
            if not tag.scored:
                raise IngestError(f"tags[{index}].score", f"{tag.code!r} is not a scored tag")
        ttl = item.get("ttl_days")
        if ttl is not None:
            day = self.today + ttl_days(ttl, f"tags[{index}].ttl_days")
        return self._entry(tag, day, score)

    def _entry(self, tag: Tag, day: int | None, score: int | None) -> TagEntry:
        key = (tag.id, self.today + tag.ttl_days if day is None else day, score)
        entry = self._made.get(key)
        if entry is None:
            if len(self._made) >= _ENTRY_CACHE_SIZE:
                self._made.clear()
            entry = self._made[key] = TagEntry(*key)
        return entry


def ttl_days(value: object, field: str) -> int:
    if type(value) is not int or not 1 <= value <= MAX_TTL_DAYS:
        raise IngestError(field, f"expected an integer 1..{MAX_TTL_DAYS}, got {value!r}")
    return value


def _device_id(record: Mapping[str, object], prefix: str) -> DeviceId:
    id_type, value = record.get("id_type"), record.get("id")
    for name, given in (("id_type", id_type), ("id", value)):
        if type(given) is not str:
            reason = "missing" if given is None else f"expected a string, got {_kind(given)}"
            raise IngestError(prefix + name, reason)
    try:
        return parse_device_id(id_type, value)  # type: ignore[arg-type]
    except InvalidDeviceId as exc:
        if exc.reason == "unknown id type":
            raise IngestError(
                prefix + "id_type",
                f"unknown id type {id_type!r} (imei, idfa, gaid, oaid or mac, "
                "optionally suffixed _md5 or _sha1)",
            ) from None
        raise IngestError(prefix + "id", str(exc)) from None


def _forms(device: DeviceId, every_spelling: bool) -> tuple[bytes, ...]:
    return device.digests() if every_spelling else device.exchange_digests()


def _digests(record: Mapping[str, object], every_spelling: bool) -> tuple[bytes, ...]:
    digests = _forms(_device_id(record, ""), every_spelling)
    more = record.get("ids")
    if more is None:
        return digests
    if type(more) is not list:
        raise IngestError("ids", f"expected a list, got {_kind(more)}")
    every = dict.fromkeys(digests)
    for index, item in enumerate(more):
        if type(item) is not dict:
            raise IngestError(f"ids[{index}]", f"expected an object, got {_kind(item)}")
        every.update(dict.fromkeys(_forms(_device_id(item, f"ids[{index}]."), every_spelling)))
    return tuple(every)


def _text(value: object, field: str) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        raise IngestError(field, f"expected a string, got {_kind(value)}")
    # A char is at most 4 bytes, so only long texts need encoding to be measured.
    if len(value) * 4 > MAX_TEXT_BYTES and len(value.encode()) > MAX_TEXT_BYTES:
        raise IngestError(field, f"longer than {MAX_TEXT_BYTES} bytes")
    return value.strip()


def _country(value: object) -> str | None:
    text = _text(value, "country")
    if text and not (len(text) == 3 and text.isascii() and text.isalpha()):
        raise IngestError(
            "country", f"expected an ISO 3166-1 alpha-3 code like 'CHN', got {text!r}"
        )
    # Upper case, as the bidder reads OpenRTB geo.country and region.
    return None if text is None else text.upper()


def _price_tier(value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= MAX_PRICE_TIER:
        raise IngestError("price_tier", f"expected an integer 0..{MAX_PRICE_TIER}, got {value!r}")
    return value


def _lower(value: object, field: str) -> str | None:
    text = _text(value, field)
    return None if text is None else text.lower()


def _upper(value: object, field: str) -> str | None:
    text = _text(value, field)
    return None if text is None else text.upper()


# The text snapshot fields as ``parse_record`` reads them, for callers that see each
# distinct value once (``dmp.ingest_columns``): raise ``IngestError`` for a bad value.
TEXT_FIELDS: dict[str, Callable[[object], str | None]] = {
    "os": lambda value: _lower(value, "os"),
    "model": lambda value: _text(value, "model"),
    "country": _country,
    "region": lambda value: _upper(value, "region"),
    "city": lambda value: _text(value, "city"),
}


def parse_record(record: object, table: TagTable) -> DeviceLine:
    """Validate one decoded line; raises ``IngestError`` naming the first bad field."""
    if type(record) is not dict:
        raise IngestError("line", f"expected a JSON object, got {_kind(record)}")
    get = record.get
    digests = _digests(record, table.every_spelling)
    ttl = get("ttl_days")
    day = None if ttl is None else table.today + ttl_days(ttl, "ttl_days")
    entries = table.entries(get("tags"), day)
    os_, region = _text(get("os"), "os"), _text(get("region"), "region")
    fields = (
        # Lower-case OS, upper-case region, as campaign targeting and the bidder spell them.
        None if os_ is None else os_.lower(),
        _text(get("model"), "model"),
        _price_tier(get("price_tier")),
        _country(get("country")),
        None if region is None else region.upper(),
        _text(get("city"), "city"),
    )
    return DeviceLine(digests, entries, fields)


def _clean(reason: str) -> str:
    # The reject file is tab-separated, one reject a line.
    return reason.replace("\t", " ").replace("\n", " ").replace("\r", " ")


def json_chunks(
    raw_lines: Iterable[bytes], table: TagTable, size: int, first_number: int = 1
) -> Iterator[Chunk]:
    """Parse JSON Lines (without a byte-order mark), ``size`` lines a chunk; skip blank lines.

    Lines are numbered from ``first_number`` (a part of a file starts further in).
    """
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    lines: list[DeviceLine] = []
    rejected: list[Rejected] = []
    number = first_number - 1
    for raw in raw_lines:
        number += 1
        try:
            lines.append(parse_record(loads(raw), table))
        except IngestError as exc:
            rejected.append(Rejected(number, _clean(str(exc)), _original(raw)))
        except decode_error as exc:
            if raw.strip():
                rejected.append(Rejected(number, _clean(f"line: not JSON: {exc}"), _original(raw)))
        if (number - first_number + 1) % size == 0:
            yield Chunk(lines, rejected)
            lines, rejected = [], []
    if lines or rejected:
        yield Chunk(lines, rejected)


def _original(raw: bytes) -> str:
    return raw.decode(errors="replace").rstrip("\r\n")


class _LineFeed:
    """Feeds ``csv.reader`` decoded lines and keeps those of the current row for the reject file.

    Decoding here, line by line, lets one bad byte reject its row instead of ending the file.
    """

    __slots__ = ("_raw", "count", "held", "bad_utf8")

    def __init__(self, raw_lines: Iterable[bytes]) -> None:
        self._raw = iter(raw_lines)
        self.count = 0
        self.held: list[str] = []
        self.bad_utf8 = False

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        raw = next(self._raw)
        self.count += 1
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            text = raw.decode(errors="replace")
            self.bad_utf8 = True
        self.held.append(text)
        return text

    def take(self) -> str:
        """The text of the row just read, and forget it."""
        text = "".join(self.held).rstrip("\r\n")
        self.held.clear()
        self.bad_utf8 = False
        return text


def _csv_header(row: list[str] | None) -> list[tuple[str, int]]:
    if not row:
        raise IngestError("header", "missing: the file is empty or starts with a blank line")
    names = [name.strip().lower() for name in row]
    missing = [name for name in ("id_type", "id") if name not in names]
    if missing:
        raise IngestError(
            "header", f"no {' or '.join(missing)} column (expected {','.join(CSV_COLUMNS)})"
        )
    return [(name, index) for index, name in enumerate(names)]


def _csv_tags(cell: str) -> list[object]:
    tags: list[object] = []
    for item in cell.split("|"):
        code, colon, score = item.strip().partition(":")
        if not code:
            continue  # tolerate "a||b" and a trailing "|"
        if not colon:
            tags.append(code)
        else:
            score = score.strip()
            tags.append({"tag": code, "score": int(score) if score.isdigit() else score})
    return tags


def _csv_number(cell: str) -> object:
    # Left as text when not a number, so the validator names the field with the bad value.
    return int(cell) if cell.isascii() and cell.isdigit() else cell


def csv_record(row: list[str], columns: list[tuple[str, int]]) -> dict[str, object]:
    """The JSON object a CSV row stands for: empty cells are absent."""
    record: dict[str, object] = {}
    for name, index in columns:
        cell = row[index].strip()
        if cell:
            record[name] = cell
    if "tags" in record:
        record["tags"] = _csv_tags(record["tags"])  # type: ignore[arg-type]
    for name in ("price_tier", "ttl_days"):
        if name in record:
            record[name] = _csv_number(record[name])  # type: ignore[arg-type]
    return record


def csv_header(row: list[str] | None) -> list[tuple[str, int]]:
    """The columns a CSV header names, as ``(name, index)``; raises ``IngestError`` for a
    header without ``id_type`` or ``id``."""
    return _csv_header(row)


def csv_chunks(raw_lines: Iterable[bytes], table: TagTable, size: int) -> Iterator[Chunk]:
    """Parse CSV with a header (without a byte-order mark), about ``size`` rows a chunk.

    Raises ``IngestError`` for a file whose header lacks ``id_type`` or ``id``.
    """
    feed = _LineFeed(raw_lines)
    reader = csv.reader(feed)
    columns = _csv_header(next(reader, None))
    feed.take()
    yield from _csv_rows(feed, reader, columns, table, size, 1)


def csv_rows(
    raw_lines: Iterable[bytes],
    columns: list[tuple[str, int]],
    table: TagTable,
    first_number: int,
    *,
    held: Callable[[list[str]], None] | None = None,
) -> Chunk:
    """CSV rows after the header, lines numbered from ``first_number``, as one chunk.

    ``held``, if given, is told the feed's list of the current row's lines, so a caller
    feeding lines lazily can tell whether a row is under way (non-empty) when asked for more.
    """
    feed = _LineFeed(raw_lines)
    if held is not None:
        held(feed.held)
    chunk = Chunk([], [])
    for part in _csv_rows(feed, csv.reader(feed), columns, table, 1 << 62, first_number):
        chunk.lines.extend(part.lines)
        chunk.rejected.extend(part.rejected)
    return chunk


def _csv_rows(
    feed: _LineFeed,
    reader: Iterator[list[str]],
    columns: list[tuple[str, int]],
    table: TagTable,
    size: int,
    base: int,
) -> Iterator[Chunk]:
    lines: list[DeviceLine] = []
    rejected: list[Rejected] = []
    number = base + feed.count
    for row in reader:
        if not row:
            feed.take()
        elif feed.bad_utf8:
            rejected.append(Rejected(number, "line: not UTF-8", feed.take()))
        elif len(row) != len(columns):
            reason = f"line: expected {len(columns)} fields, got {len(row)}"
            rejected.append(Rejected(number, reason, feed.take()))
        else:
            try:
                lines.append(parse_record(csv_record(row, columns), table))
                feed.held.clear()
            except IngestError as exc:
                rejected.append(Rejected(number, _clean(str(exc)), feed.take()))
        number = base + feed.count
        if len(lines) + len(rejected) >= size:
            yield Chunk(lines, rejected)
            lines, rejected = [], []
    if lines or rejected:
        yield Chunk(lines, rejected)


def record_chunks(records: Iterable[object], table: TagTable, size: int) -> Iterator[Chunk]:
    """Validate in-memory records as if each were a line; numbered from 1."""
    lines: list[DeviceLine] = []
    rejected: list[Rejected] = []
    for number, record in enumerate(records, 1):
        try:
            lines.append(parse_record(record, table))
        except IngestError as exc:
            rejected.append(Rejected(number, str(exc), ""))
        if number % size == 0:
            yield Chunk(lines, rejected)
            lines, rejected = [], []
    if lines or rejected:
        yield Chunk(lines, rejected)
