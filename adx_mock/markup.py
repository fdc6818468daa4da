"""Reads a winning bid's ``adm`` for what a browser or player would call: trackers and the click.

Three formats: banner HTML, VAST XML and OpenRTB Native 1.2 response JSON.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from html.parser import HTMLParser

import orjson

from adx_mock.errors import MarkupError


@dataclass(frozen=True, slots=True)
class AdEvents:
    """The URLs the rendered ad calls on view (``impressions``) and on a click."""

    kind: str
    impressions: tuple[str, ...]
    click: str | None


def read_markup(adm: str) -> AdEvents:
    """Impression trackers and click URL of banner HTML, VAST XML or native JSON markup."""
    head = adm.lstrip()[:5].lower()
    if head.startswith("{"):
        return _read_native(adm)
    if head.startswith(("<?xml", "<vast")):
        return _read_vast(adm)
    return _read_html(adm)


class _BannerParser(HTMLParser):
    def __init__(self) -> None:
        # convert_charrefs also unescapes attribute values, so `&amp;` in a URL becomes `&`.
        super().__init__(convert_charrefs=True)
        self.impressions: list[str] = []
        self.click: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "img" and _is_pixel(values) and values.get("src"):
            self.impressions.append(values["src"])
        elif tag == "a" and self.click is None and values.get("href"):
            self.click = values["href"]


def _is_pixel(attrs: dict[str, str]) -> bool:
    def size(name: str) -> str:
        return attrs.get(name, "").strip().removesuffix("px")

    return size("width") == "1" and size("height") == "1"


def _read_html(adm: str) -> AdEvents:
    parser = _BannerParser()
    try:
        parser.feed(adm)
        parser.close()
    except (AssertionError, ValueError) as exc:
        # html.parser is lenient, but a few malformed declarations still make it give up.
        raise MarkupError("banner", str(exc)) from None
    return AdEvents("banner", tuple(parser.impressions), parser.click)


def _read_vast(adm: str) -> AdEvents:
    try:
        root = ET.fromstring(adm)
    except ET.ParseError as exc:
        raise MarkupError("vast", str(exc)) from None
    impressions: list[str] = []
    click: str | None = None
    for element in root.iter():
        # Tags may carry a namespace ("{ns}Impression"); VAST names are what matters.
        name = element.tag.rpartition("}")[2] if isinstance(element.tag, str) else ""
        text = (element.text or "").strip()
        if not text:
            continue
        if name == "Impression":
            impressions.append(text)
        elif name == "ClickThrough" and click is None:
            click = text
    return AdEvents("vast", tuple(impressions), click)


def _read_native(adm: str) -> AdEvents:
    try:
        document = orjson.loads(adm)
    except orjson.JSONDecodeError as exc:
        raise MarkupError("native", str(exc)) from None
    if not isinstance(document, dict):
        raise MarkupError("native", "not a JSON object")
    native = document.get("native", document)
    if not isinstance(native, dict):
        raise MarkupError("native", "'native' is not an object")
    impressions = [url for url in _list(native.get("imptrackers")) if isinstance(url, str)]
    impressions.extend(_image_event_trackers(native.get("eventtrackers")))
    link = native.get("link")
    click = link.get("url") if isinstance(link, dict) else None
    return AdEvents("native", tuple(impressions), click if isinstance(click, str) else None)


def _image_event_trackers(trackers: object) -> list[str]:
    # Event 1 is "impression", method 1 is "img" (a pixel); JS trackers (method 2) need a browser.
    return [
        tracker["url"]
        for tracker in _list(trackers)
        if isinstance(tracker, dict)
        and tracker.get("event") == 1
        and tracker.get("method") == 1
        and isinstance(tracker.get("url"), str)
    ]


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []
