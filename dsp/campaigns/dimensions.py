"""Bitset indexes of one targeting dimension each: value -> lines that accept (or block) it."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from dsp.campaigns.model import Radius


@dataclass(slots=True)
class Allow:
    """Lines by accepted value, plus the lines that accept any value (no constraint)."""

    by_value: dict[str, int] = field(default_factory=dict)
    any_value: int = 0
    # By value: the lines that accept it, any_value included; made by ``seal``. At 10,000
    # campaigns a bitset is 3 KB, and an OR per dimension per request was a third of the
    # decision's cost.
    accepts: dict[str, int] = field(default_factory=dict)

    def add(self, values: Iterable[str], bit: int) -> None:
        flag = 1 << bit
        values = list(values)
        if not values:
            self.any_value |= flag
        for value in values:
            self.by_value[value] = self.by_value.get(value, 0) | flag
        self.accepts.clear()  # stale until sealed again

    def seal(self) -> None:
        """Combine each value's lines with the unconstrained ones, once all lines are in."""
        self.accepts = {value: self.any_value | lines for value, lines in self.by_value.items()}

    def accepting(self, value: str) -> int:
        found = self.accepts.get(value)
        if found is not None:
            return found
        found = self.by_value.get(value)
        return self.any_value if found is None else self.any_value | found  # unsealed

    def accepting_any(self, values: Iterable[str]) -> int:
        """Lines accepting at least one of several values (a site has several categories)."""
        found = self.any_value
        by_value = self.by_value
        for value in values:
            found |= by_value.get(value, 0)
        return found


@dataclass(slots=True)
class Block:
    """Lines that refuse a value."""

    by_value: dict[str, int] = field(default_factory=dict)

    def add(self, values: Iterable[str], bit: int) -> None:
        for value in values:
            self.by_value[value] = self.by_value.get(value, 0) | (1 << bit)

    def refusing(self, value: str) -> int:
        return self.by_value.get(value, 0) if value else 0


_CELL_DEGREES: Final = 0.5
_KM_PER_DEGREE: Final = 111.2


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return math.floor(lat / _CELL_DEGREES), math.floor(lon / _CELL_DEGREES)


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


@dataclass(slots=True)
class Circles:
    """Radius targeting: a grid of half-degree cells, each holding the lines whose circles
    reach into it, so a request only measures distances to the circles near it."""

    by_cell: dict[tuple[int, int], int] = field(default_factory=dict)
    any_place: int = 0  # lines without radius targeting
    circles: dict[int, tuple[Radius, ...]] = field(default_factory=dict)
    near_cell: dict[tuple[int, int], int] = field(default_factory=dict)  # any_place included

    def seal(self) -> None:
        """Combine each cell's lines with the lines without a radius (see ``Allow.seal``)."""
        self.near_cell = {cell: self.any_place | lines for cell, lines in self.by_cell.items()}

    def add(self, circles: tuple[Radius, ...], bit: int) -> None:
        self.near_cell.clear()  # stale until sealed again
        if not circles:
            self.any_place |= 1 << bit
            return
        self.circles[bit] = circles
        for circle in circles:
            lat_span = circle.km / _KM_PER_DEGREE
            lon_span = lat_span / max(0.01, math.cos(math.radians(circle.lat)))
            low = _cell(circle.lat - lat_span, circle.lon - lon_span)
            high = _cell(circle.lat + lat_span, circle.lon + lon_span)
            for row in range(low[0], high[0] + 1):
                for col in range(low[1], high[1] + 1):
                    self.by_cell[(row, col)] = self.by_cell.get((row, col), 0) | (1 << bit)

    def near(self, point: tuple[float, float] | None) -> int:
        """Lines that may accept the point: the exact distance is checked by ``contains``."""
        if point is None:
            return self.any_place
        cell = _cell(*point)
        found = self.near_cell.get(cell)
        if found is not None:
            return found
        found = self.by_cell.get(cell)
        return self.any_place if found is None else self.any_place | found  # unsealed

    def contains(self, bit: int, point: tuple[float, float] | None) -> bool:
        circles = self.circles.get(bit)
        if circles is None:
            return True
        if point is None:
            return False
        return any(distance_km(c.lat, c.lon, *point) <= c.km for c in circles)
