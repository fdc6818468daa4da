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
    redis_max_connections: int = 64
    event_stream_maxlen: int = 1_000_000
    campaign_refresh_s: float = 0.25
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
            event_stream_maxlen=_int(environ, "DSP_EVENT_STREAM_MAXLEN", base.event_stream_maxlen),
            campaign_refresh_s=_float(environ, "DSP_CAMPAIGN_REFRESH_S", base.campaign_refresh_s),
            notice_timeout_s=_float(environ, "DSP_NOTICE_TIMEOUT_S", base.notice_timeout_s),
            budget_lease_ttl_s=_float(environ, "DSP_BUDGET_LEASE_TTL_S", base.budget_lease_ttl_s),
            budget_lease_bp=_int(environ, "DSP_BUDGET_LEASE_BP", base.budget_lease_bp),
            fx_per_usd=_fx(environ.get("DSP_FX_PER_USD")),
            log_level=environ.get("LOG_LEVEL", base.log_level).upper(),
            log_json=environ.get("LOG_FORMAT", "json").lower() != "text",
        )

    def __post_init__(self) -> None:
        # A lease must outlive the reservations made under it, or a crashed process's last
        # bids could win after their money went back to the budget.
        if self.budget_lease_ttl_s <= self.notice_timeout_s:
            raise ConfigError("DSP_BUDGET_LEASE_TTL_S", "must be longer than DSP_NOTICE_TIMEOUT_S")
        if not 1 <= self.budget_lease_bp <= 10_000:
            raise ConfigError("DSP_BUDGET_LEASE_BP", "must be between 1 and 10000")

    def replace(self, **changes: object) -> Settings:
        """A copy with command-line overrides applied (``None`` means: keep the current value)."""
        given = {name: value for name, value in changes.items() if value is not None}
        return dataclasses.replace(self, **given)  # type: ignore[arg-type]

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
