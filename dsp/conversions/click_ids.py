"""Signed click ids: what the click redirect appends to the landing URL (``dsp_click=``).

A click id carries what attribution needs without a lookup: the auction and imp of the
click, campaign, creative, device key, matched tags and the click's time. It is signed with
the tracking links' key ring (newest key signs, every configured key verifies), under its
own domain tag so a click id can never pass for a tracking link or the other way round.

Text form: ``<base64url(fields joined by US)>.<key id>.<signature>``, URL-safe as it is.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from dsp.conversions.errors import ConversionRefused
from dsp.errors import BadNotice
from dsp.tracking.links import LinkSigner, Notice

PARAM = "dsp_click"  # the landing URL's query parameter that carries the click id
_DOMAIN = "click-id/1"
_SEP = "\x1f"
_MAX_LEN = 2048


@dataclass(frozen=True, slots=True)
class ClickId:
    auction_id: str
    imp_id: str
    campaign_id: str
    creative_id: str
    device: str  # hex device key, "" when unknown
    tags: tuple[int, ...]
    clicked_ms: int  # unix milliseconds of the click


def _fields(click: ClickId) -> tuple[str, ...]:
    return (
        _DOMAIN, click.auction_id, click.imp_id, click.campaign_id, click.creative_id,
        click.device, ".".join(map(str, click.tags)), str(click.clicked_ms),
    )  # fmt: skip


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ClickIds:
    """Mints and reads click ids with a ``LinkSigner``'s keys."""

    def __init__(self, signer: LinkSigner) -> None:
        self._signer = signer

    def mint(self, notice: Notice, clicked_ms: int) -> str:
        click = ClickId(
            notice.auction_id, notice.imp_id, notice.campaign_id, notice.creative_id,
            notice.device, notice.tags, clicked_ms,
        )  # fmt: skip
        values = _fields(click)
        key_id, signature = self._signer.sign(values)
        return f"{_b64(_SEP.join(values[1:]).encode())}.{key_id}.{signature}"

    def read(self, text: str) -> ClickId:
        """The click a click id names; ``BadNotice`` when malformed, ``ConversionRefused``
        when its signature does not match (forged, altered, or its key was retired)."""
        if not text or len(text) > _MAX_LEN or text.count(".") != 2:
            raise BadNotice("click", "not a click id")
        payload, key_id, signature = text.split(".")
        try:
            parts = _unb64(payload).decode().split(_SEP)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise BadNotice("click", "not a click id") from None
        if len(parts) != 7:
            raise BadNotice("click", "not a click id")
        if not self._signer.check((_DOMAIN, *parts), key_id, signature):
            raise ConversionRefused("forged_click", "the click id's signature does not match")
        auction, imp, campaign, creative, device, tags, clicked = parts
        try:
            tag_ids = tuple(int(tag) for tag in tags.split(".")) if tags else ()
            return ClickId(auction, imp, campaign, creative, device, tag_ids, int(clicked))
        except ValueError:
            raise BadNotice("click", "not a click id") from None


def with_click_id(landing_url: str, click_id: str) -> str:
    """The landing URL with ``dsp_click=<id>`` added to its query, fragment kept last."""
    base, hash_mark, fragment = landing_url.partition("#")
    joiner = "&" if "?" in base else "?"
    if base.endswith(("?", "&")):
        joiner = ""
    return f"{base}{joiner}{PARAM}={click_id}{hash_mark}{fragment}"
