import hashlib

import pytest

from dmp.errors import InvalidDeviceId
from dmp.ids import DeviceId, IdForm, IdType, device_ids_from_openrtb, parse_device_id

# A real-shaped IMEI: 14-digit body 49015420323751, Luhn check digit 8.
IMEI = "490154203237518"
IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
GAID = "38400000-8cf0-11bd-b23e-10b96e40000d"
OAID_UUID = "a3f5c1d2-7b8e-4f60-9a1b-2c3d4e5f6a7b"
OAID_16 = "8e7c6b5a4f3e2d1c"
OAID_64 = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
MAC = "A4:5E:60:C2:1B:9F"
ZERO_UUID = "00000000-0000-0000-0000-000000000000"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def head(digest_hex: str) -> bytes:
    return bytes.fromhex(digest_hex)[:8]


# --- IMEI --------------------------------------------------------------------------------


def test_imei_with_correct_check_digit() -> None:
    device = parse_device_id("imei", IMEI)
    assert device == DeviceId(IdType.IMEI, IdForm.RAW, IMEI)
    assert device.key == head(md5(IMEI))


def test_imei_of_14_digits_gets_its_check_digit() -> None:
    assert parse_device_id("IMEI", IMEI[:14]) == parse_device_id("imei", IMEI)


@pytest.mark.parametrize("check_digit", [d for d in "0123456789" if d != IMEI[14]])
def test_imei_with_wrong_check_digit_is_rejected(check_digit: str) -> None:
    with pytest.raises(InvalidDeviceId, match="check digit") as caught:
        parse_device_id("imei", IMEI[:14] + check_digit)
    assert caught.value.id_type == "imei"


@pytest.mark.parametrize(
    "value",
    ["", "   ", "4901542032375", "4901542032375180", "49015420323751x", "٤٩٠١٥٤٢٠٣٢٣٧٥١٨"],
)
def test_malformed_imei_is_rejected(value: str) -> None:
    with pytest.raises(InvalidDeviceId):
        parse_device_id("imei", value)


@pytest.mark.parametrize("text", [IMEI, IMEI[:14]], ids=["15 digits hashed", "14 digits hashed"])
@pytest.mark.parametrize("hash_name", ["md5", "sha1"])
def test_hashed_imei_is_an_alias_of_the_raw_one(text: str, hash_name: str) -> None:
    digest = hashlib.new(hash_name, text.encode()).hexdigest()
    hashed = parse_device_id("imei", digest)
    assert hashed.form == hash_name
    assert hashed.digests() == (hashed.key,) == (head(digest),)
    assert hashed.key in parse_device_id("imei", IMEI).digests()


# --- every spelling of one device ---------------------------------------------------------


SPELLINGS: list[tuple[str, str, list[str]]] = [
    # (type, canonical text, raw spellings that must normalise to it)
    ("idfa", IDFA, [IDFA, IDFA.lower(), f" {IDFA} "]),
    ("gaid", GAID, [GAID, GAID.upper()]),
    ("oaid", OAID_UUID, [OAID_UUID, OAID_UUID.upper()]),
    ("oaid", OAID_16, [OAID_16, OAID_16.upper()]),
    ("oaid", OAID_64, [OAID_64, OAID_64.upper()]),
    (
        "mac",
        MAC,
        [
            MAC,
            MAC.lower(),
            MAC.replace(":", "-"),
            MAC.replace(":", "-").lower(),
            MAC.replace(":", ""),
            MAC.replace(":", "").lower(),
            "a45e.60c2.1b9f",
            "A45E.60C2.1B9F",
        ],
    ),
]

RAW_CASES = [
    pytest.param(id_type, canonical, raw, id=f"{id_type}:{raw.strip()}")
    for id_type, canonical, raws in SPELLINGS
    for raw in raws
]


@pytest.mark.parametrize(("id_type", "canonical", "raw"), RAW_CASES)
def test_raw_spellings_normalise_to_canonical(id_type: str, canonical: str, raw: str) -> None:
    device = parse_device_id(id_type, raw)
    assert device == DeviceId(IdType(id_type), IdForm.RAW, canonical)
    assert device.key == head(md5(canonical))
    assert device.digests()[0] == device.key
    assert len(set(device.digests())) == len(device.digests())


@pytest.mark.parametrize(
    ("id_type", "canonical", "bare"),
    [
        ("idfa", IDFA, IDFA.replace("-", "")),
        ("idfa", IDFA, IDFA.replace("-", "").lower()),
        ("gaid", GAID, GAID.replace("-", "")),
        ("oaid", OAID_UUID, OAID_UUID.replace("-", "").upper()),
    ],
)
def test_uuid_without_hyphens_is_raw_only_when_said(
    id_type: str, canonical: str, bare: str
) -> None:
    assert parse_device_id(f"{id_type}_raw", bare).value == canonical
    hashed = parse_device_id(id_type, bare)
    assert hashed.form is IdForm.MD5
    assert hashed.value == bare.lower()


def hashed_texts(id_type: str, canonical: str) -> list[str]:
    """The texts exchanges hash for a device: canonical, lower, upper, MAC without colons."""
    texts = [canonical, canonical.lower(), canonical.upper()]
    if id_type == "mac":
        texts += [canonical.replace(":", "").lower(), canonical.replace(":", "").upper()]
    return texts


HASHED_CASES = [
    pytest.param(id_type, canonical, text, hash_name, id=f"{id_type}:{hash_name}({text})")
    for id_type, canonical, _ in SPELLINGS
    for text in dict.fromkeys(hashed_texts(id_type, canonical))
    for hash_name in ("md5", "sha1")
]


@pytest.mark.parametrize(("id_type", "canonical", "text", "hash_name"), HASHED_CASES)
@pytest.mark.parametrize("digest_case", ["lower", "upper"])
@pytest.mark.parametrize("explicit_form", [False, True])
def test_hashed_spellings_are_aliases_of_the_raw_id(
    id_type: str,
    canonical: str,
    text: str,
    hash_name: str,
    digest_case: str,
    explicit_form: bool,
) -> None:
    digest = hashlib.new(hash_name, text.encode()).hexdigest()
    digest = digest.upper() if digest_case == "upper" else digest
    name = f"{id_type}_{hash_name}" if explicit_form else id_type.upper()
    hashed = parse_device_id(name, digest)
    assert hashed == DeviceId(IdType(id_type), IdForm(hash_name), digest.lower())
    assert hashed.key == head(digest)
    assert hashed.digests() == (hashed.key,)
    assert hashed.key in parse_device_id(id_type, canonical).digests()


def test_raw_digests_are_exactly_the_hashes_of_its_spellings() -> None:
    digests = parse_device_id("mac", MAC).digests()
    expected = {head(h(text)) for text in hashed_texts("mac", MAC) for h in (md5, sha1)}
    assert digests[0] == head(md5(MAC))
    assert set(digests) == expected
    assert len(digests) == len(expected) == 8


def test_idfa_and_gaid_differ_only_by_canonical_case() -> None:
    idfa = parse_device_id("idfa", GAID)
    gaid = parse_device_id("gaid", GAID)
    assert idfa.value == GAID.upper()
    assert gaid.key in idfa.digests()
    assert idfa.key in gaid.digests()


# --- placeholders and malformed values ------------------------------------------------------


@pytest.mark.parametrize(
    ("id_type", "value"),
    [
        ("idfa", ZERO_UUID),
        ("gaid", ZERO_UUID),
        ("oaid", ZERO_UUID),
        ("gaid_raw", "0" * 32),
        ("oaid", "0" * 16),
        ("oaid", "0" * 64),
        ("imei", "0" * 15),
        ("imei", "0" * 14),
        ("mac", "00:00:00:00:00:00"),
        ("mac", "ff:ff:ff:ff:ff:ff"),
        ("mac", "FFFFFFFFFFFF"),
        ("mac", "02:00:00:00:00:00"),
        ("idfa_md5", md5(ZERO_UUID)),
        ("gaid", sha1(ZERO_UUID)),
        ("mac_md5", md5("02:00:00:00:00:00")),
        ("mac_sha1", sha1("ffffffffffff")),
        ("imei_md5", md5("0" * 15)),
        ("imei", md5("")),
        ("gaid_md5", "0" * 32),
        ("gaid_sha1", "0" * 40),
    ],
)
def test_placeholders_are_rejected(id_type: str, value: str) -> None:
    with pytest.raises(InvalidDeviceId, match="placeholder"):
        parse_device_id(id_type, value)


@pytest.mark.parametrize(
    ("id_type", "value", "reason"),
    [
        ("idfa", "", "empty"),
        ("unknown", IDFA, "unknown id type"),
        ("idfa_sha256", IDFA, "unknown id type"),
        ("idfa", IDFA[:-1], "not a UUID"),
        ("idfa", IDFA.replace("-", ":"), "not a UUID"),
        ("gaid", GAID.replace("-", "")[:31], "not a UUID"),
        ("idfa", "g" * 32, "not a UUID"),
        ("oaid", "8e7c6b5a4f3e2d1", "not an OAID"),
        ("oaid", "z" * 64, "not an OAID"),
        ("mac", "A4:5E:60:C2:1B", "not a MAC"),
        ("mac", "A4:5E-60:C2:1B:9F", "not a MAC"),
        ("mac", "G4:5E:60:C2:1B:9F", "not a MAC"),
        ("mac", "a:5:6:c:1:9", "not a MAC"),
        ("idfa_md5", md5(IDFA)[:-1], "MD5"),
        ("idfa_md5", sha1(IDFA), "MD5"),
        ("mac_sha1", md5(MAC), "SHA1"),
        ("mac_sha1", "x" * 40, "SHA1"),
        ("imei_md5", IMEI, "MD5"),
    ],
)
def test_malformed_ids_are_rejected(id_type: str, value: str, reason: str) -> None:
    with pytest.raises(InvalidDeviceId, match=reason) as caught:
        parse_device_id(id_type, value)
    assert (caught.value.id_type, caught.value.value) == (id_type, value)


@pytest.mark.parametrize("name", ["idfa_md5", "IDFA-MD5", "idfamd5", " Idfa_Md5 "])
def test_type_name_spellings(name: str) -> None:
    assert parse_device_id(name, md5(IDFA)).form is IdForm.MD5


# --- OpenRTB extraction --------------------------------------------------------------------


def test_openrtb_ios_device_with_ifa() -> None:
    device: dict[str, object] = {
        "ua": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)",
        "os": "iOS",
        "osv": "17.4",
        "make": "Apple",
        "model": "iPhone15,2",
        "devicetype": 4,
        "lmt": 0,
        "ifa": IDFA.lower(),
        "geo": {"country": "CHN", "lat": 31.23, "lon": 121.47},
    }
    assert device_ids_from_openrtb(device) == [DeviceId(IdType.IDFA, IdForm.RAW, IDFA)]


@pytest.mark.parametrize("os_name", ["ios", "IPADOS", "tvOS"])
def test_openrtb_apple_platforms_give_idfa(os_name: str) -> None:
    [device_id] = device_ids_from_openrtb({"os": os_name, "ifa": IDFA})
    assert device_id.type is IdType.IDFA


def test_openrtb_android_device_with_ifa_and_hashed_ids() -> None:
    device: dict[str, object] = {
        "os": "Android",
        "osv": "14",
        "make": "Xiaomi",
        "ifa": GAID,
        "dpidsha1": sha1(GAID).upper(),
        "didmd5": md5(IMEI),
        "macsha1": sha1(MAC.replace(":", "").lower()),
        "ext": {"oaid": OAID_16, "imei": IMEI[:14]},
    }
    found = device_ids_from_openrtb(device)
    assert found == [
        DeviceId(IdType.GAID, IdForm.RAW, GAID),
        DeviceId(IdType.GAID, IdForm.SHA1, sha1(GAID)),
        DeviceId(IdType.IMEI, IdForm.MD5, md5(IMEI)),
        DeviceId(IdType.MAC, IdForm.SHA1, sha1(MAC.replace(":", "").lower())),
        DeviceId(IdType.OAID, IdForm.RAW, OAID_16),
        DeviceId(IdType.IMEI, IdForm.RAW, IMEI),
    ]
    assert found[1].key in found[0].digests()
    assert found[2].key in found[5].digests()
    assert found[3].key in parse_device_id("mac", MAC).digests()


def test_openrtb_ifa_that_is_no_uuid_is_tried_as_oaid() -> None:
    found = device_ids_from_openrtb({"os": "android", "ifa": OAID_64.upper()})
    assert found == [DeviceId(IdType.OAID, IdForm.RAW, OAID_64)]


def test_openrtb_ifa_without_hyphens_is_raw() -> None:
    found = device_ids_from_openrtb({"os": "android", "ifa": GAID.replace("-", "")})
    assert found == [DeviceId(IdType.GAID, IdForm.RAW, GAID)]


def test_openrtb_lmt_device_with_zero_ifa_is_skipped() -> None:
    device: dict[str, object] = {
        "os": "iOS",
        "lmt": 1,
        "ifa": ZERO_UUID,
        "dpidmd5": md5(ZERO_UUID),
        "dpidsha1": sha1(ZERO_UUID),
    }
    assert device_ids_from_openrtb(device) == []


def test_openrtb_garbage_values_are_skipped() -> None:
    device: dict[str, object] = {
        "os": 7,
        "ifa": 12345,
        "dpidmd5": None,
        "dpidsha1": ["not", "a", "string"],
        "didmd5": "",
        "didsha1": "not-a-hash",
        "macmd5": {"nested": md5(MAC)},
        "macsha1": md5(MAC),
        "ext": {"idfa": 1.5, "gaid": "garbage", "oaid": None, "imei": "490154203237519"},
    }
    assert device_ids_from_openrtb(device) == []


@pytest.mark.parametrize("ext", [None, "ext", [GAID], 3])
def test_openrtb_non_object_ext_is_skipped(ext: object) -> None:
    found = device_ids_from_openrtb({"os": "android", "ifa": GAID, "ext": ext})
    assert found == [DeviceId(IdType.GAID, IdForm.RAW, GAID)]


def test_openrtb_unknown_os_defaults_to_gaid_and_duplicates_are_dropped() -> None:
    device: dict[str, object] = {"ifa": GAID, "ext": {"gaid": GAID.upper()}}
    assert device_ids_from_openrtb(device) == [DeviceId(IdType.GAID, IdForm.RAW, GAID)]


def test_openrtb_empty_device() -> None:
    assert device_ids_from_openrtb({}) == []
