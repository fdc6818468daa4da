"""Group ``bid``: the bidder's throughput and latency beside a bare aiohttp server.

One load generator, one concurrency, one sitting: first a canned-204 server (the generator's
own ceiling), then rounds alternating between the bare aiohttp server and ``dsp serve`` over
an embedded Redis holding a DMP population and active campaigns, with every request naming
a stored device. On a shared machine a server's throughput moves with whatever else runs;
alternating puts each bidder run beside a bare run of the same moment.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import orjson
import uvloop
from redis.asyncio import Redis

from adx_mock.supply import SupplyConfig, build_request
from bench import devices, host, servers
from bench.campaigns import campaign_payloads
from bench.client import http_post
from bench.figures import Figures
from bench.loadgen import LoadGenerator, Outcome, pooled
from bench.pacer import Pacer, PacerUnavailable
from bench.wrk import Wrk, WrkOutcome
from bench.wrk import available as wrk_available
from dmp.profile_store import ProfileStore
from dmp.taxonomy import Taxonomy
from dsp.bidder.openrtb import parse_bid_request
from dsp.campaigns.store import save_campaigns
from infra import compiled
from infra.embedded_redis import EmbeddedRedis
from infra.settings import DEFAULT_FX_PER_USD

FIGURES = (
    "bid_path_compiled", "load_generator_wrk", "generator_ceiling_rps", "bare_rps",
    "bare_p50_ms", "bare_p99_ms", "bare_p999_ms", "bid_rps", "bid_ratio_vs_bare",
    "bid_p50_ms", "bid_p99_ms", "bid_p999_ms", "bid_fill_fraction", "bid_p99_ms_half_load",
    "late_fraction_overload", "bid_rps_2_workers", "bare_cpu_us_per_request",
    "bid_cpu_us_per_request", "bid_cpu_ratio_vs_bare", "bid_shed_fraction",
    "bid_shed_fraction_half_load", "bid_p99_ms_half_load_issued", "bare_p99_ms_half_load",
    "host_steal_half_load", "load_generator_pacer", "open_loop_connections_overload",
)  # fmt: skip
TMAX_S = 0.1  # the tmax of every request, as an exchange enforces it
OVERLOAD = 2.0  # the overload run offers this times the closed-loop throughput
NO_SHEDDING_MS = 3_600_000  # DSP_SHED_LAG_MS of the closed-loop runs: a lag never reached
HALF_LOAD_RUNS = 3  # alternating bare and bidder runs at half load, pooled
CLOSED_ROUNDS = 3  # closed-loop rounds of the bare server then the bidder; the median reported


@dataclass(frozen=True, slots=True)
class BidOptions:
    devices: int = 1_000_000
    campaigns: int = 1000
    bodies: int = 5000  # distinct requests, rotated
    connections: int = 64  # closed loop; open-loop runs keep 4x as many ready, or more
    generator_workers: int = 2
    warmup_s: float = 1.0
    duration_s: float = 5.0
    seed: int = 1


@dataclass(frozen=True, slots=True)
class Closed:
    """A closed-loop run, from either generator."""

    rps: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    errors: int
    fill: float | None  # share of 200 (bid) answers; unknown with wrk
    cpu_us: float = float("nan")  # server CPU time per answer (warm-up and run together)


def _metric(port: int, name: str) -> float:
    """A counter of the bidder's ``/metrics`` (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _from_outcome(outcome: Outcome) -> Closed:
    fill = outcome.bids / outcome.ok if outcome.ok else 0.0
    p50, p99, p999 = (outcome.percentile_ms(q) for q in (50, 99, 99.9))
    return Closed(outcome.rps, p50, p99, p999, outcome.errors, fill)


def _from_wrk(outcome: WrkOutcome) -> Closed:
    p50, p99, p999 = outcome.p50_ms, outcome.p99_ms, outcome.p999_ms
    return Closed(outcome.rps, p50, p99, p999, outcome.errors, None)


async def _save_campaigns(url: str, options: BidOptions) -> None:
    payloads = campaign_payloads(options.campaigns, options.seed, Taxonomy.default())
    redis = Redis.from_url(url)
    try:
        await save_campaigns(redis, payloads)
    finally:
        await redis.aclose()


def _seed(url: str, options: BidOptions) -> list[devices.Record]:
    """Store the population and the campaigns; the records requests will name."""
    every = max(1, options.devices // options.bodies)
    stored = devices.store_population(url, options.devices, options.seed, sample_every=every)
    uvloop.run(_save_campaigns(url, options))
    return stored.sample


async def _check_devices(url: str, bodies: list[bytes]) -> None:
    """Every request must name a stored device, found the way the bidder looks it up."""
    keys = []
    for body in bodies:
        request = parse_bid_request(
            orjson.loads(body), default_tmax_ms=100, max_tmax_ms=2000, fx_per_usd=DEFAULT_FX_PER_USD
        )
        keys.append(request.device_ids[0].key if request.device_ids else b"")
    redis = Redis.from_url(url)
    try:
        found = await ProfileStore(redis).get_many(keys)
    finally:
        await redis.aclose()
    missing = sum(blob is None for blob in found)
    if missing:
        raise RuntimeError(f"{missing} of {len(bodies)} requests name no stored device")


def request_bodies(records: list[devices.Record], seed: int) -> list[bytes]:
    """One OpenRTB request body per record, each naming the record's (stored) device."""
    rng = random.Random(seed)
    config = SupplyConfig(tmax_ms=round(TMAX_S * 1000), unknown_device_share=0.0)
    return [orjson.dumps(build_request(rng, record, config)) for record in records]


def _bare_figures(figures: Figures, bare: Closed) -> None:
    figures.add("bare_rps", bare.rps, "req/s", f"aiohttp+uvloop+orjson, {bare.errors} errors")
    note = "bare server, closed loop at full load"
    figures.add("bare_p50_ms", bare.p50_ms, "ms", note)
    figures.add("bare_p99_ms", bare.p99_ms, "ms", note)
    figures.add("bare_p999_ms", bare.p999_ms, "ms", note)


def _middle_round(figures: Figures, rounds: list[tuple[Closed, Closed]]) -> tuple[Closed, Closed]:
    """The (bare, bidder) pair of the round with the median throughput ratio."""
    ratios = [bid.rps / bare.rps if bare.rps else 0.0 for bare, bid in rounds]
    figures.say(
        "  closed-loop rounds, bidder / bare: "
        + ", ".join(
            f"{bid.rps:,.0f} / {bare.rps:,.0f} = {ratio:.3f}"
            for (bare, bid), ratio in zip(rounds, ratios, strict=True)
        )
    )
    order = sorted(range(len(rounds)), key=ratios.__getitem__)
    return rounds[order[len(order) // 2]]


def _check_ceiling(figures: Figures, ceiling: Closed, bare: Closed, bid: Closed) -> None:
    """The generator must outrun both servers, or their figures measure the generator."""
    fastest = max(bare.rps, bid.rps, 1e-9)
    verdict = "ok" if ceiling.rps >= 1.5 * fastest else "WARNING: figures may be generator-bound"
    figures.say(
        f"  generator ceiling {ceiling.rps / max(bare.rps, 1e-9):.1f}x bare, "
        f"{ceiling.rps / max(bid.rps, 1e-9):.1f}x bidder: {verdict}"
    )


def _bidder_figures(figures: Figures, bid: Closed, bare: Closed) -> None:
    figures.add("bid_rps", bid.rps, "req/s", f"dsp serve, 1 worker, {bid.errors} errors")
    figures.add("bid_ratio_vs_bare", bid.rps / bare.rps if bare.rps else 0.0, "x")
    note = "closed loop at full load: mostly queueing"
    figures.add("bid_p50_ms", bid.p50_ms, "ms", note)
    figures.add("bid_p99_ms", bid.p99_ms, "ms", note)
    figures.add("bid_p999_ms", bid.p999_ms, "ms", note)
    if bid.fill is not None:
        figures.add("bid_fill_fraction", bid.fill, "", "share of answers that bid (200)")


def _cpu_figures(figures: Figures, bid: Closed, bare: Closed, shed: float) -> None:
    figures.add("bare_cpu_us_per_request", bare.cpu_us, "us", "bare server process, CPU time")
    figures.add("bid_cpu_us_per_request", bid.cpu_us, "us", "bidder process, CPU time")
    ratio = bare.cpu_us / bid.cpu_us if bid.cpu_us else 0.0
    note = "bare CPU / bidder CPU per request: the throughput ratio with a core each"
    figures.add("bid_cpu_ratio_vs_bare", ratio, "x", note)
    note = "closed-loop answers shed unread (must be ~0 for bid_rps to be a bid rate)"
    figures.add("bid_shed_fraction", shed, "", note)


class OpenLoop(Protocol):
    """An open-loop run: ``LoadGenerator.run`` or ``Pacer.run``."""

    def __call__(
        self,
        port: int,
        *,
        connections: int,
        rate: float,
        warmup_s: float,
        duration_s: float,
        deadline_s: float,
    ) -> Outcome: ...


def open_connections(rate: float, options: BidOptions) -> int:
    """Connections an open-loop run keeps: enough to offer ``rate`` even if every answer took
    the whole tmax (Little's law), or the generator, not the server, would cap what is offered."""
    return max(options.connections * 4, math.ceil(rate * TMAX_S))


def _open_figures(
    figures: Figures, open_loop: OpenLoop, port: int, bid_rps: float, options: BidOptions
) -> None:
    def open_run(at: int, rate: float) -> Outcome:
        return open_loop(
            at,
            connections=open_connections(rate, options),
            rate=rate,
            warmup_s=options.warmup_s,
            duration_s=options.duration_s,
            deadline_s=TMAX_S,
        )

    def shed_share(run: Callable[[], Outcome]) -> tuple[Outcome, float]:
        shed = _metric(port, "dsp_shed_total")
        outcome = run()
        shed = _metric(port, "dsp_shed_total") - shed
        return outcome, shed / outcome.answered if outcome.answered else 0.0

    _half_load_figures(figures, lambda at: open_run(at, bid_rps / 2), port, shed_share)
    over, shed = shed_share(lambda: open_run(port, bid_rps * OVERLOAD))
    dropped = over.dropped / over.due if over.due else 0.0
    note = (
        f"open loop at {bid_rps * OVERLOAD:,.0f}/s: answered {over.rps:,.0f}/s, {shed:.0%} of "
        f"them shed, {dropped:.0%} dropped unsent (no free connection within tmax)"
    )
    figures.add("late_fraction_overload", over.late_fraction, "", note)
    connections = open_connections(bid_rps * OVERLOAD, options)
    note = f"rate x tmax, at least {options.connections * 4}"
    figures.add("open_loop_connections_overload", connections, "", note)


def _half_load_figures(
    figures: Figures,
    open_run: Callable[[int], Outcome],
    port: int,
    shed_share: Callable[[Callable[[], Outcome]], tuple[Outcome, float]],
) -> None:
    """The bidder at half its throughput, beside the bare server at the same rate.

    Runs alternate between the two, so both meet the same moments of a shared host; their
    latencies are pooled. The host's steal is read over the bidder's runs: a virtual CPU the
    hypervisor deschedules stalls every process on it, the bare server's too.
    """
    bids: list[Outcome] = []
    bares: list[Outcome] = []
    steals: list[float] = []
    shed = 0.0
    with servers.server_process(servers.run_bare) as bare_port:
        for _ in range(HALF_LOAD_RUNS):
            bares.append(open_run(bare_port))
            before = host.CpuTimes.now()
            outcome, share = shed_share(lambda: open_run(port))
            steals.append(host.steal_fraction(before, host.CpuTimes.now()))
            bids.append(outcome)
            shed += share * outcome.answered
    half, bare = pooled(bids), pooled(bares)
    rate = half.due / half.seconds if half.seconds else 0.0
    each = ", ".join(
        f"{run.percentile_ms(99):.1f} ms at {steal:.1%} steal"
        for run, steal in zip(bids, steals, strict=True)
    )
    note = f"open loop at {rate:,.0f}/s, {half.late_fraction:.2%} late; runs: {each}"
    figures.add("bid_p99_ms_half_load", half.percentile_ms(99), "ms", note)
    note = "the same, timed from when the generator issued each request (its lateness left out)"
    figures.add("bid_p99_ms_half_load_issued", half.issued_percentile_ms(99), "ms", note)
    note = "bare server, open loop at the same rate, runs alternating with the bidder's"
    figures.add("bare_p99_ms_half_load", bare.percentile_ms(99), "ms", note)
    note = "share of the machine's CPU time the hypervisor took during the bidder's runs"
    figures.add("host_steal_half_load", sum(steals) / len(steals), "", note)
    shed = shed / half.answered if half.answered else 0.0
    figures.add("bid_shed_fraction_half_load", shed, "", "answers shed at half load: bids lost")


def _runs(
    figures: Figures,
    generator: LoadGenerator,
    wrk: Wrk | None,
    pacer: Pacer | None,
    bidder_url: str,
    options: BidOptions,
) -> None:
    timing = {"warmup_s": options.warmup_s, "duration_s": options.duration_s}

    def closed(port: int) -> Closed:
        # Server CPU per answer, beside throughput: on a shared machine the throughput of
        # either server moves with what else runs, its CPU cost per request much less.
        pids = servers.listening_pids(port)
        used = servers.cpu_seconds(pids)
        if wrk is not None:
            run = _from_wrk(wrk.run(port, connections=options.connections, **timing))
        else:
            run = _from_outcome(generator.run(port, connections=options.connections, **timing))
        answers = run.rps * (options.warmup_s + options.duration_s)
        cpu_us = (servers.cpu_seconds(pids) - used) / answers * 1e6 if pids and answers else 0.0
        return dataclasses.replace(run, cpu_us=cpu_us)

    state = compiled.summary()
    note = f"1: the bid path runs compiled by mypyc (make compile); here {state}"
    figures.add("bid_path_compiled", int(state == "compiled"), "", note)
    figures.add("load_generator_wrk", int(wrk is not None), "", "1: wrk, 0: built-in generator")
    note = "open-loop runs: 1: pacer (C, bench/pacer.c), 0: built-in generator (Python)"
    figures.add("load_generator_pacer", int(pacer is not None), "", note)
    with servers.server_process(servers.run_canned) as port:
        ceiling = closed(port)
    figures.add("generator_ceiling_rps", ceiling.rps, "req/s", "canned 204, raw asyncio")
    # Closed loop, the bidder's throughput: with shedding off, or answers shed unread (at
    # full load the loop lags past the default threshold all the time) would count as bids.
    # Rounds alternate between the bare server and the bidder, both running, so each pair
    # meets the same moments of a shared host; the round with the median ratio is reported.
    with (
        servers.server_process(servers.run_bare) as bare_port,
        servers.bidder_process(bidder_url, shed_lag_ms=NO_SHEDDING_MS) as port,
    ):
        shed, answered = _metric(port, "dsp_shed_total"), _metric(port, "dsp_bid_latency_ms_count")
        rounds = [(closed(bare_port), closed(port)) for _ in range(CLOSED_ROUNDS)]
        shed = _metric(port, "dsp_shed_total") - shed
        answered = _metric(port, "dsp_bid_latency_ms_count") - answered
    bare, bid = _middle_round(figures, rounds)
    _bare_figures(figures, bare)
    _bidder_figures(figures, bid, bare)
    _cpu_figures(figures, bid, bare, shed / answered if answered else 0.0)
    _check_ceiling(figures, ceiling, bare, bid)
    # Open loop, latency at half that throughput and lateness at twice it: as deployed.
    with servers.bidder_process(bidder_url) as port:
        _open_figures(
            figures, generator.run if pacer is None else pacer.run, port, bid.rps, options
        )
    with servers.bidder_process(bidder_url, workers=2, shed_lag_ms=NO_SHEDDING_MS) as port:
        two = closed(port)
    figures.add(
        "bid_rps_2_workers", two.rps, "req/s", f"dsp serve --workers 2, {two.errors} errors"
    )


def run_bid(figures: Figures, options: BidOptions | None = None) -> None:
    """Figures of the ``bid`` group."""
    options = options or BidOptions()
    # The bidder reaches its Redis, on the same host, through a Unix socket (the rest of the
    # bench through TCP): 6 to 10 us less of Redis's CPU a request than over loopback TCP.
    embedded = EmbeddedRedis(unix_socket=True)
    with embedded as url:
        started = time.perf_counter()
        sample = _seed(url, options)
        seconds = time.perf_counter() - started
        figures.say(
            f"bid: {options.devices:,} devices and {options.campaigns:,} campaigns stored "
            f"in {seconds:.0f} s; {len(sample):,} distinct requests"
        )
        bodies = request_bodies(sample, options.seed)
        uvloop.run(_check_devices(url, bodies))
        requests = [http_post(body) for body in bodies]
        wrk = Wrk(bodies, options.generator_workers) if wrk_available() else None
        pacer = _pacer(figures, requests)
        try:
            with LoadGenerator(requests, options.generator_workers) as generator:
                _runs(figures, generator, wrk, pacer, embedded.unix_url, options)
        finally:
            if wrk is not None:
                wrk.close()
            if pacer is not None:
                pacer.close()


def _pacer(figures: Figures, requests: list[bytes]) -> Pacer | None:
    """The C open-loop generator, or None (and why) when it cannot be built here."""
    try:
        return Pacer(requests)
    except PacerUnavailable as error:
        figures.say(f"  {error}: open-loop runs use the built-in generator")
        return None
