"""Locust scenario: an exchange posting OpenRTB 2.6 bid requests at the bidder.

The bidder must already hold the same population (``adx-mock population --devices N
--seed S --out devices.jsonl`` then ``dmp ingest devices.jsonl``) and some campaigns.
Run headless, bounded in users and time, against loopback only::

    locust -f loadtests/locustfile.py --headless -u 50 -r 50 -t 30s \\
        --host http://127.0.0.1:8080 --devices 10000 --seed 1
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import orjson
from locust import FastHttpUser, events, task

from adx_mock.population import generate_population
from adx_mock.supply import bid_requests
from dmp.taxonomy import Taxonomy


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _options(parser: Any) -> None:
    parser.add_argument("--devices", type=int, default=10_000, help="population size")
    parser.add_argument("--seed", type=int, default=1, help="population seed")


class Exchange(FastHttpUser):
    """One exchange connection posting bid requests back to back."""

    _requests: Iterator[str] | None = None

    def on_start(self) -> None:
        if Exchange._requests is None:
            options = self.environment.parsed_options
            population = list(
                generate_population(options.devices, options.seed, Taxonomy.default())
            )
            # Built once per process and cycled: building requests must not be what we measure.
            prepared = [
                orjson.dumps(r).decode()
                for r in itertools.islice(bid_requests(population, 1), 20_000)
            ]
            Exchange._requests = itertools.cycle(prepared)

    @task
    def bid(self) -> None:
        assert Exchange._requests is not None
        body = next(Exchange._requests)
        headers = {"Content-Type": "application/json", "x-openrtb-version": "2.6"}
        with self.client.post(
            "/openrtb2/bid", data=body, headers=headers, catch_response=True
        ) as response:
            if response.status_code in (200, 204):
                response.success()
            else:
                response.failure(f"status {response.status_code}")
