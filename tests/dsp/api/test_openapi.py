"""The OpenAPI document matches the implementation: property-based contract tests.

Schemathesis generates requests from ``/api/v1/openapi.json`` (valid ones and, in negative
mode, ones that break the schema) and sends them to a live server on a loopback socket;
every answer must be documented (status, content type, headers, body schema), no request
may cause a 5xx, and every schema-breaking request must be refused with a 4xx.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from redis.asyncio import Redis
from schemathesis import GenerationMode, checks
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Ok

from dsp.admin import create_advertiser
from dsp.api import routes, setup_api
from dsp.app import create_app
from infra.embedded_redis import free_port
from infra.settings import Settings
from tests.dsp.api.conftest import campaign_body
from tests.dsp.factories import banner_creative

T = TypeVar("T")
DOCUMENTED = [
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 10, GenerationMode.NEGATIVE: 6}
# A schema-valid request may still be refused for what no schema can say, and the document
# says so: 412/428 (the ETag it carries is not the current one, or none), 422 (an unknown
# tag or time zone, a creative id that is not the caller's, start after end).
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "412", "422", "428"]
            }
        }
    }
)


class ServerThread:
    """The app served from its own event loop in a thread, for schemathesis' blocking client."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    async def _start(self) -> None:
        redis = Redis.from_url(self.redis_url)
        await redis.flushdb()
        await redis.aclose()
        app = create_app(Settings(redis_url=self.redis_url, port=self.port, signing_key=b"k"))
        setup_api(app)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def token(self) -> str:
        redis = Redis.from_url(self.redis_url)
        try:
            _, token, _ = await create_advertiser(redis, "Contract Co", "Europe/Berlin")
            return token
        finally:
            await redis.aclose()

    def __enter__(self) -> ServerThread:
        self.thread.start()
        self.run(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.runner is not None:
            self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@dataclass(frozen=True, slots=True)
class Live:
    url: str
    headers: dict[str, str]
    ids: dict[str, str]  # plural -> an object of the caller's, so items are found too


def _post(live_url: str, headers: dict[str, str], path: str, body: object) -> dict[str, Any]:
    response = requests.post(f"{live_url}/api/v1{path}", data=orjson.dumps(body), headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture
def live(redis_url: str) -> Iterator[Live]:
    with ServerThread(redis_url) as server:
        headers = {"Authorization": f"Bearer {server.run(server.token())}"}
        creative = {k: v for k, v in banner_creative().items() if k != "id"}
        cr = _post(server.url, headers, "/creatives", creative)
        aud = _post(server.url, headers, "/audiences", {"name": "a", "dmp_audience_id": "d1"})
        cmp = _post(server.url, headers, "/campaigns", campaign_body([cr["id"]]))
        advertiser = requests.get(f"{server.url}/api/v1/advertisers", headers=headers).json()
        ids = {
            "creatives": cr["id"],
            "audiences": aud["id"],
            "campaigns": cmp["id"],
            "advertisers": advertiser["items"][0]["id"],
        }
        yield Live(server.url, headers, ids)


def test_the_document_is_served_without_a_token_and_lists_every_route(live: Live) -> None:
    response = requests.get(f"{live.url}/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    documented = {
        (method.upper(), path.removeprefix("/api/v1"))
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert documented == {(method, path) for method, path, _ in routes()}


def test_every_other_endpoint_needs_a_token(live: Live) -> None:
    for method, path, _ in routes():
        if path == "/openapi.json":
            continue
        url = f"{live.url}/api/v1{path.replace('{id}', live.ids.get(path.split('/')[1], 'x'))}"
        for headers in ({}, {"Authorization": "Bearer dsp_not-a-token"}):
            response = requests.request(method, url, headers=headers, data=b"{}")
            assert response.status_code == 401, (method, path)
            assert response.headers["WWW-Authenticate"] == "Bearer"


def _operations(live: Live) -> list[Any]:
    document = requests.get(f"{live.url}/api/v1/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document, config=CONFIG)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    return operations


def _path_parameters(live: Live, operation: Any) -> dict[str, str] | None:
    plural = operation.path.split("/")[3]
    return {"id": live.ids[plural]} if "{id}" in operation.path else None


@pytest.mark.parametrize("mode", list(EXAMPLES), ids=[mode.value for mode in EXAMPLES])
def test_the_implementation_matches_the_document(live: Live, mode: GenerationMode) -> None:
    """Every operation, with generated ids (404s) and with ids of the caller's own objects."""
    for operation in _operations(live):
        for ids in (None, _path_parameters(live, operation)):
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=ids)

            @settings(
                max_examples=EXAMPLES[mode],
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def check(case: Any) -> None:
                case.call_and_validate(base_url=live.url, headers=live.headers)

            try:
                check()
            except Unsatisfiable:
                # Nothing of this request can break its schema (no body, no parameter left).
                assert mode is GenerationMode.NEGATIVE, operation.label


_META = ("id", "etag", "version", "created_at", "updated_at")


def test_stateful_answers_are_documented_too(live: Live) -> None:
    """428, 412 and 409 come from the state of an object, which generated requests rarely hit."""
    operations = {(op.method.upper(), op.path): op for op in _operations(live)}
    for plural, object_id in live.ids.items():
        url = f"{live.url}/api/v1/{plural}/{object_id}"
        current = requests.get(url, headers=live.headers).json()
        keep_status = plural == "campaigns"
        body = {
            k: v for k, v in current.items() if k not in _META and (keep_status or k != "status")
        }
        for method in ("PUT", "PATCH"):
            operation = operations[(method, f"/api/v1/{plural}/{{id}}")]
            data = orjson.dumps(body)
            for if_match, status in ((None, 428), ('"stale"', 412)):
                headers = {**live.headers, **({"If-Match": if_match} if if_match else {})}
                response = requests.request(method, url, data=data, headers=headers)
                assert response.status_code == status, response.text
                case = operation.Case(
                    path_parameters={"id": object_id}, headers=headers, body=body,
                    media_type="application/json",
                )  # fmt: skip
                case.validate_response(response, checks=DOCUMENTED)
    archive = operations[("POST", "/api/v1/creatives/{id}/archive")]
    in_use = requests.post(f"{live.url}/api/v1/creatives/{live.ids['creatives']}/archive",
                           headers=live.headers)  # fmt: skip
    assert in_use.status_code == 409
    case = archive.Case(path_parameters={"id": live.ids["creatives"]}, headers=live.headers)
    case.validate_response(in_use, checks=DOCUMENTED)


def test_every_documented_operation_has_its_query_parameters_known() -> None:
    from dsp.api import documented_queries

    allowed = documented_queries()
    assert allowed[("GET", "/api/v1/campaigns")] >= {"limit", "cursor", "include_archived"}
    assert allowed[("GET", "/api/v1/reports")] >= {"by", "format", "campaign_id"}
