"""The typed keys of the DMP API's shared resources, made in ``dmp.app``'s cleanup_ctx."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis

from dmp.audiences import Audiences
from dmp.taxonomy import Taxonomy
from infra.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", Redis)
TAXONOMY = web.AppKey("taxonomy", Taxonomy)
AUDIENCES = web.AppKey("audiences", Audiences)
