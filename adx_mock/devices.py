"""Synthetic handsets: a catalogue of models, their device IDs and user agents.

``price_tier`` runs 1..6 like the DMP's ``usage.device_price_tier`` tags (below CNY 1,000 up
to above CNY 6,000).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

ID_TYPES = ("idfa", "gaid", "oaid", "imei")


@dataclass(frozen=True, slots=True)
class Model:
    """A handset model as an exchange reports it (``make``, ``model``) with its price tier."""

    make: str
    model: str
    os: str
    price_tier: int
    tablet: bool = False


IOS_MODELS: tuple[Model, ...] = (
    Model("Apple", "iPhone16,2", "ios", 6),
    Model("Apple", "iPhone16,1", "ios", 6),
    Model("Apple", "iPhone15,4", "ios", 5),
    Model("Apple", "iPhone15,2", "ios", 5),
    Model("Apple", "iPhone14,7", "ios", 4),
    Model("Apple", "iPhone14,5", "ios", 4),
    Model("Apple", "iPhone13,2", "ios", 3),
    Model("Apple", "iPhone12,8", "ios", 2),
    Model("Apple", "iPad13,18", "ios", 3, tablet=True),
)

# Brands whose phones ship without Google services in China and so carry an OAID.
CHINESE_MODELS: tuple[Model, ...] = (
    Model("Huawei", "ALN-AL00", "android", 6),
    Model("Huawei", "LNA-AL00", "android", 5),
    Model("Huawei", "FOA-AL00", "android", 3),
    Model("Xiaomi", "23127PN0CC", "android", 5),
    Model("Xiaomi", "2311DRK48C", "android", 4),
    Model("Xiaomi", "23090RA98C", "android", 3),
    Model("Xiaomi", "23106RN0DA", "android", 1),
    Model("OPPO", "PJZ110", "android", 5),
    Model("OPPO", "PJH110", "android", 3),
    Model("OPPO", "PJB110", "android", 1),
    Model("vivo", "V2309A", "android", 5),
    Model("vivo", "V2317A", "android", 3),
    Model("vivo", "V2310A", "android", 2),
)

GLOBAL_ANDROID_MODELS: tuple[Model, ...] = (
    Model("Samsung", "SM-S928B", "android", 6),
    Model("Samsung", "SM-S918B", "android", 6),
    Model("Samsung", "SM-A546B", "android", 3),
    Model("Samsung", "SM-A155F", "android", 1),
    Model("Samsung", "SM-X710", "android", 5, tablet=True),
    Model("Google", "Pixel 8 Pro", "android", 6),
    Model("Google", "Pixel 7a", "android", 3),
    Model("OnePlus", "CPH2581", "android", 5),
    Model("OnePlus", "CPH2513", "android", 3),
    Model("Honor", "PGT-AN10", "android", 5),
    Model("realme", "RMX3761", "android", 2),
)

ANDROID_MODELS = GLOBAL_ANDROID_MODELS + CHINESE_MODELS

# Newer releases are likelier on pricier phones; the sampler shifts along these lists.
IOS_VERSIONS = ("15.8", "16.7", "17.1", "17.4", "17.5", "18.0", "18.1")
ANDROID_VERSIONS = ("9", "10", "11", "12", "13", "14")


def models_for(id_type: str) -> tuple[Model, ...]:
    """The handsets that send this kind of device ID."""
    if id_type == "idfa":
        return IOS_MODELS
    if id_type == "oaid":
        return CHINESE_MODELS
    return ANDROID_MODELS


def is_tablet(model: str) -> bool:
    """Whether a reported model name is a tablet (iPad, Galaxy Tab)."""
    return model.startswith(("iPad", "SM-X", "SM-T"))


def make_device_id(id_type: str, entropy: int) -> str:
    """A well-formed device ID of this type from 128 random bits."""
    if id_type == "imei":
        return make_imei(entropy)
    text = str(uuid.UUID(int=entropy & ((1 << 128) - 1), version=4))
    return text.upper() if id_type == "idfa" else text


def make_imei(entropy: int) -> str:
    """A 15-digit IMEI: an 8-digit type allocation code, 6-digit serial, Luhn check digit."""
    # "86" opens the TACs allocated to Chinese manufacturers.
    body = "86" + str(entropy % 10**12).zfill(12)
    return body + luhn_check_digit(body)


def luhn_check_digit(digits: str) -> str:
    """The digit that makes ``digits + digit`` pass the Luhn check."""
    total = 0
    # Counting from the right of the full number, every second digit is doubled; the check
    # digit will be the rightmost, so the payload's last digit is doubled.
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    """Whether a digit string ends in its correct Luhn check digit."""
    return number.isdigit() and len(number) > 1 and luhn_check_digit(number[:-1]) == number[-1]


def user_agent(os: str, osv: str, model: str) -> str:
    """A plausible in-app WebView user agent for this device."""
    if os == "ios":
        version = osv.replace(".", "_")
        if model.startswith("iPad"):
            platform = f"iPad; CPU OS {version} like Mac OS X"
        else:
            platform = f"iPhone; CPU iPhone OS {version} like Mac OS X"
        return f"Mozilla/5.0 ({platform}) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
    return (
        f"Mozilla/5.0 (Linux; Android {osv}; {model}; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.82 Mobile Safari/537.36"
    )
