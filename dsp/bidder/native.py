"""OpenRTB Native 1.x: the assets a placement asks for, and our answer to them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

_IMAGE_MAIN: Final = 3
_DATA_DESCRIPTION: Final = 2


@dataclass(slots=True, init=False, unsafe_hash=True)  # a value class: see ``infra.compiled``
class NativeAssets:
    """Asset ids of the placement's title, main image and description (None: not asked)."""

    title_id: Final[int | None]
    image_id: Final[int | None]
    image_size: Final[tuple[int, int]]
    description_id: Final[int | None]

    def __init__(
        self,
        title_id: int | None,
        image_id: int | None,
        image_size: tuple[int, int],
        description_id: int | None,
    ) -> None:
        self.title_id = title_id
        self.image_id = image_id
        self.image_size = image_size
        self.description_id = description_id


def _asset_id(asset: Mapping[str, Any]) -> int | None:
    asset_id = asset.get("id")
    return asset_id if isinstance(asset_id, int) else None


def parse_native_request(text: str | None) -> NativeAssets | None:
    """The assets of a ``native.request`` string; None when it cannot be understood."""
    if text is None:
        return None
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return native_assets(data)


def native_assets(data: object) -> NativeAssets | None:
    """The assets of a decoded native request (some exchanges send the object, not a string)."""
    if isinstance(data, dict) and isinstance(data.get("native"), dict):
        data = data["native"]
    assets = data.get("assets") if isinstance(data, dict) else None
    if not isinstance(assets, list):
        return None
    title = image = description = None
    size = (0, 0)
    for asset in assets:
        if not isinstance(asset, dict):
            continue
        if isinstance(asset.get("title"), dict) and title is None:
            title = _asset_id(asset)
        img = asset.get("img")
        if isinstance(img, dict) and image is None and img.get("type", _IMAGE_MAIN) == _IMAGE_MAIN:
            image = _asset_id(asset)
            w, h = img.get("w") or img.get("wmin"), img.get("h") or img.get("hmin")
            size = (0, 0)
            if type(w) is int and type(h) is int and w > 0 and h > 0:  # JSON true is no size
                size = (w, h)
        data_asset = asset.get("data")
        if isinstance(data_asset, dict) and data_asset.get("type") == _DATA_DESCRIPTION:
            description = description if description is not None else _asset_id(asset)
    if title is None and image is None:
        return None
    return NativeAssets(title, image, size, description)
