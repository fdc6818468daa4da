from __future__ import annotations

import dataclasses

import pytest

from dsp.conversions.click_ids import ClickIds, with_click_id
from dsp.conversions.errors import ConversionRefused
from dsp.errors import BadNotice
from dsp.tracking.links import LinkSigner, Notice

NOTICE = Notice(
    "auc-1", "1", "c1", "cr1", "ab" * 8, 2_000_000, "USD", 1_700_000_000_000, "k1",
    "20260101", "nurl", (12, 40),
)  # fmt: skip


def signer(*keys: tuple[str, bytes]) -> LinkSigner:
    return LinkSigner(list(keys), "http://dsp.test")


def test_a_click_id_carries_what_attribution_needs() -> None:
    ids = ClickIds(signer(("1", b"key-one")))
    click = ids.read(ids.mint(NOTICE, 1_700_000_123_456))
    assert (click.auction_id, click.imp_id, click.campaign_id, click.creative_id) == (
        "auc-1", "1", "c1", "cr1",
    )  # fmt: skip
    assert (click.device, click.tags, click.clicked_ms) == ("ab" * 8, (12, 40), 1_700_000_123_456)


def test_forged_altered_or_retired_click_ids_are_refused() -> None:
    old = ClickIds(signer(("1", b"key-one")))
    minted = old.mint(NOTICE, 1)
    payload, key_id, signature = minted.split(".")
    other = ClickIds(signer(("1", b"another-key"))).mint(NOTICE, 1)
    with pytest.raises(ConversionRefused) as refused:
        old.read(other)  # signed with a key we never had
    assert refused.value.reason == "forged_click"
    altered = ClickIds(signer(("1", b"key-one"))).mint(
        dataclasses.replace(NOTICE, campaign_id="c2"), 1
    )
    with pytest.raises(ConversionRefused):  # the payload of c2 with the signature of c1
        old.read(f"{altered.split('.')[0]}.{key_id}.{signature}")
    with pytest.raises(ConversionRefused):
        old.read(f"{payload}.{key_id}.{'0' * 32}")
    rotated = ClickIds(signer(("2", b"key-two"), ("1", b"key-one")))
    assert rotated.read(minted).campaign_id == "c1"  # the old key still verifies
    retired = ClickIds(signer(("2", b"key-two")))
    with pytest.raises(ConversionRefused):
        retired.read(minted)
    for junk in ("", "abc", "a.b.c.d", "!!!.1.00", "x" * 5000):
        with pytest.raises(BadNotice):
            old.read(junk)


def test_a_click_id_is_not_a_tracking_link_signature() -> None:
    # The same key signs links and click ids; the domain tag keeps them apart.
    links = signer(("1", b"key-one"))
    query = dict(part.split("=", 1) for part in links.query(NOTICE).split("&"))
    forged = f"YQ.1.{query['s']}"
    with pytest.raises((ConversionRefused, BadNotice)):
        ClickIds(links).read(forged)


@pytest.mark.parametrize(
    ("landing", "expected"),
    [
        ("https://shop.example/p", "https://shop.example/p?dsp_click=ID"),
        ("https://shop.example/p?a=1", "https://shop.example/p?a=1&dsp_click=ID"),
        ("https://shop.example/p?a=1#top", "https://shop.example/p?a=1&dsp_click=ID#top"),
        ("https://shop.example/p#x?y", "https://shop.example/p?dsp_click=ID#x?y"),
        ("https://shop.example/p?", "https://shop.example/p?dsp_click=ID"),
    ],
)
def test_the_landing_url_keeps_its_query_and_fragment(landing: str, expected: str) -> None:
    assert with_click_id(landing, "ID") == expected
