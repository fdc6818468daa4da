"""The OpenRTB BidResponse for a decision: prices in the exchange's currency, signed links.

Every bid in it has money reserved for it; its links name the lease the money came from.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Final

from dsp.bidder.decide import Bid
from dsp.bidder.markup import markup
from dsp.bidder.openrtb import BidRequest
from dsp.budget.keeper import Reservation
from dsp.tracking.links import LinkSigner, Notice

SEAT: Final = "rtb-dsp"
_MICRO: Final = Decimal("0.000001")


def response_currency(requested: Sequence[str], fx_per_usd: Mapping[str, Decimal]) -> str | None:
    """USD when allowed, else the first allowed currency we have a rate for."""
    if not requested or "USD" in requested:
        return "USD"
    return next((code for code in requested if code in fx_per_usd), None)


@functools.lru_cache(maxsize=8192)  # a line's price and the rates rarely change: Decimal once
def price_in(currency_rate: Decimal, usd_micros: int) -> float:
    # Rounded up: rounding down could put a bid that meets the floor just under it.
    price = (Decimal(usd_micros) * currency_rate / 1_000_000).quantize(_MICRO, ROUND_CEILING)
    return float(price)


@dataclass(slots=True, init=False, unsafe_hash=True)  # a value class: see ``infra.compiled``
class Admitted:
    """A bid the budget has set money aside for."""

    bid: Final[Bid]
    reservation: Final[Reservation]
    tags: Final[tuple[int, ...]]  # issue 6: matched tag ids, signed into the tracking links
    # issue 12: the device's tag -> score map (the decoded profile's own, not copied): the
    # bid event's row takes the matched tags' scores from it (``dsp.events.bid_log``).
    scores: Final[Mapping[int, int] | None]

    def __init__(
        self,
        bid: Bid,
        reservation: Reservation,
        tags: tuple[int, ...] = (),
        scores: Mapping[int, int] | None = None,
    ) -> None:
        self.bid = bid
        self.reservation = reservation
        self.tags = tags
        self.scores = scores


def bid_response(
    request: BidRequest,
    admitted: Sequence[Admitted],
    *,
    signer: LinkSigner,
    currency: str,
    rate: Decimal,
    device: str,
    now_ms: int,
) -> dict[str, object]:
    answers = []
    for bid, reservation, tags in ((a.bid, a.reservation, a.tags) for a in admitted):
        line, creative = bid.line, bid.line.creative
        notice = Notice(
            request.id, bid.imp.id, line.campaign.id, creative.id, device, line.price_micros,
            currency, now_ms, reservation.keeper_id, reservation.day, line.campaign.billing,
            tags,
        )  # fmt: skip
        links = signer.links(notice)
        answer: dict[str, object] = {
            "id": f"{request.id}:{bid.imp.id}",
            "impid": bid.imp.id,
            "price": price_in(rate, line.price_micros),
            "adm": markup(creative, bid.imp.native, links.impression, links.click),
            "nurl": links.win,
            "burl": links.billing,
            "lurl": links.loss,
            "adomain": list(creative.adomain),
            "cid": line.campaign.id,
            "crid": creative.id,
            "adid": creative.id,
        }
        if creative.cat:
            answer["cat"] = list(creative.cat)
        if creative.w and creative.h:
            answer["w"], answer["h"] = creative.w, creative.h
        answers.append(answer)
    return {
        "id": request.id,
        "bidid": request.id,
        "cur": currency,
        "seatbid": [{"seat": SEAT, "bid": answers}],
    }
