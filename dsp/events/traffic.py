"""Invalid-traffic rules that need no state: clicks from known bot user agents.

The list is a data file (``data/bot_user_agents.txt``), one lower-case substring a line.
The rules that need state (a click without an impression, too many clicks of one device in
a window) are judged in the ledger's script, atomically with the once-only check.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from importlib import resources


def _patterns(lines: Iterable[str]) -> tuple[str, ...]:
    stripped = (line.strip().lower() for line in lines)
    return tuple(line for line in stripped if line and not line.startswith("#"))


@lru_cache(maxsize=1)
def bot_patterns() -> tuple[str, ...]:
    text = resources.files("dsp.events").joinpath("data/bot_user_agents.txt").read_text()
    return _patterns(text.splitlines())


class BotFilter:
    """Tells a bot's user agent (or a missing one) from a person's browser."""

    def __init__(self, patterns: Iterable[str] | None = None) -> None:
        self._patterns = bot_patterns() if patterns is None else _patterns(patterns)
        self._seen: dict[str, bool] = {}

    def is_bot(self, user_agent: str | None) -> bool:
        if not user_agent:
            return True  # browsers always send one
        known = self._seen.get(user_agent)
        if known is None:
            lowered = user_agent.lower()
            known = any(pattern in lowered for pattern in self._patterns)
            if len(self._seen) < 10_000:
                self._seen[user_agent] = known
        return known
