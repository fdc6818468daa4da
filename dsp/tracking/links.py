"""Signed tracking links: the win notice, the impression pixel and the click redirect.

The three links of one bid carry the same fields and the same signature (HMAC-SHA256 over
the fields, truncated to 128 bits), so a bid costs one HMAC. Anyone holding a bid's markup
already holds its click link, so sharing the signature across kinds gives away nothing.
The clearing price is not signed: the exchange fills it in after the bid.

Every link also names the budget lease its bid was reserved from (the bidding process's
keeper id and the budget day) and how the campaign is billed, so whichever process receives
a notice charges the right lease, on the right notice.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from dsp.errors import BadNotice, BadSignature

PRICE_MACRO = "${AUCTION_PRICE}"
LOSS_MACRO = "${AUCTION_LOSS}"
_FIELDS = ("a", "i", "c", "r", "d", "b", "x", "t", "k", "y", "m")


@dataclass(frozen=True, slots=True)
class Notice:
    """What a tracking link says about the bid it belongs to."""

    auction_id: str
    imp_id: str
    campaign_id: str
    creative_id: str
    device: str  # hex lookup digest of the device, "" when unknown
    bid_micros: int  # our bid, USD micros CPM: the most a win can be charged
    currency: str  # the currency the exchange prices the notice in
    issued_ms: int  # unix milliseconds of the bid
    keeper: str  # id of the bidder process whose budget lease the bid was reserved from
    day: str  # the budget day (YYYYMMDD, the campaign's zone) of that lease
    billing: str  # "nurl" or "burl": the notice that charges

    @property
    def lease(self) -> str:
        return f"{self.keeper}@{self.day}"


@dataclass(frozen=True, slots=True)
class Links:
    win: str  # nurl, with the price macro
    billing: str  # burl: the win link marked as the billing notice
    loss: str  # lurl, with the loss-reason macro
    impression: str
    click: str


class LinkSigner:
    def __init__(self, key: bytes, base_url: str) -> None:
        self._key = key
        self._base = base_url.rstrip("/")

    def _signature(self, values: tuple[str, ...]) -> str:
        message = "\x1f".join(values).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def query(self, notice: Notice) -> str:
        """The signed query string shared by every link of a bid."""
        values = (
            notice.auction_id,
            notice.imp_id,
            notice.campaign_id,
            notice.creative_id,
            notice.device,
            str(notice.bid_micros),
            notice.currency,
            str(notice.issued_ms),
            notice.keeper,
            notice.day,
            notice.billing,
        )
        pairs = "&".join(
            f"{name}={quote(value, safe='')}" for name, value in zip(_FIELDS, values, strict=True)
        )
        return f"{pairs}&s={self._signature(values)}"

    def links(self, notice: Notice) -> Links:
        """Every link of a bid, from one signature."""
        query = self.query(notice)
        win = f"{self._base}/win?{query}&p={PRICE_MACRO}"
        return Links(
            win=win,
            billing=f"{win}&n=burl",
            loss=f"{self._base}/loss?{query}&l={LOSS_MACRO}",
            impression=f"{self._base}/imp?{query}",
            click=f"{self._base}/click?{query}",
        )

    def verify(self, params: Mapping[str, str], path: str) -> Notice:
        """The notice a link's query describes; ``BadSignature`` if anything was changed."""
        try:
            values = tuple(params[name] for name in _FIELDS)
            signature = params["s"]
        except KeyError as missing:
            raise BadNotice(str(missing.args[0]), "missing") from None
        if not hmac.compare_digest(signature, self._signature(values)):
            raise BadSignature(path)
        auction, imp, campaign, creative, device, bid, currency, issued, *lease = values
        keeper, day, billing = lease
        try:
            return Notice(
                auction, imp, campaign, creative, device, int(bid), currency, int(issued), keeper,
                day, billing,
            )  # fmt: skip
        except ValueError:
            raise BadNotice("b", "not a number") from None
