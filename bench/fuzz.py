"""``python -m bench.fuzz`` (``make fuzz``): structure-aware fuzzing of ``POST /openrtb2/bid``.

Hypothesis strategies draw OpenRTB-shaped requests: every field of the objects the bidder
reads (imp with banner/video/native/pmp, site/app/publisher, device with geo and IDs, user,
regs) is either a plausible value or an arbitrary JSON value of the wrong type, with full
unicode text and 64-bit numbers. A share of the bodies is then broken on purpose: cut
short, spliced with random bytes, nested thousands of levels deep, numbers too large for a
double, invalid UTF-8, or random bytes altogether.

Each body goes through a real socket (HTTP/1.1 keep-alive) to a bidder process (``dsp
serve``) that holds campaigns and stored devices, so the parse, the DMP lookup, the decision
and the markup all run. The run fails on any 5xx answer, on a dropped connection, on a bidder
process that died, on a bid handled by the bidder's last-resort ``except`` (its
``dsp_errors_total`` metric), or on memory that grows.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import uvloop
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from tqdm import tqdm

from bench.campaigns import campaign_payloads
from bench.soak import Bidder, bidder, rss_bytes
from dmp.ids import parse_device_id
from dmp.profile import Snapshot, TagEntry, day_number, encode
from dmp.profile_store import ProfileStore
from dmp.taxonomy import Taxonomy
from dsp.campaigns.store import save_campaigns
from infra.embedded_redis import EmbeddedRedis
from infra.logs import setup_logging

Json = Any
# Devices stored by ``seed_bidder``: requests naming them go through the DMP lookup.
IFAS = tuple(f"6D92078A-8246-4BA4-AE5B-{i:012X}" for i in range(1, 21))
TAGS = ("interest.automotive.suv", "interest.travel.outbound", "base.gender.female")
CURRENCIES = ("USD", "EUR", "CNY", "JPY", "GBP", "XXX", "usd", "")
OS_NAMES = ("iOS", "Android", "ipados", "iPhone OS", "tvos", "android tv", "Windows", "")
BIG_NUMBERS = (
    b"1e999", b"-1e999", b"123456789012345678901234567890", b"1" * 5000, b"-0",
    b"0." + b"0" * 400 + b"1", b"1E+308", b"-9223372036854775809", b"18446744073709551616",
)  # fmt: skip
MARKER = "\u2063BIG\u2063"  # a text value later replaced by one of BIG_NUMBERS
NATIVE_OK = orjson.dumps(
    {
        "native": {
            "ver": "1.2",
            "assets": [
                {"id": 1, "required": 1, "title": {"len": 90}},
                {"id": 2, "required": 1, "img": {"type": 3, "w": 1200, "h": 627}},
                {"id": 3, "data": {"type": 2}},
            ],
        }
    }
).decode()

# ----------------------------------------------------------------------------- strategies

text = st.text(max_size=24)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
leaf = st.one_of(
    st.none(),
    st.booleans(),
    int64,
    st.floats(allow_nan=False, allow_infinity=False),
    text,
    st.just(MARKER),
)
any_json: st.SearchStrategy[Json] = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


_WRONG = st.sampled_from([False] * 9 + [True])  # one value in ten of the wrong shape


def maybe(good: st.SearchStrategy[Json]) -> st.SearchStrategy[Json]:
    """Mostly a plausible value, sometimes any JSON value at all (the wrong type, say).

    Not ``one_of``: it flattens nested alternatives, and the many branches of ``any_json``
    would outweigh the good one."""

    @st.composite
    def pick(draw: st.DrawFn) -> Json:
        return draw(any_json) if draw(_WRONG) else draw(good)

    return pick()


def obj(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[Json]:
    """An object with the given fields (each maybe wrong), plus a few unknown ones."""
    fields = st.fixed_dictionaries(
        {k: maybe(v) for k, v in required.items()},
        optional={**{k: maybe(v) for k, v in optional.items()}, "ext": any_json},
    )
    return maybe(fields)


flag = st.sampled_from([0, 1, 1, 2, -1])
size = st.integers(min_value=-5, max_value=5000)
small_list = st.lists(text, max_size=4)
categories = st.lists(st.sampled_from(["IAB1", "IAB2", "IAB2-3", "IAB25", ""]) | text, max_size=4)
native_request = st.one_of(
    st.just(NATIVE_OK),
    st.builds(lambda value: orjson.dumps(value).decode(), any_json),
    any_json.map(lambda value: {"assets": value}),
    st.builds(lambda cut: NATIVE_OK[:cut], st.integers(0, len(NATIVE_OK))),
    text,
)
banner = obj(
    {"w": size, "h": size},
    {"format": st.lists(obj({"w": size, "h": size}, {}), max_size=3), "pos": flag},
)
imp_id = st.one_of(st.sampled_from(["1", "2", "3"]), st.text(min_size=1, max_size=8), int64)
deal = obj({"id": text}, {"bidfloor": st.floats()})
imp = obj(
    {"id": imp_id},
    {
        "banner": banner,
        "video": obj({"w": size, "h": size}, {"mimes": small_list}),
        "native": obj({"request": native_request}, {"ver": text}),
        "bidfloor": st.one_of(st.floats(min_value=-1, max_value=1e6), int64),
        "bidfloorcur": st.sampled_from(CURRENCIES) | text,
        "pmp": obj(
            {"deals": st.lists(obj({"id": text}, {"bidfloor": st.floats()}), max_size=2)}, {}
        ),
        "tagid": text,
        "secure": flag,
    },
)
publisher = obj({}, {"id": text, "cat": categories, "domain": text})
site = obj(
    {},
    {"domain": text, "page": text, "cat": categories, "pagecat": categories,
     "sectioncat": categories, "publisher": publisher},
)  # fmt: skip
app = obj({}, {"bundle": text, "cat": categories, "publisher": publisher, "id": text})
coordinate = st.floats(min_value=-200, max_value=200)
geo = obj(
    {},
    {"lat": coordinate, "lon": coordinate,
     "country": st.sampled_from(["CHN", "USA", "chn", ""]) | text,
     "region": st.sampled_from(["GD", "BJ", ""]) | text, "city": text, "type": flag},
)  # fmt: skip
osv = st.one_of(st.from_regex(r"\A[0-9]{1,3}(\.[0-9]{1,3}){0,2}\Z"), text, st.just("²³.1"))
device = obj(
    {},
    {"ifa": st.sampled_from(IFAS) | st.uuids().map(str) | text,
     "os": st.sampled_from(OS_NAMES) | text, "osv": osv, "lmt": flag, "dnt": flag, "geo": geo,
     "devicetype": flag, "connectiontype": flag, "ua": text, "ip": text,
     "didmd5": text, "dpidsha1": text,
     "ext": obj({}, {"idfa": text, "gaid": text, "oaid": text, "imei": text, "ifa_type": text})},
)  # fmt: skip
consent = st.sampled_from(["", "gdprConsentString", "BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA"]) | text
user = obj({}, {"id": text, "consent": consent, "geo": geo, "ext": obj({}, {"consent": consent})})
regs = obj({}, {"coppa": flag, "gdpr": flag, "ext": obj({}, {"gdpr": flag, "coppa": flag})})
request_id = st.one_of(st.sampled_from(["auction-1", "a", "0"]), st.text(min_size=1, max_size=24))
# Where the ad runs: one of site or app as a rule; both, or neither, sometimes.
place = st.one_of(
    *[st.fixed_dictionaries({"site": site})] * 4,
    *[st.fixed_dictionaries({"app": app})] * 4,
    st.just({}),
    st.fixed_dictionaries({"site": site, "app": app}),
)
core = st.fixed_dictionaries(
    {"id": maybe(request_id), "imp": maybe(st.lists(imp, min_size=1, max_size=3))},
    optional={
        "tmax": maybe(st.integers(min_value=-10, max_value=5000)),
        "device": device, "user": user, "regs": regs,
        "cur": maybe(st.lists(st.sampled_from(CURRENCIES) | text, max_size=3)),
        "bcat": maybe(categories), "badv": maybe(small_list), "test": maybe(flag),
        "at": maybe(flag), "source": any_json, "ext": any_json,
    },
)  # fmt: skip
bid_request = st.builds(lambda fields, where: {**fields, **where}, core, place)


JUNK: tuple[Json, ...] = (
    None, True, 0, -1, 2**63 - 1, -(2**63), 1.5e308, -0.0, "", " ", "\u0000", "\U0001f600" * 50,
    "\u202e\u0301\ufeff", "x" * 10_000, [], {}, [[[]]], {"": {"": None}}, ["1", 2, None],
    MARKER,
)  # fmt: skip
MUTATIONS = ("plain", *["replace"] * 4, "delete", "delete", "cut", "splice", "deep", "utf8")


def _deep(depth: int, opener: bytes, closer: bytes) -> bytes:
    return opener * depth + b"1" + closer * depth


def _paths(value: Json, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every path into a decoded JSON value (the root excluded)."""
    children: Iterator[tuple[str | int, Json]]
    if isinstance(value, dict):
        children = iter(value.items())
    elif isinstance(value, list):
        children = enumerate(value)
    else:
        return
    for key, child in children:
        yield (*path, key)
        yield from _paths(child, (*path, key))


def _set(root: Json, path: tuple[str | int, ...], value: Json) -> None:
    parent = root
    for key in path[:-1]:
        parent = parent[key]
    if value is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


_DELETE: Json = object()
_DEEP_MARKER = "\u2063DEEP\u2063"


def _encode(request: Json) -> bytes:
    raw = orjson.dumps(request)
    for big_at in range(raw.count(orjson.dumps(MARKER))):
        big = BIG_NUMBERS[big_at % len(BIG_NUMBERS)]
        raw = raw.replace(orjson.dumps(MARKER), big, 1)
    return raw


def mutate(request: Json, rng: random.Random, how: str) -> bytes:
    """One body from a drawn request: as is, or broken in the way ``how`` names."""
    if how == "plain":
        return _encode(request)
    if how in ("replace", "delete", "deep"):
        copy = orjson.loads(orjson.dumps(request))
        paths = list(_paths(copy))
        if paths:
            path = rng.choice(paths)
            value = {"replace": rng.choice(JUNK), "delete": _DELETE, "deep": _DEEP_MARKER}[how]
            _set(copy, path, value)
        raw = _encode(copy)
        if how == "deep":
            depth = rng.choice((64, 200, 256, 300, 1000, 1100, 5000))
            opener, closer = rng.choice(((b"[", b"]"), (b'{"a":', b"}")))
            raw = raw.replace(orjson.dumps(_DEEP_MARKER), _deep(depth, opener, closer))
        return raw
    raw = _encode(request)
    if how == "cut":
        return raw[: rng.randrange(max(len(raw), 1))]
    if how == "splice":
        at = rng.randrange(len(raw) + 1)
        return raw[:at] + rng.randbytes(rng.randint(1, 8)) + raw[at:]
    if b'"id":"' in raw:  # utf8: invalid UTF-8 inside a string
        return raw.replace(b'"id":"', b'"id":"\xff\xfe', 1)
    return b"\xc3" + raw


@st.composite
def bodies(draw: st.DrawFn, variants: int = 10) -> list[bytes]:
    """``variants`` bodies from one drawn OpenRTB-shaped request: the request as drawn, and
    copies broken by a seeded mutator (cut short, spliced with bytes, one value replaced by
    junk of another type, one field deleted, nesting thousands deep, invalid UTF-8). Hypothesis
    draws the structure; the mutator multiplies it cheaply, as drawing costs milliseconds."""
    request = draw(bid_request)
    rng = random.Random(draw(st.integers(min_value=0, max_value=2**32)))
    found = [mutate(request, rng, "plain")]
    found += [mutate(request, rng, rng.choice(MUTATIONS)) for _ in range(variants - 2)]
    found.append(draw(st.binary(max_size=300)))  # bytes with no structure at all
    return found


# ----------------------------------------------------------------------------- the run


@dataclass(slots=True)
class FuzzResult:
    requests: int = 0
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    server_errors: int = 0  # 5xx answers
    connection_errors: int = 0  # the server dropped a connection or did not answer
    bidder_alive: bool = True
    bid_errors: int = 0  # dsp_errors_total: bids handled by the last-resort except
    rss_start_mb: float = 0.0  # after the warm-up share of the run
    rss_end_mb: float = 0.0
    rss_max_mb: float = 0.0
    memory_growth_pct: float = 0.0
    examples_5xx: list[str] = field(default_factory=list)  # first few bodies (repr, cut)
    error_logs: int = 0  # the bidder's error log lines (tracebacks), shutdown included
    error_log_examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.server_errors == 0
            and self.connection_errors == 0
            and self.bidder_alive
            and self.bid_errors == 0
            and self.error_logs == 0
        )

    def read_log(self, text: str) -> None:
        """Count the error lines the bidder logged (JSON logs: one line per record)."""
        errors = [line for line in text.splitlines() if _ERROR_LINE.search(line)]
        self.error_logs = len(errors)
        self.error_log_examples = [line[-1500:] for line in errors[:5]]


_ERROR_LINE = re.compile(r'"level":"(error|critical)"|^Traceback|^\w+(Error|Exception):')


class _Poster:
    """HTTP/1.1 keep-alive posts to the bidder; a new connection when one is dropped."""

    def __init__(self, port: int, timeout_s: float = 5.0) -> None:
        self.port, self.timeout_s = port, timeout_s
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)

    def post(self, body: bytes) -> int | None:
        headers = {"Content-Type": "application/json"}
        try:
            self.conn.request("POST", "/openrtb2/bid", body=body, headers=headers)
            answer = self.conn.getresponse()
            answer.read()
            if answer.getheader("Connection", "").lower() == "close":
                self._reconnect()
            return answer.status
        except (OSError, http.client.HTTPException):
            self._reconnect()
            return None

    def _reconnect(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)

    def close(self) -> None:
        self.conn.close()


def bid_errors(port: int) -> int:
    """The bidder's ``dsp_errors_total``: bids a bug turned into a no-bid."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        found = re.search(rb"^dsp_errors_total (\d+)", answer.read(), re.MULTILINE)
    return int(found.group(1)) if found else 0


def run_fuzz(
    process: Bidder,
    requests: int,
    *,
    hypothesis_seed: int = 1,
    warmup_share: float = 0.2,
    progress: bool = False,
) -> FuzzResult:
    """Post ``requests`` generated bodies to the bidder and tally what came back."""
    result = FuzzResult()
    statuses: Counter[int] = Counter()
    poster = _Poster(process.port)
    warm_at = max(1, int(requests * warmup_share))
    bar = tqdm(total=requests, unit="req", desc="fuzz", disable=not progress, file=sys.stderr)
    started = time.monotonic()

    variants = 10

    @seed(hypothesis_seed)
    @settings(
        max_examples=-(-requests // variants),
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(bodies(variants))
    def send(drawn: list[bytes]) -> None:
        for body in drawn[: requests - result.requests]:
            _send_one(body)

    def _send_one(body: bytes) -> None:
        status = poster.post(body)
        result.requests += 1
        bar.update()
        if status is None:
            result.connection_errors += 1
        else:
            statuses[status] += 1
            if status >= 500:
                result.server_errors += 1
                if len(result.examples_5xx) < 10:
                    result.examples_5xx.append(repr(body[:500]))
        if result.requests == warm_at:
            result.rss_start_mb = rss_bytes(process.pid) / 2**20
        if result.requests % 1000 == 0:
            result.rss_max_mb = max(result.rss_max_mb, rss_bytes(process.pid) / 2**20)

    try:
        send()
    finally:
        bar.close()
        poster.close()
    result.seconds = time.monotonic() - started
    result.statuses = dict(sorted(statuses.items()))
    result.bidder_alive = process.alive()
    if result.bidder_alive:
        result.rss_end_mb = rss_bytes(process.pid) / 2**20
        result.rss_max_mb = max(result.rss_max_mb, result.rss_end_mb)
        result.bid_errors = bid_errors(process.port)
        if result.rss_start_mb:
            result.memory_growth_pct = 100 * (result.rss_end_mb / result.rss_start_mb - 1)
    return result


def catch_all_campaigns() -> list[dict[str, Any]]:
    """Campaigns that bid on almost anything: banners of common sizes, video and native."""
    common = {"landing_url": "https://brand.example.com/l", "adomain": ["brand.example.com"]}
    creatives: list[dict[str, Any]] = [
        {"id": f"b{w}x{h}", "format": "banner", "w": w, "h": h,
         "image_url": f"https://cdn.example.com/{w}x{h}.png", **common}
        for w, h in ((300, 250), (320, 50), (728, 90))
    ]  # fmt: skip
    creatives += [
        {"id": "v", "format": "video", "media_url": "https://cdn.example.com/v.mp4", **common},
        {"id": "n", "format": "native", "title": "T", "image_url": "https://cdn.example.com/n.png"}
        | common,
    ]
    budget = 10**15
    return [
        {
            "id": f"fuzz-{name}",
            "advertiser_id": "adv-fuzz",
            "name": f"fuzz {name}",
            "bid": {"strategy": "fixed_cpm", "cpm_micros": cpm},
            "budget": {"total_micros": budget, "daily_micros": budget},
            "targeting": {"tags": tags} if tags else {},
            "creatives": creatives,
        }
        for name, cpm, tags in (("open", 1_000_000, None), ("tagged", 3_000_000, "interest"))
    ]


async def seed_bidder(redis_url: str, campaigns: int = 50) -> None:
    """Campaigns (catch-all and synthetic) and the devices of ``IFAS``, with tags."""
    redis = Redis.from_url(redis_url)
    try:
        taxonomy = Taxonomy.default()
        payloads = catch_all_campaigns() + campaign_payloads(campaigns, 1, taxonomy)
        await save_campaigns(redis, payloads)
        today = day_number(time.time())
        entries = [TagEntry(taxonomy.tag(code).id, today + 30) for code in TAGS]
        blob = encode(Snapshot(os="ios", country="CHN", region="GD"), entries)
        items = [(parse_device_id("idfa", ifa).digests(), blob) for ifa in IFAS]
        await ProfileStore(redis).put_many(items)
    finally:
        await redis.aclose()


@contextmanager
def fuzz_target(redis_url: str | None = None, log: Path | None = None) -> Iterator[Bidder]:
    """A seeded bidder process, on ``redis_url`` or on an embedded Redis of its own."""
    with EmbeddedRedis() if redis_url is None else _given(redis_url) as url:
        uvloop.run(seed_bidder(url))
        with bidder(url, log=log) as process:
            yield process


def fuzz(
    requests: int, *, hypothesis_seed: int = 1, redis_url: str | None = None, progress: bool = False
) -> FuzzResult:
    """The whole run: seed, start the bidder, fuzz it, stop it, read its error log."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        log = Path(tmp) / "bidder.log"
        with fuzz_target(redis_url, log) as process:
            result = run_fuzz(process, requests, hypothesis_seed=hypothesis_seed, progress=progress)
        result.read_log(log.read_text(errors="replace"))
    return result


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


def summary(result: FuzzResult) -> str:
    return (
        f"fuzz: {result.requests:,} requests in {result.seconds:.0f} s "
        f"({result.requests / max(result.seconds, 1e-9):,.0f}/s); statuses {result.statuses}; "
        f"5xx {result.server_errors}; dropped connections {result.connection_errors}; "
        f"bid errors {result.bid_errors}; error logs {result.error_logs}; "
        f"bidder alive {result.bidder_alive}; "
        f"RSS {result.rss_start_mb:.1f} MB after warm-up -> {result.rss_end_mb:.1f} MB at the end "
        f"({result.memory_growth_pct:+.2f} %), max {result.rss_max_mb:.1f} MB"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fuzz",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--requests", type=int, default=int(os.environ.get("FUZZ_REQUESTS") or 100_000)
    )
    parser.add_argument("--seed", type=int, default=1, help="hypothesis seed")
    parser.add_argument("--redis-url", help="Redis to use (default: an embedded server)")
    parser.add_argument("--output", type=Path, default=Path("fuzz-results.json"))
    parser.add_argument(
        "--max-growth-pct", type=float, default=5.0, help="memory growth that fails the run"
    )
    return parser


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    args = _parser().parse_args(argv)
    setup_logging("WARNING", json=False)
    result = fuzz(args.requests, hypothesis_seed=args.seed, redis_url=args.redis_url, progress=True)
    payload = {**asdict(result), "ok": result.ok}
    payload["statuses"] = {str(k): v for k, v in result.statuses.items()}
    args.output.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
    out(summary(result))
    out(f"written to {args.output}")
    return 0 if result.ok and result.memory_growth_pct <= args.max_growth_pct else 1


if __name__ == "__main__":
    raise SystemExit(main())
