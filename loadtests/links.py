"""The tracking links of real bid answers, as an exchange and a browser would call them.

A bid carries its win notice (``nurl``), billing notice (``burl``) and loss notice
(``lurl``) with the exchange's macros, and its markup (``adm``: banner HTML, native JSON
or VAST) carries the impression pixel and the click link. Only links back to the bidder
under test are kept: a load test never calls anything beyond loopback.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PRICE_MACRO = "${AUCTION_PRICE}"
LOSS_MACRO = "${AUCTION_LOSS}"
LOSS_OUTBID = "102"  # OpenRTB loss reason: lost to a higher bid
CLEARING_SHARE = 0.8  # the clearing price as a share of the bid (a second-price auction)
_IN_MARKUP = re.compile(r"https?://[^\s\"'<>\]]+/(?:imp|click)\?[^\s\"'<>\]]+")


@dataclass(frozen=True, slots=True)
class BidLinks:
    """What the exchange and the browser call back for one bid."""

    price: float
    win: str | None
    billing: str | None
    loss: str | None
    impressions: tuple[str, ...]
    clicks: tuple[str, ...]

    def won(self) -> list[str]:
        """The win and billing notices at the clearing price."""
        cleared = f"{self.price * CLEARING_SHARE:.4f}"
        return [url.replace(PRICE_MACRO, cleared) for url in (self.win, self.billing) if url]

    def lost(self) -> str | None:
        return self.loss.replace(LOSS_MACRO, LOSS_OUTBID) if self.loss else None


def _ours(url: object, base: str) -> str | None:
    return url if isinstance(url, str) and url.startswith(base + "/") else None


def _markup_links(adm: object, base: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Impression and click links in the markup, entity-decoded (banner HTML has ``&amp;``)."""
    if not isinstance(adm, str):
        return (), ()
    found = [html.unescape(url) for url in _IN_MARKUP.findall(adm)]
    # A native answer names its pixel twice (imptrackers, eventtrackers): one call each.
    ours = list(dict.fromkeys(url for url in found if url.startswith(base + "/")))
    imps = tuple(url for url in ours if url.startswith(base + "/imp?"))
    clicks = tuple(url for url in ours if url.startswith(base + "/click?"))
    return imps, clicks


def _bid_links(bid: Mapping[str, Any], base: str) -> BidLinks | None:
    price = bid.get("price")
    if not isinstance(price, int | float) or price <= 0:
        return None
    imps, clicks = _markup_links(bid.get("adm"), base)
    return BidLinks(
        price=float(price),
        win=_ours(bid.get("nurl"), base),
        billing=_ours(bid.get("burl"), base),
        loss=_ours(bid.get("lurl"), base),
        impressions=imps,
        clicks=clicks,
    )


def bid_links(answer: object, base: str) -> list[BidLinks]:
    """The links of every bid in a decoded bid response; ``base`` is the bidder's URL."""
    if not isinstance(answer, Mapping):
        return []
    found = []
    for seatbid in answer.get("seatbid") or ():
        for bid in (seatbid.get("bid") or ()) if isinstance(seatbid, Mapping) else ():
            links = _bid_links(bid, base) if isinstance(bid, Mapping) else None
            if links is not None:
                found.append(links)
    return found
