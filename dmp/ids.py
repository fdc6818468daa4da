"""Device IDs: one normaliser from every spelling of an IMEI, IDFA, GAID, OAID or MAC to keys.

A device reaches us raw or as an MD5/SHA1 hex digest, in either case, with or without
separators. `parse_device_id` maps each spelling to a `DeviceId` holding the canonical text
(or the lowercase digest); `DeviceId.key` is the 8-byte digest the DMP stores the profile
under, and `DeviceId.digests()` adds every digest an exchange may send for the same device,
so that a raw ID loaded at ingest also answers to its hashed forms at bid time.

Canonical raw text:
    IMEI  15 digits, Luhn check digit included
    IDFA  uppercase hyphenated UUID
    GAID  lowercase hyphenated UUID
    OAID  lowercase: hyphenated UUID, 16 hex digits or 64 hex digits
    MAC   uppercase with colons, AA:BB:CC:DD:EE:FF
"""

import functools
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from dmp.errors import InvalidDeviceId


class IdType(StrEnum):
    IMEI = "imei"
    IDFA = "idfa"
    GAID = "gaid"
    OAID = "oaid"
    MAC = "mac"


class IdForm(StrEnum):
    RAW = "raw"
    MD5 = "md5"
    SHA1 = "sha1"


def _builtin_md5() -> Callable[[bytes], Any]:
    # CPython's own MD5 is twice as fast as OpenSSL 3's on an ID's few bytes (0.18 against
    # 0.40 µs here: OpenSSL sets up a context per object), which a bulk load pays per device.
    # SHA1 is not: OpenSSL's is the faster one there. Builds without the module use hashlib.
    try:
        from _md5 import md5  # type: ignore[import-not-found]
    except ImportError:
        return functools.partial(hashlib.md5, usedforsecurity=False)
    return md5  # type: ignore[no-any-return]


md5_of = _builtin_md5()
"""MD5 of some bytes, the fastest way this Python has for short inputs (``.digest()`` it)."""


def _md5(text: str) -> bytes:
    return md5_of(text.encode()).digest()  # type: ignore[no-any-return]


def _sha1(text: str) -> bytes:
    return hashlib.sha1(text.encode(), usedforsecurity=False).digest()


@dataclass(slots=True, init=False, unsafe_hash=True)  # a value class: see ``infra.compiled``
class DeviceId:
    """One device ID in canonical form: raw text, or a lowercase hex digest."""

    type: Final[IdType]
    form: Final[IdForm]
    value: Final[str]

    def __init__(self, type: IdType, form: IdForm, value: str) -> None:
        self.type = type
        self.form = form
        self.value = value

    @property
    def key(self) -> bytes:
        """The primary 8-byte lookup digest: md5 of the raw text, or the digest's head."""
        if self.form is IdForm.RAW:
            return _md5(self.value)[:8]
        return bytes.fromhex(self.value)[:8]

    def exchange_digests(self) -> tuple[bytes, ...]:
        """`key` first, then the SHA1 head of the canonical text: the forms exchanges send.

        What ingest stores by default: every other spelling (`digests`) costs Redis another
        alias field per device, for traffic that hashes a non-canonical text.
        """
        if self.form is not IdForm.RAW:
            return (self.key,)
        return (self.key, _sha1(self.value)[:8])

    def digests(self) -> tuple[bytes, ...]:
        """`key` first, then every other 8-byte digest this device may be sent as."""
        if self.form is not IdForm.RAW:
            return (self.key,)
        unique = dict.fromkeys(
            hash_(text)[:8] for text in _spellings(self.type, self.value) for hash_ in (_md5, _sha1)
        )
        return tuple(unique)


def _spellings(id_type: IdType, canonical: str) -> dict[str, None]:
    # Exchanges hash whatever text they hold, so the same device arrives hashed in either
    # case; a MAC also arrives hashed without separators, an IMEI without its check digit.
    texts = [canonical, canonical.lower(), canonical.upper()]
    if id_type is IdType.MAC:
        bare = canonical.replace(":", "")
        texts += [bare.upper(), bare.lower()]
    elif id_type is IdType.IMEI:
        texts.append(canonical[:14])
    return dict.fromkeys(texts)


@dataclass(frozen=True, slots=True)
class _Reject:
    reason: str


# Rejections are made once: the bid path meets malformed IDs on every request and
# should neither raise nor allocate for them.
_EMPTY: Final = _Reject("empty")
_PLACEHOLDER: Final = _Reject("placeholder (all zeros, broadcast or hash of one): not a device")
_NOT_DIGITS: Final = _Reject("IMEI must be decimal digits")
_BAD_IMEI_LENGTH: Final = _Reject("IMEI must have 14 or 15 digits")
_BAD_CHECK_DIGIT: Final = _Reject("IMEI check digit does not match (Luhn)")
_NOT_UUID: Final = _Reject("not a UUID (8-4-4-4-12 hex digits, or 32 hex digits)")
_NOT_OAID: Final = _Reject("not an OAID (UUID, 16 hex digits or 64 hex digits)")
_NOT_MAC: Final = _Reject("not a MAC address (12 hex digits, separated by ':', '-', '.' or none)")
_NOT_DIGEST: Final = {
    IdForm.MD5: _Reject("MD5 digest must be 32 hex digits"),
    IdForm.SHA1: _Reject("SHA1 digest must be 40 hex digits"),
}
_DIGEST_LENGTH: Final = {IdForm.MD5: 32, IdForm.SHA1: 40}

_HEX: Final = re.compile(r"[0-9a-fA-F]+")
_UUID: Final = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
# One separator used throughout (or none), or Cisco's dotted groups of four.
_MAC: Final = re.compile(
    r"[0-9a-fA-F]{2}([:-]?)[0-9a-fA-F]{2}(?:\1[0-9a-fA-F]{2}){4}"
    r"|[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}"
)
_MAC_SEPARATORS: Final = str.maketrans("", "", ":-.")
# 02:00:00:00:00:00 is what iOS 7+ and Android 6+ report instead of the real address.
_MAC_PLACEHOLDERS: Final = frozenset({"000000000000", "FFFFFFFFFFFF", "020000000000"})
_LUHN_DOUBLED: Final = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def _is_zero(canonical: str) -> bool:
    return not canonical.strip("0-")


def _luhn_check_digit(body: str) -> str:
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = ord(char) - 48
        total += _LUHN_DOUBLED[digit] if position % 2 == 0 else digit
    return str(-total % 10)


def _imei(text: str) -> str | _Reject:
    if not (text.isascii() and text.isdigit()):
        return _NOT_DIGITS
    if len(text) == 14:
        text += _luhn_check_digit(text)
    elif len(text) != 15:
        return _BAD_IMEI_LENGTH
    elif _luhn_check_digit(text[:14]) != text[14]:
        return _BAD_CHECK_DIGIT
    return _PLACEHOLDER if _is_zero(text) else text


def _uuid(text: str, upper: bool) -> str | _Reject:
    if len(text) == 32 and _HEX.fullmatch(text):
        text = f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    elif not _UUID.fullmatch(text):
        return _NOT_UUID
    if _is_zero(text):
        return _PLACEHOLDER
    return text.upper() if upper else text.lower()


def _idfa(text: str) -> str | _Reject:
    return _uuid(text, upper=True)


def _gaid(text: str) -> str | _Reject:
    return _uuid(text, upper=False)


def _oaid(text: str) -> str | _Reject:
    if len(text) in (16, 64) and _HEX.fullmatch(text):
        return _PLACEHOLDER if _is_zero(text) else text.lower()
    canonical = _uuid(text, upper=False)
    return _NOT_OAID if canonical is _NOT_UUID else canonical


def _mac(text: str) -> str | _Reject:
    if not _MAC.fullmatch(text):
        return _NOT_MAC
    h = text.translate(_MAC_SEPARATORS).upper()
    if h in _MAC_PLACEHOLDERS:
        return _PLACEHOLDER
    return f"{h[0:2]}:{h[2:4]}:{h[4:6]}:{h[6:8]}:{h[8:10]}:{h[10:12]}"


_RAW_PARSERS: Final[dict[IdType, Callable[[str], str | _Reject]]] = {
    IdType.IMEI: _imei,
    IdType.IDFA: _idfa,
    IdType.GAID: _gaid,
    IdType.OAID: _oaid,
    IdType.MAC: _mac,
}


def _placeholder_digests() -> frozenset[str]:
    # Exchanges hash LAT zeros and empty fields like any other ID; those hashes name no
    # device, and accepting them would pile every such request onto one profile.
    zero_uuid = "00000000-0000-0000-0000-000000000000"
    texts = ["", zero_uuid, "0" * 32, "0" * 16, "0" * 64, "0" * 15, "0" * 14]
    for mac in _MAC_PLACEHOLDERS:
        colons = ":".join(mac[i : i + 2] for i in range(0, 12, 2))
        texts += [mac, mac.lower(), colons, colons.lower()]
    digests = {"0" * 32, "0" * 40}
    for text in texts:
        digests.add(hashlib.md5(text.encode(), usedforsecurity=False).hexdigest())
        digests.add(hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest())
    return frozenset(digests)


_PLACEHOLDER_DIGESTS: Final = _placeholder_digests()


def _digest(text: str, form: IdForm) -> str | _Reject:
    if len(text) != _DIGEST_LENGTH[form] or not _HEX.fullmatch(text):
        return _NOT_DIGEST[form]
    value = text.lower()
    return _PLACEHOLDER if value in _PLACEHOLDER_DIGESTS else value


def _detect_form(text: str) -> IdForm:
    length = len(text)
    if length == 32 and _HEX.fullmatch(text):
        return IdForm.MD5
    if length == 40 and _HEX.fullmatch(text):
        return IdForm.SHA1
    return IdForm.RAW


def _parse(id_type: IdType, form: IdForm | None, text: str) -> DeviceId | _Reject:
    if not text:
        return _EMPTY
    if form is None:
        form = _detect_form(text)
    if form is IdForm.RAW:
        value = _RAW_PARSERS[id_type](text)
    else:
        value = _digest(text, form)
    if isinstance(value, _Reject):
        return value
    return DeviceId(id_type, form, value)


def _id_type_names() -> dict[str, tuple[IdType, IdForm | None]]:
    names: dict[str, tuple[IdType, IdForm | None]] = {}
    for id_type in IdType:
        names[id_type.value] = (id_type, None)
        for form in IdForm:
            for separator in ("_", "-", ""):
                names[f"{id_type.value}{separator}{form.value}"] = (id_type, form)
    return names


_ID_TYPE_NAMES: Final = _id_type_names()


def parse_device_id(id_type: str, value: str) -> DeviceId:
    """Parse one device ID of a named type into its canonical `DeviceId`.

    `id_type` is a type name (`imei`, `idfa`, `gaid`, `oaid`, `mac`), any case, optionally
    suffixed with the form, separated by `_`, `-` or nothing: `idfa_md5`, `gaid-sha1`,
    `gaid_raw`, `imeimd5`. Surrounding whitespace in `value` is ignored.

    Without a form suffix, the form is read from the value's shape: exactly 32 hex digits
    is an MD5 digest, exactly 40 hex digits a SHA1 digest, anything else raw. So a UUID
    written without hyphens (32 hex digits) is taken as an MD5 digest unless the type says
    raw (`gaid_raw`); OAID's 16- and 64-hex-digit forms are raw.

    Raises `InvalidDeviceId` for an unknown type, an empty value, a wrong length or shape,
    a non-hex digest, a bad IMEI check digit, or a placeholder: all-zero IDs (limit ad
    tracking), the zero and broadcast MACs, 02:00:00:00:00:00, and hashes of any of these
    or of the empty string.
    """
    spec = _ID_TYPE_NAMES.get(id_type.strip().lower())
    if spec is None:
        raise InvalidDeviceId(id_type, value, "unknown id type")
    parsed = _parse(spec[0], spec[1], value.strip())
    if isinstance(parsed, _Reject):
        raise InvalidDeviceId(id_type, value, parsed.reason)
    return parsed


_APPLE_OS: Final = frozenset({"ios", "ipados", "tvos"})
# `None` stands for the platform ID type, IDFA or GAID, read from `device.os`.
_HASHED_FIELDS: Final[tuple[tuple[str, IdType | None, IdForm], ...]] = (
    ("dpidmd5", None, IdForm.MD5),
    ("dpidsha1", None, IdForm.SHA1),
    ("didmd5", IdType.IMEI, IdForm.MD5),
    ("didsha1", IdType.IMEI, IdForm.SHA1),
    ("macmd5", IdType.MAC, IdForm.MD5),
    ("macsha1", IdType.MAC, IdForm.SHA1),
)
_EXT_FIELDS: Final[tuple[tuple[str, IdType], ...]] = (
    ("idfa", IdType.IDFA),
    ("gaid", IdType.GAID),
    ("oaid", IdType.OAID),
    ("imei", IdType.IMEI),
)


def _add(found: list[DeviceId], parsed: DeviceId | _Reject) -> None:
    if isinstance(parsed, DeviceId) and parsed not in found:
        found.append(parsed)


def _parse_ifa(platform: IdType, text: str) -> DeviceId | _Reject:
    # Chinese Android traffic carries an OAID in `ifa` where others carry a GAID.
    parsed = _parse(platform, IdForm.RAW, text)
    if parsed is _NOT_UUID:
        return _parse(IdType.OAID, IdForm.RAW, text)
    return parsed


def _add_ext_ids(found: list[DeviceId], ext: Mapping[str, object]) -> None:
    for field, id_type in _EXT_FIELDS:
        value = ext.get(field)
        if isinstance(value, str):
            _add(found, _parse(id_type, None, value.strip()))


def device_ids_from_openrtb(device: Mapping[str, object]) -> list[DeviceId]:
    """Every well-formed device ID in an OpenRTB 2.5/2.6 `device` object, `ifa` first.

    `ifa`, `dpidmd5` and `dpidsha1` are IDFAs when `device.os` is iOS, iPadOS or tvOS and
    GAIDs otherwise. `ifa` is sent in the clear, so 32 hex digits there are a UUID without
    hyphens, not an MD5; an `ifa` that is not a UUID is tried as an OAID. `didmd5`/`didsha1`
    are IMEIs, `macmd5`/`macsha1` MACs; `ext.idfa`, `ext.gaid`, `ext.oaid` and `ext.imei`
    may be raw or hashed. Malformed, placeholder and non-string values are skipped, never
    raised: on the bid path they are just a miss. Duplicates are dropped.
    """
    os_name = device.get("os")
    apple = isinstance(os_name, str) and os_name.lower() in _APPLE_OS
    platform = IdType.IDFA if apple else IdType.GAID
    found: list[DeviceId] = []
    ifa = device.get("ifa")
    if isinstance(ifa, str):
        _add(found, _parse_ifa(platform, ifa.strip()))
    for field, id_type, form in _HASHED_FIELDS:
        value = device.get(field)
        if isinstance(value, str):
            _add(found, _parse(id_type or platform, form, value.strip()))
    ext = device.get("ext")
    if isinstance(ext, dict):
        _add_ext_ids(found, ext)
    return found
