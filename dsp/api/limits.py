"""Limits of the advertiser API: a request rate per bearer token (429) and a body size (413).

The rate is a token bucket per caller, kept in the process: ``api_burst`` requests at once,
then ``api_rate_per_s`` a second. The caller is the SHA-256 of the bearer token as sent
(known or not, so guessing tokens is throttled too), or the peer address without one. Each
bidder process keeps its own buckets, so ``--workers N`` lets a token make N times the rate;
the buckets of the 10,000 most recent callers are kept, an older caller starts full again.

A body declared larger than ``api_max_body_bytes`` is refused before it is read; one sent
without a length (chunked) is cut off at the limit by aiohttp while being read. Both: 413.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from dsp.api.http import Handler, error_response
from infra.settings import Settings

MAX_CALLERS = 10_000
RETRY_AFTER = "Retry-After"


class RateLimiter:
    """Token buckets by key: ``take(key)`` spends one token, or says how long to wait."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        max_keys: int = MAX_CALLERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")
        self.rate, self.burst, self.max_keys, self.clock = rate_per_s, burst, max_keys, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when

    def take(self, key: str) -> float:
        """0 when the request may go ahead (a token is spent), else the seconds to wait."""
        now = self.clock()
        tokens, then = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[key] = (tokens, now)  # most recent last
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


def caller_key(request: web.Request) -> str:
    """Whom a request is counted against: its bearer token's hash, else its peer address."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "token:" + hashlib.sha256(token.strip().encode()).hexdigest()[:32]
    return f"peer:{request.remote}"


def limits_middleware(settings: Settings) -> Middleware:
    """The API's outermost middleware: rate first (every request counts), then size."""
    limiter = RateLimiter(settings.api_rate_per_s, settings.api_burst)
    max_bytes = settings.api_max_body_bytes

    @web.middleware
    async def limits(request: web.Request, handler: Handler) -> web.StreamResponse:
        wait = limiter.take(caller_key(request))
        if wait > 0:
            rate, burst = settings.api_rate_per_s, settings.api_burst
            reason = f"at most {rate:g} a second, {burst} at once"
            response = error_response(429, "too many requests for this token", reason=reason)
            response.headers[RETRY_AFTER] = str(max(1, math.ceil(wait)))
            return response
        length = request.content_length
        if length is not None and length > max_bytes:
            return _too_large(max_bytes)
        if request.body_exists and length is None:  # chunked: aiohttp stops reading at the limit
            request = request.clone(client_max_size=max_bytes)
        return await handler(request)

    return limits


def _too_large(max_bytes: int) -> web.Response:
    return error_response(
        413, "request body too large", field="$", reason=f"at most {max_bytes} bytes"
    )


def document_limits(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation may answer 429 (throttled) and 503 (Redis away); every one taking a
    body, 413 as well."""
    for item in paths.values():
        for method, operation in item.items():
            if method == "parameters" or not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            responses.setdefault("429", {"$ref": "#/components/responses/E429"})
            responses.setdefault("503", {"$ref": "#/components/responses/E503"})
            if "requestBody" in operation:
                responses.setdefault("413", {"$ref": "#/components/responses/E413"})
    return paths
