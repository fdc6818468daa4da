from __future__ import annotations

import random

import pytest

from adx_mock.auction import (
    FIRST_PRICE,
    LOSS_BELOW_FLOOR,
    LOSS_HIGHER_BID,
    SECOND_PRICE,
    Bid,
    ImpResult,
    MacroValues,
    floors_of,
    format_price,
    loser_macros,
    parse_response,
    run_auction,
    substitute_macros,
    winner_macros,
)
from adx_mock.errors import BidResponseError


def _bid(
    source: str,
    price: float,
    imp_id: str = "1",
    *,
    seat: str = "",
    adid: str = "",
    response_bid_id: str = "",
) -> Bid:
    return Bid(
        source=source,
        bid_id=f"{source}-{imp_id}",
        imp_id=imp_id,
        price=price,
        seat=seat,
        adid=adid,
        response_bid_id=response_bid_id,
    )


def _one(
    bids: list[Bid], floor: float = 0.5, auction_type: int = SECOND_PRICE, seed: int = 0
) -> ImpResult:
    (result,) = run_auction({"1": floor}, bids, auction_type=auction_type, rng=random.Random(seed))
    return result


def test_second_price_clears_a_cent_above_the_runner_up() -> None:
    result = _one([_bid("a", 1.5), _bid("b", 2.0), _bid("c", 0.8)])
    assert result.winner is not None and result.winner.source == "b"
    assert result.clearing_price == pytest.approx(1.51)
    assert result.min_to_win == pytest.approx(1.51)
    assert [(loss.bid.source, loss.reason) for loss in result.losses] == [
        ("a", LOSS_HIGHER_BID),
        ("c", LOSS_HIGHER_BID),
    ]
    assert all(loss.min_to_win == pytest.approx(2.01) for loss in result.losses)


def test_second_price_with_one_bid_clears_above_the_floor() -> None:
    result = _one([_bid("a", 2.0)], floor=0.7)
    assert result.clearing_price == pytest.approx(0.71)


def test_second_price_is_capped_at_the_winning_bid() -> None:
    assert _one([_bid("a", 1.0), _bid("b", 0.995)]).clearing_price == pytest.approx(1.0)
    assert _one([_bid("a", 0.505)], floor=0.5).clearing_price == pytest.approx(0.505)


def test_first_price_clears_at_the_bid() -> None:
    result = _one([_bid("a", 1.5), _bid("b", 2.0)], auction_type=FIRST_PRICE)
    assert result.winner is not None and result.winner.source == "b"
    assert result.clearing_price == pytest.approx(2.0)
    assert result.min_to_win == pytest.approx(1.51)


def test_bids_below_the_floor_lose() -> None:
    result = _one([_bid("a", 0.3), _bid("b", 0.49)], floor=0.5)
    assert result.winner is None and result.clearing_price is None
    assert {loss.reason for loss in result.losses} == {LOSS_BELOW_FLOOR}
    assert all(loss.min_to_win == pytest.approx(0.5) for loss in result.losses)

    mixed = _one([_bid("a", 0.3), _bid("b", 0.9)], floor=0.5)
    assert mixed.winner is not None and mixed.winner.source == "b"
    assert mixed.clearing_price == pytest.approx(0.51)
    assert [(loss.bid.source, loss.reason) for loss in mixed.losses] == [("a", LOSS_BELOW_FLOOR)]


def test_bids_for_unknown_impressions_are_dropped() -> None:
    results = run_auction(
        {"1": 0.1, "2": 0.1},
        [_bid("a", 1.0, imp_id="1"), _bid("b", 9.0, imp_id="7"), _bid("c", 2.0, imp_id="2")],
        auction_type=SECOND_PRICE,
        rng=random.Random(1),
    )
    assert [(r.imp_id, r.winner.source if r.winner else None) for r in results] == [
        ("1", "a"),
        ("2", "c"),
    ]
    assert all(not r.losses for r in results)


def test_ties_are_broken_by_the_seeded_rng() -> None:
    bids = [_bid("a", 1.0), _bid("b", 1.0), _bid("c", 1.0)]
    winners = {seed: _one(bids, seed=seed).winner for seed in range(40)}
    sources = {w.source for w in winners.values() if w is not None}
    assert sources == {"a", "b", "c"}
    # The same seed always gives the same winner.
    assert all(_one(bids, seed=seed).winner == winner for seed, winner in winners.items())
    tie = _one(bids, seed=3)
    assert tie.clearing_price == pytest.approx(1.0)


def test_parse_response() -> None:
    body = {
        "id": "req-1",
        "bidid": "resp-9",
        "cur": "USD",
        "seatbid": [
            {
                "seat": "seat-7",
                "bid": [
                    {
                        "id": "b1",
                        "impid": "1",
                        "price": 1.25,
                        "nurl": "http://dsp/win",
                        "adm": "<div></div>",
                        "adid": "ad-3",
                        "crid": "cr-3",
                        "cid": "c-3",
                        "adomain": ["brand.example"],
                    },
                    {"id": "b2", "impid": "2", "price": 2},
                ],
            }
        ],
    }
    first, second = parse_response("dsp-a", "req-1", body)
    assert first == Bid(
        source="dsp-a",
        bid_id="b1",
        imp_id="1",
        price=1.25,
        seat="seat-7",
        response_bid_id="resp-9",
        nurl="http://dsp/win",
        adm="<div></div>",
        adid="ad-3",
        crid="cr-3",
        cid="c-3",
        adomain=("brand.example",),
    )
    assert second.price == 2.0 and second.nurl is None and second.seat == "seat-7"
    assert parse_response("dsp-a", "req-1", {"id": "req-1", "seatbid": []}) == ()
    assert parse_response("dsp-a", "req-1", {"id": "req-1"}) == ()


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"id": "other", "seatbid": []},
        {"id": "req-1", "cur": "EUR", "seatbid": []},
        {"id": "req-1", "seatbid": {}},
        {"id": "req-1", "seatbid": [{"seat": "x"}]},
        {"id": "req-1", "seatbid": [{"bid": [{"id": "b", "impid": "1", "price": "1"}]}]},
        {"id": "req-1", "seatbid": [{"bid": [{"id": "b", "impid": "1", "price": -1}]}]},
        {"id": "req-1", "seatbid": [{"bid": [{"id": "b", "impid": "1", "price": True}]}]},
        {"id": "req-1", "seatbid": [{"bid": [{"impid": "1", "price": 1}]}]},
    ],
)
def test_parse_response_refuses_malformed_answers(body: object) -> None:
    with pytest.raises(BidResponseError):
        parse_response("dsp-a", "req-1", body)


def test_floors_of() -> None:
    request = {"imp": [{"id": "1", "bidfloor": 0.25}, {"id": "2"}, {"bidfloor": 3}]}
    assert floors_of(request) == {"1": 0.25, "2": 0.0}
    assert floors_of({}) == {}


ALL_MACROS = (
    "${AUCTION_ID}|${AUCTION_BID_ID}|${AUCTION_IMP_ID}|${AUCTION_SEAT_ID}|${AUCTION_AD_ID}|"
    "${AUCTION_PRICE}|${AUCTION_CURRENCY}|${AUCTION_MBR}|${AUCTION_LOSS}|${AUCTION_MIN_TO_WIN}"
)


def test_substitute_every_macro() -> None:
    values = MacroValues(
        auction_id="req-1",
        bid_id="resp-9",
        imp_id="2",
        seat_id="seat-7",
        ad_id="ad-3",
        price=1.23456,
        currency="USD",
        mbr=0.5,
        loss=102,
        min_to_win=2.01,
    )
    assert substitute_macros(ALL_MACROS, values) == (
        "req-1|resp-9|2|seat-7|ad-3|1.2346|USD|0.5000|102|2.0100"
    )


def test_missing_values_unknown_macros_and_b64() -> None:
    values = MacroValues(auction_id="req-1", price=1.5)
    assert substitute_macros("${AUCTION_LOSS}/${AUCTION_MBR}/${AUCTION_AD_ID}", values) == "//"
    assert substitute_macros("${OTHER_MACRO}&${AUCTION_FOO}", values) == (
        "${OTHER_MACRO}&${AUCTION_FOO}"
    )
    # base64url without padding: "1.5000" -> "MS41MDAw"
    assert substitute_macros("p=${AUCTION_PRICE:B64}", values) == "p=MS41MDAw"
    assert substitute_macros("no macros here", values) == "no macros here"
    assert format_price(None) == "" and format_price(3) == "3.0000"


def test_winner_and_loser_macros() -> None:
    winner = _bid("a", 2.0, seat="seat-a", adid="ad-a", response_bid_id="resp-a")
    loser = _bid("b", 1.5, seat="seat-b", adid="ad-b")
    result = _one([winner, loser])
    won = winner_macros("req-1", result)
    assert substitute_macros(ALL_MACROS, won) == (
        "req-1|resp-a|1|seat-a|ad-a|1.5100|USD|0.7550|0|1.5100"
    )
    (loss,) = result.losses
    lost = loser_macros("req-1", result, loss)
    assert substitute_macros(ALL_MACROS, lost) == "req-1|b-1|1|seat-b|ad-b|1.5100|USD||102|2.0100"


def test_winner_macros_need_a_winner() -> None:
    with pytest.raises(ValueError):
        winner_macros("req-1", _one([], floor=0.5))
