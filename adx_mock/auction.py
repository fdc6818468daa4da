"""The exchange's auction: valid bids per impression, the winner, the clearing price, macros.

Pure functions over typed values; the runner does the I/O around them.
"""

from __future__ import annotations

import base64
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from adx_mock.errors import BidResponseError

FIRST_PRICE: Final = 1
SECOND_PRICE: Final = 2

# OpenRTB 2.6 list "Loss Reason Codes" (the ones this exchange can produce).
LOSS_WON: Final = 0
LOSS_BELOW_FLOOR: Final = 100
LOSS_HIGHER_BID: Final = 102

# A second-price auction clears one cent above the runner-up, in the bid's currency units (CPM).
PRICE_INCREMENT: Final = 0.01

_MACRO = re.compile(r"\$\{(AUCTION_[A-Z_]+)(:B64)?\}")


@dataclass(frozen=True, slots=True)
class Bid:
    """One ``seatbid[].bid[]`` of a DSP's answer, with what the macros need from its parents."""

    source: str
    bid_id: str
    imp_id: str
    price: float
    seat: str = ""
    response_bid_id: str = ""
    nurl: str | None = None
    burl: str | None = None
    lurl: str | None = None
    adm: str | None = None
    adid: str = ""
    crid: str = ""
    cid: str = ""
    adomain: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Loss:
    bid: Bid
    reason: int
    min_to_win: float | None


@dataclass(frozen=True, slots=True)
class ImpResult:
    """The outcome for one impression; ``winner`` is None when no bid reached the floor."""

    imp_id: str
    floor: float
    winner: Bid | None
    clearing_price: float | None
    min_to_win: float | None
    losses: tuple[Loss, ...]


@dataclass(frozen=True, slots=True)
class MacroValues:
    """Values of the OpenRTB 2.6 section 4.4 substitution macros; None becomes ``""``."""

    auction_id: str
    bid_id: str = ""
    imp_id: str = ""
    seat_id: str = ""
    ad_id: str = ""
    price: float | None = None
    currency: str = "USD"
    mbr: float | None = None
    loss: int | None = None
    min_to_win: float | None = None
    multiplier: float | None = None  # imp.qty.multiplier (DOOH), "" when the imp has none
    imp_ts_ms: int | None = None  # when the impression was rendered, unix milliseconds


def parse_response(source: str, request_id: str, body: object) -> tuple[Bid, ...]:
    """The bids of one DSP answer; a malformed answer is refused as a whole."""
    if not isinstance(body, dict):
        raise BidResponseError(source, "not a JSON object")
    if body.get("id") != request_id:
        raise BidResponseError(source, f"id {body.get('id')!r} does not match the request")
    if body.get("cur", "USD") != "USD":
        raise BidResponseError(source, f"currency {body.get('cur')!r} was not offered")
    seatbids = body.get("seatbid", [])
    if not isinstance(seatbids, list):
        raise BidResponseError(source, "seatbid is not an array")
    response_bid_id = _text(body.get("bidid"))
    bids: list[Bid] = []
    for seatbid in seatbids:
        if not isinstance(seatbid, dict) or not isinstance(seatbid.get("bid"), list):
            raise BidResponseError(source, "seatbid without a bid array")
        seat = _text(seatbid.get("seat"))
        bids.extend(_bid(source, seat, response_bid_id, raw) for raw in seatbid["bid"])
    return tuple(bids)


def _bid(source: str, seat: str, response_bid_id: str, raw: object) -> Bid:
    if not isinstance(raw, dict):
        raise BidResponseError(source, "bid is not an object")
    price = raw.get("price")
    if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
        raise BidResponseError(source, f"bid price {price!r} is not a non-negative number")
    bid_id, imp_id = raw.get("id"), raw.get("impid")
    if not isinstance(bid_id, str) or not isinstance(imp_id, str):
        raise BidResponseError(source, "bid without string id and impid")
    adomain = raw.get("adomain", [])
    return Bid(
        source=source,
        bid_id=bid_id,
        imp_id=imp_id,
        price=float(price),
        seat=seat,
        response_bid_id=response_bid_id,
        nurl=_optional_text(raw.get("nurl")),
        burl=_optional_text(raw.get("burl")),
        lurl=_optional_text(raw.get("lurl")),
        adm=_optional_text(raw.get("adm")),
        adid=_text(raw.get("adid")),
        crid=_text(raw.get("crid")),
        cid=_text(raw.get("cid")),
        adomain=tuple(d for d in adomain if isinstance(d, str))
        if isinstance(adomain, list)
        else (),
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _optional_text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def floors_of(request: Mapping[str, object]) -> dict[str, float]:
    """``imp.id -> bidfloor`` of a bid request; an impression without a floor has floor 0."""
    floors: dict[str, float] = {}
    imps = request.get("imp")
    for imp in imps if isinstance(imps, list) else []:
        if isinstance(imp, dict) and isinstance(imp.get("id"), str):
            floor = imp.get("bidfloor", 0.0)
            floors[imp["id"]] = float(floor) if isinstance(floor, int | float) else 0.0
    return floors


def run_auction(
    floors: Mapping[str, float],
    bids: Iterable[Bid],
    *,
    auction_type: int,
    rng: random.Random,
) -> tuple[ImpResult, ...]:
    """One result per impression of the request; bids for unknown impressions are dropped."""
    by_imp: dict[str, list[Bid]] = {imp_id: [] for imp_id in floors}
    for bid in bids:
        if bid.imp_id in by_imp:
            by_imp[bid.imp_id].append(bid)
    return tuple(
        _auction_for_imp(imp_id, floors[imp_id], imp_bids, auction_type, rng)
        for imp_id, imp_bids in by_imp.items()
    )


def _auction_for_imp(
    imp_id: str, floor: float, bids: Sequence[Bid], auction_type: int, rng: random.Random
) -> ImpResult:
    below = tuple(Loss(b, LOSS_BELOW_FLOOR, _price(floor)) for b in bids if b.price < floor)
    ranked = [b for b in bids if b.price >= floor]
    # Shuffle before a stable sort so equal prices land in a seeded random order.
    rng.shuffle(ranked)
    ranked.sort(key=lambda b: b.price, reverse=True)
    if not ranked:
        return ImpResult(imp_id, floor, None, None, None, below)
    winner, runners_up = ranked[0], ranked[1:]
    second = max(runners_up[0].price if runners_up else 0.0, floor)
    # The lowest bid that would still have won; a second-price auction clears at exactly that.
    min_to_win = min(second + PRICE_INCREMENT, winner.price)
    clearing = winner.price if auction_type == FIRST_PRICE else min_to_win
    beat_winner = _price(winner.price + PRICE_INCREMENT)
    # Losers below the floor learn the winning threshold too: that is what they had to beat.
    losses = tuple(Loss(b, LOSS_HIGHER_BID, beat_winner) for b in runners_up)
    below = tuple(Loss(loss.bid, loss.reason, beat_winner) for loss in below)
    return ImpResult(imp_id, floor, winner, _price(clearing), _price(min_to_win), losses + below)


def _price(value: float) -> float:
    # Prices are CPM in currency units; six places keep float noise out of reports and macros.
    return round(value, 6)


def multipliers_of(request: Mapping[str, object]) -> dict[str, float]:
    """``imp.id -> imp.qty.multiplier`` for the impressions that give one (OpenRTB 2.6)."""
    found: dict[str, float] = {}
    imps = request.get("imp")
    for imp in imps if isinstance(imps, list) else []:
        if isinstance(imp, dict) and isinstance(imp.get("id"), str):
            qty = imp.get("qty")
            value = qty.get("multiplier") if isinstance(qty, dict) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                found[imp["id"]] = float(value)
    return found


def winner_macros(
    auction_id: str,
    result: ImpResult,
    currency: str = "USD",
    *,
    multiplier: float | None = None,
    imp_ts_ms: int | None = None,
) -> MacroValues:
    """Macro values for the winner's nurl, burl and adm."""
    if result.winner is None or result.clearing_price is None:
        raise ValueError(f"impression {result.imp_id} has no winner")
    bid = result.winner
    mbr = result.clearing_price / bid.price if bid.price > 0 else None
    return MacroValues(
        auction_id=auction_id,
        bid_id=bid.response_bid_id or bid.bid_id,
        imp_id=result.imp_id,
        seat_id=bid.seat,
        ad_id=bid.adid,
        price=result.clearing_price,
        currency=currency,
        mbr=mbr,
        loss=LOSS_WON,
        min_to_win=result.min_to_win,
        multiplier=multiplier,
        imp_ts_ms=imp_ts_ms,
    )


def loser_macros(
    auction_id: str, result: ImpResult, loss: Loss, currency: str = "USD"
) -> MacroValues:
    """Macro values for a losing bid's lurl."""
    bid = loss.bid
    return MacroValues(
        auction_id=auction_id,
        bid_id=bid.response_bid_id or bid.bid_id,
        imp_id=result.imp_id,
        seat_id=bid.seat,
        ad_id=bid.adid,
        price=result.clearing_price,
        currency=currency,
        loss=loss.reason,
        min_to_win=loss.min_to_win,
    )


def substitute_macros(text: str, values: MacroValues) -> str:
    """Replace ``${AUCTION_...}`` macros (and their ``:B64`` forms); unknown ones stay as-is."""
    table = _macro_table(values)

    def replace(match: re.Match[str]) -> str:
        name, b64 = match.group(1), match.group(2)
        if name not in table:
            return match.group(0)
        value = table[name]
        if b64:
            return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")
        return value

    return _MACRO.sub(replace, text)


def _macro_table(values: MacroValues) -> dict[str, str]:
    return {
        "AUCTION_ID": values.auction_id,
        "AUCTION_BID_ID": values.bid_id,
        "AUCTION_IMP_ID": values.imp_id,
        "AUCTION_SEAT_ID": values.seat_id,
        "AUCTION_AD_ID": values.ad_id,
        "AUCTION_PRICE": format_price(values.price),
        "AUCTION_CURRENCY": values.currency,
        "AUCTION_MBR": format_price(values.mbr),
        "AUCTION_LOSS": "" if values.loss is None else str(values.loss),
        "AUCTION_MIN_TO_WIN": format_price(values.min_to_win),
        "AUCTION_MULTIPLIER": "" if values.multiplier is None else f"{values.multiplier:g}",
        "AUCTION_IMP_TS": "" if values.imp_ts_ms is None else str(values.imp_ts_ms),
    }


def format_price(value: float | None) -> str:
    """``1.2345``: four decimals, the precision exchanges commonly send; None gives ``""``."""
    return "" if value is None else f"{value:.4f}"
