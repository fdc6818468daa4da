"""Attribution: which one click or impression a conversion is credited to. Pure functions.

- A conversion that carries a click id is credited to that click, when the click lies
  inside its campaign's click window (``click_window_days``, default 7 days); an older one
  is refused as expired.
- A conversion reported for a device (server to server) goes to the device's last touch
  among the advertiser's campaigns: its latest click still inside that campaign's click
  window, or its latest impression inside the view-through window (default 1 day),
  whichever came last. Nothing in a window: the conversion is not attributed.

Either way one conversion is credited to exactly one touch (one auction and imp) at most.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import orjson

from dsp.conversions.click_ids import ClickId
from dsp.conversions.errors import ConversionRefused

TouchKind = Literal["click", "imp"]
DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class Touch:
    """A counted click or impression a conversion may be credited to."""

    kind: TouchKind
    auction_id: str
    imp_id: str
    campaign_id: str
    creative_id: str
    device: str
    tags: tuple[int, ...]
    ts_ms: int

    @property
    def event_type(self) -> str:
        """The conversion's event type: click-through or view-through."""
        return "conversion" if self.kind == "click" else "view_conversion"


def click_touch(click: ClickId) -> Touch:
    return Touch(
        "click", click.auction_id, click.imp_id, click.campaign_id, click.creative_id,
        click.device, click.tags, click.clicked_ms,
    )  # fmt: skip


def click_through(click: ClickId, now_ms: int, window_s: int) -> Touch:
    """The click a click id names, if the conversion at ``now_ms`` is inside its window."""
    age_ms = now_ms - click.clicked_ms
    if age_ms > window_s * 1000:
        raise ConversionRefused(
            "expired_click",
            f"the click is {age_ms // 1000} s old, past the campaign's {window_s} s window",
        )
    return click_touch(click)


def touch_of(field: str, value: bytes | str) -> Touch | None:
    """A touch as the ledger stores it (field ``<campaign>|<kind>``, the event JSON)."""
    campaign, _, kind = field.rpartition("|")
    if kind not in ("click", "imp"):
        return None
    try:
        event = orjson.loads(value)
        return Touch(
            "click" if kind == "click" else "imp", str(event["auction"]), str(event["imp"]),
            campaign, str(event["creative"]), str(event.get("device", "")),
            tuple(int(t) for t in event.get("tags", ())), int(event["ts"]),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError):
        return None


def touches_of(stored: Mapping[bytes, bytes]) -> list[Touch]:
    found = (touch_of(field.decode(), value) for field, value in stored.items())
    return [touch for touch in found if touch is not None]


def last_touch(
    touches: Iterable[Touch],
    now_ms: int,
    *,
    click_window_s: Callable[[str], int],
    view_window_s: int,
) -> Touch | None:
    """The latest touch still inside its window (ties: a click beats an impression)."""
    best: Touch | None = None
    for touch in touches:
        window_s = click_window_s(touch.campaign_id) if touch.kind == "click" else view_window_s
        if not 0 <= now_ms - touch.ts_ms <= window_s * 1000:
            continue
        rank = (touch.ts_ms, touch.kind == "click")
        if best is None or rank > (best.ts_ms, best.kind == "click"):
            best = touch
    return best
