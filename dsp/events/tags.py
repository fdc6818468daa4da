"""Which of a device's tags a campaign's targeting matched: the ``tags`` of its events.

The tags a campaign's own tag expression refers to, that the device has. Worked out once
per expression (cached), then a set intersection per admitted bid.
"""

from __future__ import annotations

from collections.abc import Mapping

from dmp.errors import DmpError
from dmp.tag_expression import parse, referenced_tags
from dmp.taxonomy import Taxonomy


class TagMatcher:
    def __init__(self, taxonomy: Taxonomy) -> None:
        self._taxonomy = taxonomy
        self._referenced: dict[str, frozenset[int]] = {}

    def referenced(self, expression: str | None) -> frozenset[int]:
        if not expression:
            return frozenset()
        found = self._referenced.get(expression)
        if found is None:
            try:
                found = referenced_tags(parse(expression), self._taxonomy)
            except DmpError:
                found = frozenset()
            if len(self._referenced) < 100_000:
                self._referenced[expression] = found
        return found

    def matched(self, expression: str | None, device_tags: Mapping[int, int]) -> tuple[int, ...]:
        """Sorted ids of the device's tags that ``expression`` looks at."""
        if not device_tags or not expression:
            return ()
        return tuple(sorted(self.referenced(expression).intersection(device_tags)))
