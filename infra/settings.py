"""The one typed settings object, built once from the environment and the command line."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from infra.errors import ConfigError

# Units of each currency per US dollar. A real deployment feeds these from a rates service;
# they only convert floors and bid prices at the edge, budgets stay in USD micros.
DEFAULT_FX_PER_USD: Mapping[str, Decimal] = {
    "USD": Decimal("1"),
    "EUR": Decimal("0.92"),
    "GBP": Decimal("0.79"),
    "CNY": Decimal("7.20"),
    "JPY": Decimal("150"),
}


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(name, f"expected an integer, got {raw!r}") from None


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(name, f"expected a number, got {raw!r}") from None


def _fx(raw: str | None) -> Mapping[str, Decimal]:
    """``EUR=0.92,CNY=7.2`` on top of the defaults."""
    rates = dict(DEFAULT_FX_PER_USD)
    for item in (raw or "").split(","):
        if not item.strip():
            continue
        code, _, value = item.partition("=")
        try:
            rates[code.strip().upper()] = Decimal(value)
        except InvalidOperation:
            raise ConfigError("DSP_FX_PER_USD", f"bad rate {item!r}") from None
    return rates


def _signing_keys(raw: str | None) -> tuple[tuple[str, bytes], ...]:
    """``k2=secret2,k1=secret1``: key id and secret, newest first."""
    found = []
    for item in (raw or "").split(","):
        if not item.strip():
            continue
        key_id, _, secret = item.strip().partition("=")
        if not key_id or not secret or not key_id.isalnum():
            raise ConfigError("DSP_SIGNING_KEYS", f"expected ID=SECRET, got {item.strip()!r}")
        found.append((key_id, secret.encode()))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a process needs to know about its deployment; passed down, never global."""

    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    # Base of the tracking links put in bids (nurl, pixel, click); the listening address if unset.
    public_url: str | None = None
    # HMAC key of tracking links. Unset: one random key is created in Redis and shared by all
    # bidder processes, so a link signed by one worker verifies on another.
    signing_key: bytes | None = None
    default_tmax_ms: int = 100
    # Time kept back from tmax for the network and the exchange's own bookkeeping.
    tmax_margin_ms: int = 10
    max_tmax_ms: int = 2000
    max_body_bytes: int = 256 * 1024
    # Event-loop lag past which the bid front answers a growing share of requests 204 unread
    # (dsp/bidder/front.py). Low, because an exchange holds one request per connection: at
    # 30 ms the answers stayed inside tmax but were slow enough that its connections ran out
    # at twice the bidder's capacity and 58 % of requests were late waiting for one; at 5 ms
    # none were (10,000/s offered, 256 connections, this machine).
    shed_lag_ms: int = 5
    # Connections the kernel holds for the bid front until it accepts them (the kernel caps
    # it at net.core.somaxconn). Exchanges open their pools at once, after a restart too: at
    # 1024, 3,800 connections arriving together overflowed it, the dropped handshakes were
    # retried a second later, and 15 % of the first second's answers were late.
    listen_backlog: int = 4096
    # A CTR model file (``dsp ctr train --out``) for target-CPC lines; "" : none (prior CTR).
    ctr_model: str = ""
    # issue 12: a pCVR model file (``dsp ctr train --label conversion``) for target-CPA lines;
    # "" : none, and target-CPA lines do not bid.
    cvr_model: str = ""
    redis_max_connections: int = 64
    # Longest wait for one Redis reply off the bid path (tracking, budgets, events): a reply
    # that never comes fails as a RedisError, handled and logged, instead of hanging a
    # handler or a background task until shutdown.
    redis_timeout_s: float = 5.0
    event_stream_maxlen: int = 1_000_000
    campaign_refresh_s: float = 0.25
    # Spend, settlements, leases, pacing and schedules are re-read every this many campaign
    # refreshes (and at once when campaigns change): at a thousand campaigns a budget
    # refresh takes milliseconds of the event loop, which bids wait behind.
    budget_refresh_every: int = 4
    notice_ttl_s: int = 7 * 86400
    click_window_s: int = 3600
    # Budgets (dsp/budget). A bid reserves its highest cost from a lease this process holds on
    # the campaign's budget; the reservation lasts ``notice_timeout_s`` (then the bid counts as
    # lost, and a win arriving later is charged and flagged late). A lease holds at most
    # ``budget_lease_bp`` basis points of the daily budget unspent, and lapses
    # ``budget_lease_ttl_s`` after its last renewal: what a crashed process held comes back then.
    notice_timeout_s: float = 30.0
    budget_lease_ttl_s: float = 60.0
    budget_lease_bp: int = 100
    # Seed of the pacing draws (None: from the OS). Tests and simulations fix it.
    pacing_seed: int | None = None
    fx_per_usd: Mapping[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_FX_PER_USD))
    log_level: str = "INFO"
    log_json: bool = True
    # Tracking-link keys as (key id, secret), newest first: links are signed with the first,
    # and verify under any listed one, so a key can be rotated without breaking live links.
    # Empty: ``signing_key`` (or the random shared key) under key id "0".
    signing_keys: tuple[tuple[str, bytes], ...] = ()
    # Event log (dsp/events): where the archiver writes its hourly files, the bidder's
    # in-process bid-event buffer (bounded: beyond it events are dropped and counted), and
    # the invalid-traffic rule "more than N clicks of one device in a window".
    events_dir: str = "data/events"
    event_buffer_max: int = 100_000
    event_flush_s: float = 0.2
    event_batch_max: int = 1000
    events_claim_idle_s: float = 30.0
    click_rate_max: int = 5
    click_rate_window_s: int = 3600
    # issue 10: advertiser API limits. A token bucket per bearer token (keyed by its hash,
    # in each process: N workers allow N times the rate): ``api_rate_per_s`` sustained,
    # ``api_burst`` at once, then 429 with Retry-After. Bodies over ``api_max_body_bytes``: 413.
    api_rate_per_s: float = 50.0
    api_burst: int = 500
    api_max_body_bytes: int = 64 * 1024
    # issue 10: where an embedded Redis (no REDIS_URL) keeps an append-only file, fsync'd
    # every second, so a restart keeps the events and budgets; None: a throwaway directory.
    redis_data_dir: str | None = None
    # issue 12: conversions. View-through attribution credits a device's impression for this
    # long (clicks: the campaign's click_window_days); a device's touches are kept for
    # ``conversion_touch_ttl_s`` (at least the longest click window); an order id counts
    # once within ``conversion_dedup_ttl_s``.
    view_window_s: int = 86_400
    conversion_touch_ttl_s: int = 30 * 86_400
    conversion_dedup_ttl_s: int = 90 * 86_400

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        key = environ.get("DSP_SIGNING_KEY")
        base = cls()
        return cls(
            redis_url=environ.get("REDIS_URL") or None,
            host=environ.get("DSP_HOST", base.host),
            port=_int(environ, "DSP_PORT", base.port),
            workers=_int(environ, "DSP_WORKERS", base.workers),
            public_url=environ.get("DSP_PUBLIC_URL") or None,
            signing_key=key.encode() if key else None,
            default_tmax_ms=_int(environ, "DSP_DEFAULT_TMAX_MS", base.default_tmax_ms),
            tmax_margin_ms=_int(environ, "DSP_TMAX_MARGIN_MS", base.tmax_margin_ms),
            shed_lag_ms=_int(environ, "DSP_SHED_LAG_MS", base.shed_lag_ms),
            listen_backlog=_int(environ, "DSP_LISTEN_BACKLOG", base.listen_backlog),
            ctr_model=environ.get("DSP_CTR_MODEL", base.ctr_model),
            cvr_model=environ.get("DSP_CVR_MODEL", base.cvr_model),
            event_stream_maxlen=_int(environ, "DSP_EVENT_STREAM_MAXLEN", base.event_stream_maxlen),
            redis_timeout_s=_float(environ, "DSP_REDIS_TIMEOUT_S", base.redis_timeout_s),
            campaign_refresh_s=_float(environ, "DSP_CAMPAIGN_REFRESH_S", base.campaign_refresh_s),
            budget_refresh_every=_int(
                environ, "DSP_BUDGET_REFRESH_EVERY", base.budget_refresh_every
            ),
            notice_timeout_s=_float(environ, "DSP_NOTICE_TIMEOUT_S", base.notice_timeout_s),
            budget_lease_ttl_s=_float(environ, "DSP_BUDGET_LEASE_TTL_S", base.budget_lease_ttl_s),
            budget_lease_bp=_int(environ, "DSP_BUDGET_LEASE_BP", base.budget_lease_bp),
            fx_per_usd=_fx(environ.get("DSP_FX_PER_USD")),
            log_level=environ.get("LOG_LEVEL", base.log_level).upper(),
            log_json=environ.get("LOG_FORMAT", "json").lower() != "text",
            signing_keys=_signing_keys(environ.get("DSP_SIGNING_KEYS")),
            events_dir=environ.get("DSP_EVENTS_DIR", base.events_dir),
            event_buffer_max=_int(environ, "DSP_EVENT_BUFFER_MAX", base.event_buffer_max),
            event_flush_s=_float(environ, "DSP_EVENT_FLUSH_S", base.event_flush_s),
            click_rate_max=_int(environ, "DSP_CLICK_RATE_MAX", base.click_rate_max),
            click_rate_window_s=_int(environ, "DSP_CLICK_RATE_WINDOW_S", base.click_rate_window_s),
            api_rate_per_s=_float(environ, "DSP_API_RATE_PER_S", base.api_rate_per_s),
            api_burst=_int(environ, "DSP_API_BURST", base.api_burst),
            api_max_body_bytes=_int(environ, "DSP_API_MAX_BODY_BYTES", base.api_max_body_bytes),
            redis_data_dir=environ.get("REDIS_DATA_DIR") or None,
            view_window_s=_int(environ, "DSP_VIEW_WINDOW_S", base.view_window_s),
            conversion_touch_ttl_s=_int(
                environ, "DSP_CONVERSION_TOUCH_TTL_S", base.conversion_touch_ttl_s
            ),
            conversion_dedup_ttl_s=_int(
                environ, "DSP_CONVERSION_DEDUP_TTL_S", base.conversion_dedup_ttl_s
            ),
        )

    def __post_init__(self) -> None:
        # A lease must outlive the reservations made under it, or a crashed process's last
        # bids could win after their money went back to the budget.
        if self.budget_lease_ttl_s <= self.notice_timeout_s:
            raise ConfigError("DSP_BUDGET_LEASE_TTL_S", "must be longer than DSP_NOTICE_TIMEOUT_S")
        if not 1 <= self.budget_lease_bp <= 10_000:
            raise ConfigError("DSP_BUDGET_LEASE_BP", "must be between 1 and 10000")
        if self.listen_backlog < 1:
            raise ConfigError("DSP_LISTEN_BACKLOG", "must be at least 1")
        if self.budget_refresh_every < 1:
            raise ConfigError("DSP_BUDGET_REFRESH_EVERY", "must be at least 1")

    def replace(self, **changes: object) -> Settings:
        """A copy with command-line overrides applied (``None`` means: keep the current value)."""
        given = {name: value for name, value in changes.items() if value is not None}
        return dataclasses.replace(self, **given)  # type: ignore[arg-type]

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
