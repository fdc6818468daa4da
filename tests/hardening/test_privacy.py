"""Privacy signals: no DMP lookup reaches Redis and no DMP tag decides the bid.

Redis is watched with MONITOR around each request: the bidder's device lookup is the only
command touching a profile bucket (``dmp:p:{....}``), so a request honoured as private
must leave no such command. A device whose tags would win a tag-targeted campaign shows the
other half: without the lookup, the untargeted campaign wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from dsp.app import LIVE
from dsp.bidder.openrtb import consent_parsable
from dsp.campaigns.store import save_campaigns
from tests.dsp.factories import IDFA, bid_request, campaign, store_profile

Client = TestClient[Request, Application]
PROFILE_BUCKET = b"dmp:p:{"
# A real TCF v2 consent string (from the prebid-server test corpus).
TCF_V2 = (
    "CO-X2XiO_eyUoAsAxBFRBECsAP_AAH_AAAqIGMgB7CpERSNAYWApAOMAKYhfQAACAGAABAYIASgBQQBAMJQEkGAIMAj"
    "AAAAKAAAEACQAAAAgCAGAAAAAAAAAAQCMAAAAABAAACAAAAASAAAACAAACACSCAAQjAAAAAEAgAAAAAIF5wJwAFgAPAA"
)


class Monitor:
    """Every command Redis executes while the monitor runs, as MONITOR prints them."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.lines: list[bytes] = []

    async def until(self, redis: Redis) -> list[bytes]:
        """The commands seen up to now: a marker is sent and read back, so none is missed."""
        marker = f"monitor-marker-{secrets.token_hex(8)}"
        await redis.echo(marker)
        async with asyncio.timeout(5):
            while True:
                line = await self.reader.readline()
                if marker.encode() in line:
                    return self.lines
                self.lines.append(line)


@contextlib.asynccontextmanager
async def monitored(redis_url: str) -> AsyncIterator[Monitor]:
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"MONITOR\r\n")
    await writer.drain()
    assert (await reader.readline()).startswith(b"+OK")
    try:
        yield Monitor(reader, writer)
    finally:
        writer.close()
        await writer.wait_closed()


async def bid(client: Client, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = await client.post("/openrtb2/bid", data=orjson.dumps(payload))
    body = await response.read()
    return response.status, orjson.loads(body) if body else {}


@pytest.fixture
async def tagged_device(dsp_client: Client, redis: Redis) -> Client:
    """A tag-targeted campaign that wins for the stored device, and a cheaper open one."""
    await save_campaigns(
        redis,
        [
            campaign("tagged", cpm_micros=5_000_000, tags="interest.automotive"),
            campaign("open", cpm_micros=1_000_000),
        ],
    )
    await dsp_client.app[LIVE].refresh(redis)
    await store_profile(redis, tags=("interest.automotive.suv",))
    return dsp_client


def lookups(lines: list[bytes]) -> list[bytes]:
    return [line for line in lines if PROFILE_BUCKET in line]


async def test_without_a_privacy_signal_the_lookup_is_seen_and_the_tags_win(
    tagged_device: Client, redis: Redis, redis_url: str
) -> None:
    """The observation works: an ordinary request shows its lookup and the tags decide."""
    async with monitored(redis_url) as monitor:
        status, body = await bid(tagged_device, bid_request())
        seen = await monitor.until(redis)
    assert status == 200 and body["seatbid"][0]["bid"][0]["cid"] == "tagged"
    assert lookups(seen), "the device lookup should have been observed"


def _with(request: dict[str, Any], **parts: dict[str, Any]) -> dict[str, Any]:
    for name, values in parts.items():
        request[name] = {**request.get(name, {}), **values}
    return request


PRIVATE: dict[str, dict[str, dict[str, Any]]] = {
    "device.lmt=1": {"device": {"ifa": IDFA, "os": "iOS", "lmt": 1}},
    "device.dnt=1": {"device": {"ifa": IDFA, "os": "iOS", "dnt": 1}},
    "regs.coppa=1": {"regs": {"coppa": 1}},
    "regs.ext.coppa=1": {"regs": {"ext": {"coppa": 1}}},
    "gdpr=1, no consent": {"regs": {"gdpr": 1}},
    "gdpr=1, empty consent": {"regs": {"gdpr": 1}, "user": {"consent": "  "}},
    "gdpr=1, unparsable consent": {"regs": {"gdpr": 1}, "user": {"consent": "yes-please"}},
    "gdpr=1, consent not base64": {"regs": {"gdpr": 1}, "user": {"consent": "C" + "!" * 40}},
    "gdpr=1, consent of version 7": {"regs": {"gdpr": 1}, "user": {"consent": "c" * 40}},
    "gdpr=1, consent not a string": {"regs": {"gdpr": 1}, "user": {"consent": 1}},
    "regs.ext.gdpr=1, unparsable user.ext.consent": {
        "regs": {"ext": {"gdpr": 1}},
        "user": {"ext": {"consent": "gdprConsentString"}},
    },
}


@pytest.mark.parametrize("signal", list(PRIVATE), ids=list(PRIVATE))
async def test_a_privacy_signal_means_no_dmp_lookup_and_no_tags(
    tagged_device: Client, redis: Redis, redis_url: str, signal: str
) -> None:
    request = _with(bid_request(), **PRIVATE[signal])
    async with monitored(redis_url) as monitor:
        status, body = await bid(tagged_device, request)
        seen = await monitor.until(redis)
    assert lookups(seen) == []
    assert status == 200, "still a bid: only the DMP data is off limits"
    assert [b["cid"] for b in body["seatbid"][0]["bid"]] == ["open"]


async def test_gdpr_with_a_readable_consent_string_uses_the_dmp(
    tagged_device: Client, redis: Redis, redis_url: str
) -> None:
    request = _with(bid_request(), regs={"gdpr": 1}, user={"consent": TCF_V2})
    async with monitored(redis_url) as monitor:
        status, body = await bid(tagged_device, request)
        seen = await monitor.until(redis)
    assert lookups(seen)
    assert status == 200 and body["seatbid"][0]["bid"][0]["cid"] == "tagged"


@pytest.mark.parametrize(
    ("consent", "readable"),
    [
        (TCF_V2, True),
        (TCF_V2 + ".YAAAAAAAAAAA", True),  # with a disclosed-vendors segment
        ("BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA", True),  # TCF v1
        ("", False),
        ("1YNN", False),  # a US privacy string, not TCF
        ("BOEFEAyOEFEAyAHABDENAI4AAAB9vABAAS=", False),
        ("BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASÄ", False),
        ("AOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA", False),  # version 0
        (None, False),
        (["CO-X2XiO"], False),
    ],
)
def test_consent_strings(consent: object, readable: bool) -> None:
    assert consent_parsable(consent) is readable
