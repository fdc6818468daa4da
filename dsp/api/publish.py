"""From API objects to the stored campaign form every bidder compiles.

The API keeps campaigns, creatives and audiences apart and lets campaigns refer to the
others by id. Bidders read one self-contained payload per campaign from ``dsp:campaigns``
(``dsp.campaigns.validation.campaign_from_dict``): creatives inline, audiences as DMP
audience ids, the advertiser's time zone, and the effective status (an archived campaign or
advertiser stays stored, archived, so clicks on its ads still land). This module builds that
payload and validates it with the campaign model before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from dmp.errors import DmpError
from dmp.tag_expression import compile_expression, parse
from dmp.taxonomy import Taxonomy
from dsp.api.records import ADVERTISER, AUDIENCE, CAMPAIGN, CREATIVE, Kind, Record, Snapshot
from dsp.campaigns.validation import campaign_from_dict, creative_from_dict
from dsp.errors import InvalidCampaign, InvalidPayload

_CREATIVE_FIELDS_NOT_STORED = ("name",)


def _live(snapshot: Snapshot, kind: Kind, ids: list[str], field: str) -> list[Record]:
    """The caller's unarchived objects named by ``ids``; else 422 naming the bad reference."""
    found = []
    for i, object_id in enumerate(ids):
        record = snapshot.find(kind, object_id)
        if record is None or record.archived:
            raise InvalidPayload(f"{field}[{i}]", f"no such {kind.name}: {object_id}")
        found.append(record)
    return found


def stored_creative(creative_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """A creative inline in a stored campaign: its id, without API-only fields (its name)."""
    kept = {k: v for k, v in body.items() if k not in _CREATIVE_FIELDS_NOT_STORED}
    return {"id": creative_id, **kept}


def stored_campaign(snapshot: Snapshot, campaign: Record) -> dict[str, Any]:
    """The bidder's payload of ``campaign`` as of ``snapshot``."""
    body = campaign.body
    targeting = dict(body.get("targeting") or {})
    if targeting.get("audiences"):
        audiences = _live(snapshot, AUDIENCE, targeting["audiences"], "targeting.audiences")
        targeting["audiences"] = [audience.body["dmp_audience_id"] for audience in audiences]
    creatives = _live(snapshot, CREATIVE, list(body["creative_ids"]), "creative_ids")
    archived = campaign.archived or snapshot.advertiser.archived
    stored = {
        "id": campaign.id,
        "advertiser_id": snapshot.advertiser.id,
        "timezone": snapshot.advertiser.body["timezone"],
        **{k: v for k, v in body.items() if k not in ("creative_ids", "targeting")},
        "status": "archived" if archived else body.get("status", "active"),
        "targeting": targeting,
        "creatives": [stored_creative(creative.id, creative.body) for creative in creatives],
    }
    return stored


def _api_field(field: str) -> str:
    """A stored-form field path as the API names it: ``creatives[1].w`` -> ``creative_ids[1]``."""
    if field.startswith("creatives["):
        return "creative_ids" + field[len("creatives") :].split("]")[0] + "]"
    return field


def check_campaign(snapshot: Snapshot, campaign: Record, taxonomy: Taxonomy) -> bytes:
    """Validate ``campaign`` as the bidder will read it; its stored payload as JSON."""
    payload = stored_campaign(snapshot, campaign)
    tags = payload["targeting"].get("tags")
    try:
        campaign_from_dict(payload)
        if tags is not None:
            compile_expression(parse(tags), taxonomy)
    except InvalidCampaign as error:
        raise InvalidPayload(_api_field(error.field), error.reason) from None
    except DmpError as error:
        raise InvalidPayload("targeting.tags", str(error)) from None
    return orjson.dumps(payload)


def check_creative(body: Mapping[str, Any]) -> None:
    """A creative's rules beyond its schema, as the campaign model applies them."""
    try:
        creative_from_dict(stored_creative("new", body))
    except InvalidCampaign as error:
        raise InvalidPayload(error.field, error.reason) from None


def dependants(snapshot: Snapshot, changed: Record) -> list[Record]:
    """Campaigns whose stored payload depends on ``changed``; archived ones are left as they are."""
    if changed.kind == CAMPAIGN.name:
        return [changed]
    campaigns = [c for c in snapshot.of(CAMPAIGN).values() if not c.archived]
    if changed.kind == ADVERTISER.name:
        return campaigns
    if changed.kind == CREATIVE.name:
        return [c for c in campaigns if changed.id in c.body["creative_ids"]]
    return [
        c for c in campaigns if changed.id in (c.body.get("targeting") or {}).get("audiences", [])
    ]
