"""``dmp serve``: the DMP HTTP API. Thin handlers over the DMP's modules, bearer-token auth.

Scopes: ``devices`` reads, writes and erases device profiles and posts behaviour events;
``audiences`` works with its owner's audiences. Bad input gets 422 naming the field.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from aiohttp import web

from dmp.app_keys import AUDIENCES, REDIS, SETTINGS, TAXONOMY
from dmp.audience_api import add_routes
from dmp.audience_build import IndexCache
from dmp.audiences import Audiences
from dmp.auth import TOKEN, auth_middleware, require
from dmp.erasure import erase_device
from dmp.errors import AudienceNotFound, DmpError, IngestError, InvalidDeviceId, UnknownTag
from dmp.ids import parse_device_id
from dmp.ingest import ingest_records
from dmp.ingest_format import TagTable, parse_record
from dmp.profile import day_number, decode_entries
from dmp.profile_store import ProfileStore
from dmp.scene_codec import decode_scenes
from dmp.scenes import SceneConsumer, SceneLibrary, SceneWriter, publish, publish_many
from dmp.taxonomy import Taxonomy
from infra.redis_client import redis_client
from infra.settings import Settings

log = logging.getLogger(__name__)

_EPOCH = dt.date(2020, 1, 1)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str, **fields: object) -> web.Response:
    return json_response({"error": message, **fields}, status)


def _field_of(error: DmpError) -> str:
    if isinstance(error, InvalidDeviceId):
        return "id"
    if isinstance(error, UnknownTag):
        return "tags"
    return str(getattr(error, "field", "$"))


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Typed DMP errors become 422 answers naming the field; a bad body is a 400."""
    try:
        return await handler(request)
    except orjson.JSONDecodeError as error:
        return _error(400, f"malformed JSON: {error}", field="$")
    except AudienceNotFound as error:
        return _error(404, str(error), field="id")
    except DmpError as error:
        return _error(422, str(error), field=_field_of(error), reason=getattr(error, "reason", ""))


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    url = app[SETTINGS].redis_url
    if not url:
        raise RuntimeError("the DMP API needs settings.redis_url")
    app[REDIS] = redis_client(url, socket_connect_timeout=2)
    yield
    await app[REDIS].aclose()


async def _scenes_ctx(app: web.Application) -> AsyncIterator[None]:
    """Behaviour events queued on the stream become scene tags while the API runs."""
    writer = SceneWriter(app[REDIS], SceneLibrary.default(), app[TAXONOMY])
    await writer.warm_up()
    async with SceneConsumer(app[REDIS], writer).running():
        yield


async def post_events(request: web.Request) -> web.Response:
    """One behaviour event, or ``{"events": [...]}``, queued for the scene writer."""
    require(request, "devices")
    body = orjson.loads(await request.read())
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        ids = await publish_many(request.app[REDIS], body["events"])
    else:
        ids = [await publish(request.app[REDIS], body)]
    return json_response({"queued": len(ids)}, status=202)


async def _audiences_ctx(app: web.Application) -> AsyncIterator[None]:
    # One index per process, served stale while a rebuild runs: a console's live estimate
    # must not stall behind a rebuild after every ingest.
    indexes = IndexCache(app[REDIS], app[TAXONOMY], serve_stale=True)
    app[AUDIENCES] = Audiences(app[REDIS], app[TAXONOMY], indexes=indexes)
    yield
    await indexes.close()


def _day_text(day: int) -> str:
    return (_EPOCH + dt.timedelta(days=day)).isoformat()


async def get_device(request: web.Request) -> web.Response:
    require(request, "devices")
    device = parse_device_id(request.match_info["id_type"], request.match_info["id"])
    found = await ProfileStore(request.app[REDIS]).lookup(device.digests())
    if found is None:
        raise web.HTTPNotFound(text="no such device")
    taxonomy, today = request.app[TAXONOMY], day_number(time.time())
    body: dict[str, object] = {"id_type": device.type.value, "id": device.value}
    if found.profile:
        snapshot, entries = decode_entries(found.profile)
        body.update(
            os=snapshot.os, model=snapshot.model, price_tier=snapshot.price_tier,
            country=snapshot.country, region=snapshot.region, city=snapshot.city,
            tags=[
                {"tag": taxonomy.tag(e.tag_id).code, "score": e.score,
                 "expires": _day_text(e.expires_day)}
                for e in entries if e.expires_day >= today
            ],
        )  # fmt: skip
    if found.scenes:
        now_minute = int(time.time() // 60)
        body["scenes"] = [
            {"tag": taxonomy.tag(tag).code, "score": score, "expires_unix": expiry * 60}
            for tag, (score, expiry) in decode_scenes(found.scenes).items()
            if expiry > now_minute
        ]
    return json_response(body)


async def put_device(request: web.Request) -> web.Response:
    """Merge (default) or replace (``?mode=replace``) one device, same shape as an ingest line."""
    require(request, "devices")
    record = orjson.loads(await request.read())
    mode = request.query.get("mode", "merge")
    if mode not in ("merge", "replace"):
        raise IngestError("mode", "expected merge or replace")
    taxonomy = request.app[TAXONOMY]
    parse_record(record, TagTable(taxonomy, day_number(time.time())))  # 422 before any write
    await ingest_records(request.app[REDIS], [record], taxonomy=taxonomy, mode=mode)
    return json_response({"stored": True, "mode": mode})


async def delete_device(request: web.Request) -> web.Response:
    """Erasure on request: the profile, every alias and the scene tags of the device."""
    require(request, "devices")
    device = parse_device_id(request.match_info["id_type"], request.match_info["id"])
    erased = await erase_device(request.app[REDIS], device)
    if not erased.found:
        raise web.HTTPNotFound(text="no such device")
    log.info(
        "device erased", extra={"owner": request[TOKEN].owner, "fields": erased.fields_removed}
    )
    return json_response(
        {
            "erased": True,
            "fields_removed": erased.fields_removed,
            "audiences_left": erased.audiences_left,
        }
    )


async def list_taxonomy(request: web.Request) -> web.Response:
    query = request.query.get("q", "")
    tags = request.app[TAXONOMY].search(query) if query else request.app[TAXONOMY].tags
    return json_response(
        [
            {"id": t.id, "code": t.code, "name": t.name, "scored": t.scored, "ttl_days": t.ttl_days}
            for t in tags
        ]
    )


async def healthz(request: web.Request) -> web.Response:
    await request.app[REDIS].ping()
    return json_response({"status": "ok"})


def create_app(settings: Settings, taxonomy: Taxonomy | None = None) -> web.Application:
    app = web.Application(
        middlewares=[errors_middleware, auth_middleware("dmp", REDIS)],
        client_max_size=64 * 1024 * 1024,
    )
    app[SETTINGS] = settings
    app[TAXONOMY] = taxonomy or Taxonomy.default()
    app.cleanup_ctx.extend([_redis_ctx, _audiences_ctx, _scenes_ctx])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/taxonomy", list_taxonomy)
    app.router.add_get("/api/v1/devices/{id_type}/{id}", get_device)
    app.router.add_put("/api/v1/devices", put_device)
    app.router.add_delete("/api/v1/devices/{id_type}/{id}", delete_device)
    app.router.add_post("/api/v1/events", post_events)
    add_routes(app)
    return app
