"""The scene library: rules turning behaviour events into short-lived tags.

``dmp/data/scenes.json`` holds ``{"rules": [...]}``; every rule has an ``id``, a ``kind``
(that of the events it reads), the ``tag`` it applies, ``ttl_minutes`` and an optional
``score`` (0..100, default 100) and ``name``. By kind:

- ``geofence``: ``lat``, ``lon``, ``radius_m`` (1..50000): the device is within the circle.
- ``app_open``: ``bundles``: the bundle id is one of them, ignoring case.
- ``url_visit``: ``domains`` and optional ``path_prefix``: the URL's host is a domain or a
  subdomain of one, and its path starts with the prefix (case-sensitive).
- ``search``: ``keywords``: the query holds a keyword, ignoring case and full width; whole
  words for Latin letters and digits, substrings for CJK (see `KeywordMatcher`).
- ``call``: ``prefixes``: the number starts with a prefix; separators and +86 are ignored.

The rules are compiled into indexes once, when the library loads (see ``dmp.scene_match``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import orjson

from dmp.errors import SceneRuleError
from dmp.scene_events import EventKind, SceneEvent, event_kind, url_parts
from dmp.scene_match import DomainIndex, ExactIndex, GeoGrid, KeywordMatcher, PrefixIndex
from dmp.taxonomy import MAX_SCORE, TAG_CODE

MAX_RADIUS_M = 50_000
MAX_TTL_MINUTES = 7 * 24 * 60
_COMMON = frozenset({"id", "kind", "tag", "ttl_minutes", "score", "name"})
_FIELDS = {
    EventKind.GEOFENCE: _COMMON | {"lat", "lon", "radius_m"},
    EventKind.APP_OPEN: _COMMON | {"bundles"},
    EventKind.URL_VISIT: _COMMON | {"domains", "path_prefix"},
    EventKind.SEARCH: _COMMON | {"keywords"},
    EventKind.CALL: _COMMON | {"prefixes"},
}
_DEFAULT_RESOURCE = "data/scenes.json"


@dataclass(frozen=True, slots=True)
class SceneRule:
    """What a matching event yields: ``tag`` with ``score`` for ``ttl_minutes``."""

    id: str
    kind: EventKind
    tag: str
    ttl_minutes: int
    score: int = MAX_SCORE
    name: str = ""


class _Fields:
    """Typed reads of one raw rule, each failure a `SceneRuleError` naming rule and field."""

    def __init__(self, raw: Mapping[str, object], where: str) -> None:
        self.raw, self.where = raw, where

    def fail(self, field: str, reason: str) -> SceneRuleError:
        return SceneRuleError(self.where, f"{field}: {reason}")

    def text(self, field: str, default: str | None = None) -> str:
        value = self.raw.get(field, default)
        if not isinstance(value, str) or (default is None and not value.strip()):
            raise self.fail(field, f"expected a non-empty string, got {value!r}")
        return value.strip()

    def integer(self, field: str, low: int, high: int, default: int | None = None) -> int:
        value = self.raw.get(field, default)
        if type(value) is not int or not low <= value <= high:
            raise self.fail(field, f"expected an integer {low}..{high}, got {value!r}")
        return value

    def number(self, field: str, low: float, high: float) -> float:
        value = self.raw.get(field)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise self.fail(field, f"expected a number {low:g}..{high:g}, got {value!r}")
        return float(value)

    def texts(self, field: str) -> list[str]:
        value = self.raw.get(field)
        if not isinstance(value, list) or not value:
            raise self.fail(field, f"expected a non-empty list of strings, got {value!r}")
        if not all(isinstance(item, str) and item.strip() for item in value):
            raise self.fail(field, "every item must be a non-empty string")
        return [item.strip() for item in value]


class SceneLibrary:
    """Scene rules compiled into per-kind indexes; `match` finds the rules an event meets."""

    __slots__ = ("rules", "source", "_geo", "_bundles", "_domains", "_keywords", "_prefixes")

    def __init__(self, rules: Iterable[object], source: str = "<scenes>") -> None:
        self.source = source
        self._geo: GeoGrid[SceneRule] = GeoGrid()
        self._bundles: ExactIndex[SceneRule] = ExactIndex()
        self._domains: DomainIndex[SceneRule] = DomainIndex()
        self._keywords: KeywordMatcher[SceneRule] = KeywordMatcher()
        self._prefixes: PrefixIndex[SceneRule] = PrefixIndex()
        added: dict[str, SceneRule] = {}
        for index, raw in enumerate(rules):
            rule = self._add(raw, f"{source}: rules[{index}]")
            if rule.id in added:
                raise SceneRuleError(f"{source}: rules[{index}]", f"duplicate id {rule.id!r}")
            added[rule.id] = rule
        self.rules = tuple(added.values())

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<scenes>") -> SceneLibrary:
        """A library from the JSON text of a scenes file: ``{"rules": [...]}``."""
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise SceneRuleError(source, f"not JSON: {exc}") from None
        rules = document.get("rules") if isinstance(document, dict) else None
        if not isinstance(rules, list):
            raise SceneRuleError(source, 'expected an object with a "rules" list')
        return cls(rules, source)

    @classmethod
    def from_json(cls, path: Path) -> SceneLibrary:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SceneRuleError(str(path), exc.strerror or str(exc)) from exc
        return cls.from_bytes(data, str(path))

    @classmethod
    def default(cls) -> SceneLibrary:
        """The library shipped with the project (loaded once per process)."""
        return _load_default()

    def match(self, event: SceneEvent) -> list[SceneRule]:
        """The rules the event meets, in library order within each index."""
        kind = event.kind
        if kind is EventKind.GEOFENCE:
            return self._geo.match(event.lat, event.lon)
        if kind is EventKind.APP_OPEN:
            return self._bundles.match(event.text)
        if kind is EventKind.URL_VISIT:
            return self._domains.match(*url_parts(event.text))
        if kind is EventKind.SEARCH:
            return self._keywords.match(event.text)
        return self._prefixes.match(event.text)

    def tags(self) -> frozenset[str]:
        """Every tag code the rules apply."""
        return frozenset(rule.tag for rule in self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        return f"<SceneLibrary {len(self.rules)} rules from {self.source}>"

    def _add(self, raw: object, where: str) -> SceneRule:
        if not isinstance(raw, dict):
            raise SceneRuleError(where, f"expected an object, got {raw!r}")
        fields = _Fields(raw, where)
        kind = event_kind(raw.get("kind"))
        if kind is None:
            raise fields.fail("kind", f"unknown kind {raw.get('kind')!r}")
        unknown = sorted(set(raw) - _FIELDS[kind])
        if unknown:
            raise fields.fail(", ".join(unknown), f"not a field of a {kind.value} rule")
        rule = _rule(fields, kind)
        self._indexers()[kind](fields, rule)
        return rule

    def _indexers(self) -> dict[EventKind, Callable[[_Fields, SceneRule], None]]:
        return {
            EventKind.GEOFENCE: self._add_geofence,
            EventKind.APP_OPEN: self._add_bundles,
            EventKind.URL_VISIT: self._add_domains,
            EventKind.SEARCH: self._add_keywords,
            EventKind.CALL: self._add_prefixes,
        }

    def _add_geofence(self, fields: _Fields, rule: SceneRule) -> None:
        lat, lon = fields.number("lat", -90, 90), fields.number("lon", -180, 180)
        self._geo.add(lat, lon, fields.integer("radius_m", 1, MAX_RADIUS_M), rule)

    def _add_bundles(self, fields: _Fields, rule: SceneRule) -> None:
        for bundle in fields.texts("bundles"):
            self._bundles.add(bundle, rule)

    def _add_domains(self, fields: _Fields, rule: SceneRule) -> None:
        prefix = fields.text("path_prefix", "")
        if prefix and not prefix.startswith("/"):
            raise fields.fail("path_prefix", f"must start with '/', got {prefix!r}")
        for domain in fields.texts("domains"):
            if "/" in domain or ":" in domain:
                raise fields.fail("domains", f"a host name, not a URL: {domain!r}")
            self._domains.add(domain, prefix, rule)

    def _add_keywords(self, fields: _Fields, rule: SceneRule) -> None:
        for keyword in fields.texts("keywords"):
            self._keywords.add(keyword, rule)

    def _add_prefixes(self, fields: _Fields, rule: SceneRule) -> None:
        for prefix in fields.texts("prefixes"):
            try:
                self._prefixes.add(prefix, rule)
            except ValueError:
                raise fields.fail("prefixes", f"no digits in {prefix!r}") from None


def _rule(fields: _Fields, kind: EventKind) -> SceneRule:
    tag = fields.text("tag")
    if not TAG_CODE.fullmatch(tag):
        raise fields.fail("tag", f"{tag!r} is not dimension.category.tag")
    return SceneRule(
        id=fields.text("id"),
        kind=kind,
        tag=tag,
        ttl_minutes=fields.integer("ttl_minutes", 1, MAX_TTL_MINUTES),
        score=fields.integer("score", 0, MAX_SCORE, MAX_SCORE),
        name=fields.text("name", ""),
    )


@functools.cache
def _load_default() -> SceneLibrary:
    data = resources.files("dmp").joinpath(_DEFAULT_RESOURCE).read_bytes()
    return SceneLibrary.from_bytes(data, f"dmp/{_DEFAULT_RESOURCE}")
