from __future__ import annotations

import orjson
import pytest

from adx_mock.errors import MarkupError
from adx_mock.markup import AdEvents, read_markup

BANNER = """
<div style="width:300px">
  <a href="https://dsp.example/click?cid=7&amp;sig=ab%2Fc" target="_blank">
    <img src="https://cdn.example/creative.png" width="300" height="250" alt="ad">
  </a>
  <img src="https://dsp.example/imp?a=1&amp;b=2" width="1" height="1" style="display:none">
  <IMG SRC='https://third.example/pixel.gif' WIDTH='1px' HEIGHT='1px'/>
  <img width="1" height="1">
</div>
"""

VAST = """<?xml version="1.0" encoding="UTF-8"?>
<VAST version="4.0">
  <Ad id="a1">
    <InLine>
      <AdSystem>dsp</AdSystem>
      <Impression id="i1"><![CDATA[https://dsp.example/imp?a=1&b=2]]></Impression>
      <Impression>https://third.example/vimp?x=1&amp;y=2</Impression>
      <Impression><![CDATA[ ]]></Impression>
      <Creatives>
        <Creative>
          <Linear>
            <Duration>00:00:15</Duration>
            <VideoClicks>
              <ClickThrough><![CDATA[https://dsp.example/click?cid=7]]></ClickThrough>
              <ClickTracking>https://dsp.example/ct</ClickTracking>
            </VideoClicks>
          </Linear>
        </Creative>
      </Creatives>
    </InLine>
  </Ad>
</VAST>"""

NATIVE: dict[str, object] = {
    "ver": "1.2",
    "link": {"url": "https://dsp.example/click?cid=9", "clicktrackers": ["https://x.example/c"]},
    "assets": [{"id": 1, "title": {"text": "Hello"}}],
    "imptrackers": ["https://dsp.example/imp?n=1"],
    "eventtrackers": [
        {"event": 1, "method": 1, "url": "https://dsp.example/imp?n=2"},
        {"event": 1, "method": 2, "url": "https://dsp.example/tracker.js"},
        {"event": 2, "method": 1, "url": "https://dsp.example/viewable"},
    ],
}


def test_banner_pixels_and_click() -> None:
    assert read_markup(BANNER) == AdEvents(
        "banner",
        ("https://dsp.example/imp?a=1&b=2", "https://third.example/pixel.gif"),
        "https://dsp.example/click?cid=7&sig=ab%2Fc",
    )


def test_banner_without_trackers() -> None:
    assert read_markup("<div>hello</div>") == AdEvents("banner", (), None)


def test_vast_impressions_and_click_through() -> None:
    assert read_markup(VAST) == AdEvents(
        "vast",
        ("https://dsp.example/imp?a=1&b=2", "https://third.example/vimp?x=1&y=2"),
        "https://dsp.example/click?cid=7",
    )


def test_vast_without_xml_declaration() -> None:
    vast = '<VAST version="3.0"><Ad><InLine><Impression>https://i.example/</Impression>'
    vast += "</InLine></Ad></VAST>"
    assert read_markup(vast) == AdEvents("vast", ("https://i.example/",), None)


@pytest.mark.parametrize("wrapped", [True, False])
def test_native_trackers_and_link(wrapped: bool) -> None:
    document = {"native": NATIVE} if wrapped else NATIVE
    assert read_markup(orjson.dumps(document).decode()) == AdEvents(
        "native",
        ("https://dsp.example/imp?n=1", "https://dsp.example/imp?n=2"),
        "https://dsp.example/click?cid=9",
    )


def test_native_without_link() -> None:
    assert read_markup('{"native": {"assets": []}}') == AdEvents("native", (), None)


@pytest.mark.parametrize("adm", ["{not json", "{}x", '{"native": 3}', "<VAST><Ad>"])
def test_unreadable_markup(adm: str) -> None:
    with pytest.raises(MarkupError):
        read_markup(adm)
