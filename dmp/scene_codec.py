"""Scene tags: short-lived tags from behaviour events, kept apart from the profile.

A scene ("at the airport", "opened a car app") lives for hours, not days, so it gets its
own small value per device with minute expiry, and Redis drops the whole value when the
longest-lived scene of the device ends. Layout: repeated ``<u16 tag id, u8 score, u32
expiry minute (unix seconds // 60)>``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Final

_ENTRY: Final = struct.Struct("<HBI")


def encode_scenes(entries: Mapping[int, tuple[int, int]]) -> bytes:
    """``{tag id: (score, expiry minute)}`` as bytes."""
    return b"".join(_ENTRY.pack(tag, score, expiry) for tag, (score, expiry) in entries.items())


def decode_scenes(blob: bytes) -> dict[int, tuple[int, int]]:
    """Every stored scene, live or not: for merging a new event in."""
    usable = len(blob) - len(blob) % _ENTRY.size
    return {tag: (score, expiry) for tag, score, expiry in _ENTRY.iter_unpack(blob[:usable])}


def live_scene_tags(blob: bytes, now_minute: int) -> dict[int, int]:
    """``{tag id: score}`` of the scenes still live at ``now_minute``."""
    return {
        tag: score for tag, (score, expiry) in decode_scenes(blob).items() if expiry > now_minute
    }


def merge_scenes(
    stored: Mapping[int, tuple[int, int]], new: Iterable[tuple[int, int, int]], now_minute: int
) -> dict[int, tuple[int, int]]:
    """Stored live scenes plus ``(tag, score, expiry)`` events; a tag keeps its later expiry."""
    merged = {tag: value for tag, value in stored.items() if value[1] > now_minute}
    for tag, score, expiry in new:
        kept = merged.get(tag)
        if kept is None or expiry >= kept[1]:
            merged[tag] = (score, expiry)
    return merged
