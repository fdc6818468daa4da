"""Keys that must share a Redis Cluster slot do."""

from __future__ import annotations

from redis.crc import key_slot

from infra import keys


def test_an_event_appended_mark_lives_in_the_event_streams_slot() -> None:
    seen = keys.notice_seen("win", "c1", "auction-1", "1")
    assert key_slot(keys.event_appended(seen).encode()) == key_slot(keys.EVENTS)
    assert keys.event_appended(seen) != keys.event_appended(seen.replace("win", "imp"))
