"""Indexes that find the scene rules an event matches without scanning every rule.

Built once when a scene library loads, each keyed by what an event carries:

- `GeoGrid`: geofences filed under every grid cell their circle touches; an event looks up
  its one cell and checks the haversine distance to the few fences filed there.
- `ExactIndex`: app bundle ids, ignoring case.
- `DomainIndex`: a domain matches itself and its subdomains, then an optional path prefix.
- `KeywordMatcher`: a trie of keywords walked from each position of the query.
- `PrefixIndex`: phone number prefixes, numbers reduced to their domestic digits.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)

EARTH_RADIUS_M = 6_371_008.8
METRES_PER_DEGREE = math.pi * EARTH_RADIUS_M / 180
# About 5.5 km of latitude: a city-scale fence touches a handful of cells, an event one.
CELL_DEGREES = 0.05


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlambda = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _unique(items: list[T]) -> list[T]:
    return list(dict.fromkeys(items)) if len(items) > 1 else items


class GeoGrid(Generic[T]):
    """Circles (centre, radius) filed by the lat/lon cells their bounding box covers."""

    def __init__(self, cell_degrees: float = CELL_DEGREES) -> None:
        self._cell = cell_degrees
        self._columns = round(360 / cell_degrees)
        self._cells: dict[tuple[int, int], list[tuple[float, float, float, T]]] = {}

    def _row(self, lat: float) -> int:
        return math.floor((lat + 90) / self._cell)

    def _column(self, lon: float) -> int:
        return math.floor((lon + 180) / self._cell) % self._columns

    def add(self, lat: float, lon: float, radius_m: float, item: T) -> None:
        dlat = radius_m / METRES_PER_DEGREE
        # The circle is widest in longitude at its poleward edge.
        cos_edge = math.cos(math.radians(min(90.0, abs(lat) + dlat)))
        dlon = radius_m / (METRES_PER_DEGREE * max(cos_edge, 1e-9))
        rows = range(self._row(max(-90.0, lat - dlat)), self._row(min(90.0, lat + dlat)) + 1)
        first = math.floor((lon - dlon + 180) / self._cell)
        last = math.floor((lon + dlon + 180) / self._cell)
        if last - first + 1 >= self._columns:
            columns = set(range(self._columns))
        else:
            columns = {column % self._columns for column in range(first, last + 1)}
        entry = (lat, lon, radius_m, item)
        for row in rows:
            for column in columns:
                self._cells.setdefault((row, column), []).append(entry)

    def match(self, lat: float, lon: float) -> list[T]:
        candidates = self._cells.get((self._row(lat), self._column(lon)), ())
        return [
            item
            for c_lat, c_lon, radius, item in candidates
            if haversine_m(lat, lon, c_lat, c_lon) <= radius
        ]

    @property
    def cells(self) -> int:
        return len(self._cells)


class ExactIndex(Generic[T]):
    """Whole strings, ignoring case."""

    def __init__(self) -> None:
        self._items: dict[str, list[T]] = {}

    def add(self, key: str, item: T) -> None:
        self._items.setdefault(key.casefold(), []).append(item)

    def match(self, key: str) -> list[T]:
        return list(self._items.get(key.casefold(), ()))


class DomainIndex(Generic[T]):
    """A domain and its subdomains, each with an optional path prefix (case-sensitive)."""

    def __init__(self) -> None:
        self._domains: dict[str, list[tuple[str, T]]] = {}

    def add(self, domain: str, path_prefix: str, item: T) -> None:
        self._domains.setdefault(domain.lower().strip("."), []).append((path_prefix, item))

    def match(self, host: str, path: str) -> list[T]:
        found: list[T] = []
        name = host.lower()
        while name:
            for prefix, item in self._domains.get(name, ()):
                if path.startswith(prefix):
                    found.append(item)
            name = name.partition(".")[2]
        return _unique(found)


def normalize_text(text: str) -> str:
    """NFKC (full-width letters to ASCII), case-folded, runs of whitespace as one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _is_word_char(char: str) -> bool:
    # Letters and digits of space-separated scripts; CJK text has no word boundaries.
    return char.isalnum() and ord(char) < 0x2E80


class KeywordMatcher(Generic[T]):
    """Keywords in free text, ignoring case and width.

    A keyword matches as a whole word where its edge is a letter or digit of a script that
    separates words with spaces ("suv" matches "best SUV 2025" but not "suvarna") and as a
    plain substring where its edge is CJK ("电动车" matches "比亚迪电动车价格").
    """

    def __init__(self) -> None:
        self._next: list[dict[str, int]] = [{}]
        self._items: list[list[T]] = [[]]
        self._edges: list[tuple[bool, bool]] = [(False, False)]

    def add(self, keyword: str, item: T) -> None:
        word = normalize_text(keyword)
        if not word:
            raise ValueError("empty keyword")
        node = 0
        for char in word:
            following = self._next[node].get(char)
            if following is None:
                following = self._next[node][char] = len(self._next)
                self._next.append({})
                self._items.append([])
                self._edges.append((False, False))
            node = following
        self._items[node].append(item)
        self._edges[node] = (_is_word_char(word[0]), _is_word_char(word[-1]))

    def match(self, text: str) -> list[T]:
        query = normalize_text(text)
        found: list[T] = []
        for start in range(len(query)):
            # Mid-word, a keyword starting here starts with a word character, so needs a
            # boundary before it that is not there.
            if not (start and _is_word_char(query[start - 1]) and _is_word_char(query[start])):
                self._walk(query, start, found)
        return _unique(found)

    def _walk(self, query: str, start: int, found: list[T]) -> None:
        node, nexts = 0, self._next
        left_bounded = start == 0 or not _is_word_char(query[start - 1])
        for end in range(start, len(query)):
            following = nexts[node].get(query[end])
            if following is None:
                return
            node = following
            items = self._items[node]
            if not items:
                continue
            needs_left, needs_right = self._edges[node]
            right_bounded = end + 1 == len(query) or not _is_word_char(query[end + 1])
            if (left_bounded or not needs_left) and (right_bounded or not needs_right):
                found.extend(items)


def phone_digits(number: str) -> str:
    """A phone number as domestic digits: separators and China's +86 / 0086 dropped.

    Other international numbers keep a leading ``+`` so they never match a domestic prefix.
    """
    text = number.strip()
    digits = "".join(char for char in text if char.isdigit())
    if text.startswith("+"):
        return digits[2:] if digits.startswith("86") else f"+{digits}"
    return digits[4:] if digits.startswith("0086") else digits


class PrefixIndex(Generic[T]):
    """Phone number prefixes, compared as `phone_digits`."""

    def __init__(self) -> None:
        self._prefixes: dict[str, list[T]] = {}
        self._lengths: list[int] = []  # ascending

    def add(self, prefix: str, item: T) -> None:
        digits = phone_digits(prefix)
        if not digits:
            raise ValueError("a prefix needs digits")
        self._prefixes.setdefault(digits, []).append(item)
        self._lengths = sorted({*self._lengths, len(digits)})

    def match(self, number: str) -> list[T]:
        digits = phone_digits(number)
        found: list[T] = []
        for length in self._lengths:
            if length > len(digits):
                break
            found.extend(self._prefixes.get(digits[:length], ()))
        return _unique(found)
