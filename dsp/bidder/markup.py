"""Ad markup (``adm``) for a winning line: banner HTML, a native response, or VAST."""

from __future__ import annotations

import orjson

from dsp.bidder.native import NativeAssets
from dsp.campaigns.model import Creative, CreativeFormat


def escape(text: str) -> str:
    """``html.escape`` (quotes included), compiled with the bid path: the standard library's
    runs interpreted, and a banner escapes three URLs a bid."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#x27;")
    )


def banner(creative: Creative, imp_url: str, click_url: str) -> str:
    return (
        f'<a href="{escape(click_url)}" target="_blank" rel="noopener">'
        f'<img src="{escape(creative.image_url)}" width="{creative.w}" height="{creative.h}"'
        ' alt="" style="border:0"></a>'
        f'<img src="{escape(imp_url)}" width="1" height="1" alt="" style="display:none">'
    )


def native(creative: Creative, assets: NativeAssets, imp_url: str, click_url: str) -> str:
    answer: list[dict[str, object]] = []
    if assets.title_id is not None:
        answer.append({"id": assets.title_id, "title": {"text": creative.title}})
    if assets.image_id is not None:
        w, h = assets.image_size
        answer.append({"id": assets.image_id, "img": {"url": creative.image_url, "w": w, "h": h}})
    if assets.description_id is not None and creative.description:
        answer.append({"id": assets.description_id, "data": {"value": creative.description}})
    response = {
        "native": {
            "ver": "1.2",
            "assets": answer,
            "link": {"url": click_url},
            "imptrackers": [imp_url],
            "eventtrackers": [{"event": 1, "method": 1, "url": imp_url}],
        }
    }
    return orjson.dumps(response).decode()


def _duration(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def video(creative: Creative, imp_url: str, click_url: str) -> str:
    if creative.vast_url:
        # A wrapper: the advertiser's tag plays, we track the impression and the click.
        body = (
            "<Wrapper><AdSystem>rtb-dsp</AdSystem>"
            f"<VASTAdTagURI><![CDATA[{creative.vast_url}]]></VASTAdTagURI>"
            f"<Impression><![CDATA[{imp_url}]]></Impression>"
            "<Creatives><Creative><Linear><VideoClicks>"
            f"<ClickTracking><![CDATA[{click_url}]]></ClickTracking>"
            "</VideoClicks></Linear></Creative></Creatives></Wrapper>"
        )
    else:
        body = (
            f"<InLine><AdSystem>rtb-dsp</AdSystem><AdTitle>{escape(creative.id)}</AdTitle>"
            f"<Impression><![CDATA[{imp_url}]]></Impression>"
            "<Creatives><Creative><Linear>"
            f"<Duration>{_duration(creative.duration_s)}</Duration>"
            f"<VideoClicks><ClickThrough><![CDATA[{click_url}]]></ClickThrough></VideoClicks>"
            f'<MediaFiles><MediaFile delivery="progressive" type="video/mp4"'
            f' width="{creative.w}" height="{creative.h}">'
            f"<![CDATA[{creative.media_url}]]></MediaFile></MediaFiles>"
            "</Linear></Creative></Creatives></InLine>"
        )
    return f'<VAST version="3.0"><Ad id="{escape(creative.id)}">{body}</Ad></VAST>'


def markup(creative: Creative, assets: NativeAssets | None, imp_url: str, click_url: str) -> str:
    if creative.format is CreativeFormat.BANNER:
        return banner(creative, imp_url, click_url)
    if creative.format is CreativeFormat.NATIVE and assets is not None:
        return native(creative, assets, imp_url, click_url)
    return video(creative, imp_url, click_url)
