"""Typed reading of one JSON object that reports a problem by its field path."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlsplit

from dsp.errors import InvalidCampaign

E = TypeVar("E", bound=StrEnum)


class Reader:
    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, Mapping):
            raise InvalidCampaign(path or "$", "expected an object")
        self.data: Mapping[str, Any] = data
        self.path = path

    def field(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, reason: str) -> InvalidCampaign:
        return InvalidCampaign(self.field(name), reason)

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def text(self, name: str, default: str | None = None, *, max_len: int = 200) -> str:
        value = self.data.get(name, default)
        if not isinstance(value, str) or (default is None and not value):
            raise self.fail(name, "expected a non-empty string")
        if len(value) > max_len:
            raise self.fail(name, f"longer than {max_len} characters")
        return value

    def url(self, name: str, *, required: bool = True) -> str:
        value = self.text(name, None if required else "", max_len=2000)
        if value or required:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise self.fail(name, "expected an http(s) URL")
        return value

    def integer(
        self, name: str, *, minimum: int, maximum: int | None = None, default: int | None = None
    ) -> int:
        value = self.data.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(name, "expected an integer")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise self.fail(name, f"must be {bound}")
        return value

    def number(self, name: str, *, minimum: float, maximum: float) -> float:
        value = self.data.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.fail(name, "expected a number")
        if not minimum <= value <= maximum:
            raise self.fail(name, f"must be between {minimum} and {maximum}")
        return float(value)

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(name, "expected a list of non-empty strings")
        return tuple(value)

    def integers(self, name: str, *, minimum: int, maximum: int) -> frozenset[int]:
        value = self.data.get(name, [])
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and minimum <= v <= maximum
            for v in value
        ):
            raise self.fail(name, f"expected a list of integers {minimum}..{maximum}")
        return frozenset(value)

    def child(self, name: str) -> Reader:
        return Reader(self.data.get(name) or {}, self.field(name))

    def items(self, name: str, *, required: bool = False) -> list[Reader]:
        value = self.data.get(name, [])
        if not isinstance(value, list) or (required and not value):
            raise self.fail(name, "expected a non-empty list" if required else "expected a list")
        return [Reader(item, f"{self.field(name)}[{i}]") for i, item in enumerate(value)]

    def choice(self, name: str, enum: type[E], default: str | None = None) -> E:
        value = self.data.get(name, default)
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(member.value for member in enum)
            raise self.fail(name, f"expected one of {allowed}") from None
