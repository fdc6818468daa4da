"""The tag taxonomy: three levels, dimension / category / tag, in the "3+X" shape.

Three base attributes (dimension ``base``: age band, gender, income band) plus the "X"
dimensions ``social``, ``interest`` and ``usage``. A tag's code is
``dimension.category.tag``; its integer id is what profiles store, so ids are stable and
never reused: a new tag takes the next free id, a retired one leaves a gap.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from dmp.errors import TaxonomyError, UnknownTag

# Ids stay below 4096 so that compact encodings (per-device bitsets, 12-bit fields) may rely on it.
MAX_TAG_ID = 4095
MAX_SCORE = 100

COLUMNS = ("id", "code", "name", "dimension", "category", "scored", "ttl_days")
_PART = r"[a-z0-9_]+"
TAG_CODE = re.compile(rf"{_PART}\.{_PART}\.{_PART}")
_DEFAULT_RESOURCE = "data/taxonomy.csv"


@dataclass(frozen=True, slots=True)
class Tag:
    """One tag: ``scored`` tags carry a 0..100 model score, the others are simply present."""

    id: int
    code: str
    name: str
    dimension: str
    category: str
    scored: bool
    ttl_days: int

    @property
    def category_code(self) -> str:
        """The ``dimension.category`` code of the category holding this tag."""
        return f"{self.dimension}.{self.category}"


class Taxonomy:
    """An immutable set of tags, indexed by id, by code and by category and dimension."""

    __slots__ = ("tags", "_by_id", "_by_code", "_groups")

    tags: tuple[Tag, ...]

    def __init__(self, tags: Iterable[Tag], source: str = "<taxonomy>") -> None:
        self.tags = tuple(tags)
        self._by_id: dict[int, Tag] = {}
        self._by_code: dict[str, Tag] = {}
        for tag in self.tags:
            _check_tag(tag, source)
            if tag.id in self._by_id:
                raise TaxonomyError(source, f"duplicate id {tag.id} ({tag.code})")
            if tag.code in self._by_code:
                raise TaxonomyError(source, f"duplicate code {tag.code!r}")
            self._by_id[tag.id] = tag
            self._by_code[tag.code] = tag
        self._groups = _group(self.tags)

    @classmethod
    def from_csv(cls, path: Path) -> Taxonomy:
        """Load a taxonomy from a CSV file with the columns of ``COLUMNS``."""
        try:
            with path.open(encoding="utf-8", newline="") as file:
                return cls._from_lines(file, str(path))
        except OSError as exc:
            raise TaxonomyError(str(path), exc.strerror or str(exc)) from exc
        except UnicodeDecodeError as exc:
            raise TaxonomyError(str(path), f"not UTF-8: {exc.reason}") from exc

    @classmethod
    def default(cls) -> Taxonomy:
        """The taxonomy shipped with the project (loaded once per process)."""
        return _load_default()

    @classmethod
    def _from_lines(cls, lines: Iterable[str], source: str) -> Taxonomy:
        reader = csv.reader(lines)
        try:
            header = next(reader, None)
            if header is None or tuple(column.strip() for column in header) != COLUMNS:
                raise TaxonomyError(source, f"header must be {','.join(COLUMNS)}")
            tags = [_parse_row(row, f"{source}:{reader.line_num}") for row in reader if any(row)]
        except csv.Error as exc:
            raise TaxonomyError(f"{source}:{reader.line_num}", str(exc)) from exc
        return cls(tags, source)

    def tag(self, key: str | int) -> Tag:
        """The tag with this code or id; raises ``UnknownTag``."""
        found = self._by_id.get(key) if isinstance(key, int) else self._by_code.get(key)
        if found is None:
            raise UnknownTag(str(key))
        return found

    def resolve(self, code: str) -> frozenset[int]:
        """The ids a code stands for: a tag's own id, or every tag of a category or dimension."""
        ids = self._groups.get(code)
        if ids is None:
            raise UnknownTag(code)
        return ids

    def dimensions(self) -> tuple[str, ...]:
        """The dimensions, in file order."""
        return tuple(dict.fromkeys(tag.dimension for tag in self.tags))

    def categories(self) -> tuple[str, ...]:
        """The ``dimension.category`` codes, in file order."""
        return tuple(dict.fromkeys(tag.category_code for tag in self.tags))

    def search(self, text: str) -> list[Tag]:
        """Tags whose code or name contains ``text``, ignoring case; all tags for ``""``."""
        needle = text.strip().casefold()
        return [
            tag
            for tag in self.tags
            if needle in tag.code.casefold() or needle in tag.name.casefold()
        ]

    def __len__(self) -> int:
        return len(self.tags)

    def __iter__(self) -> Iterator[Tag]:
        return iter(self.tags)

    def __contains__(self, code: object) -> bool:
        return code in self._groups

    def __repr__(self) -> str:
        return f"<Taxonomy {len(self.tags)} tags>"


@functools.cache
def _load_default() -> Taxonomy:
    text = resources.files("dmp").joinpath(_DEFAULT_RESOURCE).read_text(encoding="utf-8")
    return Taxonomy._from_lines(text.splitlines(), f"dmp/{_DEFAULT_RESOURCE}")


def _group(tags: Sequence[Tag]) -> dict[str, frozenset[int]]:
    """Every resolvable code (tag, category, dimension) mapped to the tag ids it covers."""
    members: dict[str, set[int]] = {}
    for tag in tags:
        for code in (tag.code, tag.category_code, tag.dimension):
            members.setdefault(code, set()).add(tag.id)
    return {code: frozenset(ids) for code, ids in members.items()}


def _check_tag(tag: Tag, source: str) -> None:
    if not 1 <= tag.id <= MAX_TAG_ID:
        raise TaxonomyError(source, f"id {tag.id} of {tag.code!r} is not in 1..{MAX_TAG_ID}")
    if not TAG_CODE.fullmatch(tag.code):
        raise TaxonomyError(source, f"code {tag.code!r} is not dimension.category.tag")
    if tag.code.split(".")[:2] != [tag.dimension, tag.category]:
        raise TaxonomyError(source, f"code {tag.code!r} is not in {tag.dimension}.{tag.category}")
    if not tag.name.strip():
        raise TaxonomyError(source, f"tag {tag.code!r} has no name")
    if tag.ttl_days < 1:
        raise TaxonomyError(source, f"tag {tag.code!r} has ttl_days {tag.ttl_days} < 1")


def _parse_row(row: list[str], source: str) -> Tag:
    if len(row) != len(COLUMNS):
        raise TaxonomyError(source, f"expected {len(COLUMNS)} columns, got {len(row)}")
    id_, code, name, dimension, category, scored, ttl_days = (cell.strip() for cell in row)
    if scored not in ("0", "1"):
        raise TaxonomyError(source, f"scored must be 0 or 1, got {scored!r}")
    return Tag(
        id=_parse_int(id_, "id", source),
        code=code,
        name=name,
        dimension=dimension,
        category=category,
        scored=scored == "1",
        ttl_days=_parse_int(ttl_days, "ttl_days", source),
    )


def _parse_int(text: str, column: str, source: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise TaxonomyError(source, f"{column} must be a non-negative integer, got {text!r}")
    return int(text)


def format_table(tags: Sequence[Tag]) -> str:
    """A plain-text table of tags for ``dmp taxonomy [QUERY]``."""
    header = ("id", "code", "name", "scored", "ttl_days")
    rows = [(str(t.id), t.code, t.name, "yes" if t.scored else "", str(t.ttl_days)) for t in tags]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    numeric = (True, False, False, False, True)

    def line(cells: Sequence[str]) -> str:
        columns = zip(cells, widths, numeric, strict=True)
        padded = (cell.rjust(w) if num else cell.ljust(w) for cell, w, num in columns)
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])
