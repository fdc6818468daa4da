"""Signed tracking links: the win notice, the impression pixel and the click redirect.

The three links of one bid carry the same fields and the same signature (HMAC-SHA256 over
the fields, truncated to 128 bits), so a bid costs one HMAC. Anyone holding a bid's markup
already holds its click link, so sharing the signature across kinds gives away nothing.
The clearing price is not signed: the exchange fills it in after the bid.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from dsp.errors import BadNotice, BadSignature

PRICE_MACRO = "${AUCTION_PRICE}"
_FIELDS = ("a", "i", "c", "r", "d", "b", "x", "t")


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
    timestamp: int


class LinkSigner:
    def __init__(self, key: bytes, base_url: str) -> None:
        self._key = key
        self._base = base_url.rstrip("/")

    def _signature(self, values: tuple[str, ...]) -> str:
        message = "\x1f".join(values).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def query(self, notice: Notice) -> str:
        """The signed query string shared by the three links of a bid."""
        values = (
            notice.auction_id,
            notice.imp_id,
            notice.campaign_id,
            notice.creative_id,
            notice.device,
            str(notice.bid_micros),
            notice.currency,
            str(notice.timestamp),
        )
        pairs = "&".join(
            f"{name}={quote(value, safe='')}" for name, value in zip(_FIELDS, values, strict=True)
        )
        return f"{pairs}&s={self._signature(values)}"

    def links(self, notice: Notice) -> tuple[str, str, str]:
        """(win notice with the price macro, impression pixel, click redirect)."""
        query = self.query(notice)
        return (
            f"{self._base}/win?{query}&p={PRICE_MACRO}",
            f"{self._base}/imp?{query}",
            f"{self._base}/click?{query}",
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
        auction_id, imp_id, campaign_id, creative_id, device, bid, currency, timestamp = values
        return Notice(
            auction_id, imp_id, campaign_id, creative_id, device, int(bid), currency, int(timestamp)
        )
