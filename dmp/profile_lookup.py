"""The bidder's lookup of one device, as the wire sees it: the command out, the reply back.

Split from ``dmp.profile_store`` (whose scripts it runs) because it is on the bid path and is
compiled with it (``infra.compiled``), and that module's async generators are not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from infra import keys
from infra.redis_pipe import command


@dataclass(slots=True, init=False, unsafe_hash=True)  # a value class: see ``infra.compiled``
class Found:
    """What one lookup brings back for a device, all from the same Redis slot."""

    profile: Final[bytes | None]  # None: the device has scene tags or counters but no profile
    scenes: Final[bytes | None]
    primary: Final[bytes]  # the digest the device is stored under (aliases followed)
    # The DSP's frequency counters of the device (``keys.frequency_counters``).
    counters: Final[dict[str, int]]
    # Member audiences the device belongs to (``dmp.audience_targeting``).
    audiences: Final[frozenset[str]]

    def __init__(
        self,
        profile: bytes | None,
        scenes: bytes | None,
        primary: bytes = b"",
        counters: dict[str, int] | None = None,
        audiences: frozenset[str] = frozenset(),
    ) -> None:
        self.profile = profile
        self.scenes = scenes
        self.primary = primary
        self.counters = {} if counters is None else counters
        self.audiences = audiences


def lookup_command(script_sha: bytes, digests: Sequence[bytes]) -> bytes:
    """An ``EVALSHA`` of the lookup script ``script_sha`` over ``digests`` as raw RESP."""
    args = [b"EVALSHA", script_sha, b"%d" % len(digests)]
    args += [keys.profile_bucket(d) for d in digests]
    args += digests
    return command(*args)


def found_of(reply: object) -> Found | None:
    """The lookup script's reply as a ``Found`` (None: no such device)."""
    if not isinstance(reply, list):
        return None
    profile, scenes, primary, flat, audiences = reply
    counters = {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}
    members = frozenset(audience.decode() for audience in audiences)
    return Found(profile or None, scenes or None, primary, counters, members)
