from __future__ import annotations

import html

import pytest

from dsp.bidder.markup import escape


@pytest.mark.parametrize(
    "text",
    ["", "plain", "https://dsp/click?a=1&b=2", '<script>"x"</script>', "it's & <b>", "&amp;"],
)
def test_escape_is_the_standard_librarys_with_quotes(text: str) -> None:
    assert escape(text) == html.escape(text, quote=True)
