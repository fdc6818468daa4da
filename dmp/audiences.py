"""Audiences: the service the DMP HTTP API wraps, one owner (advertiser) at a time.

An audience is a tag expression, an uploaded ID list, a set operation over other audiences
(union, intersection, difference) or one part of a split. Expression, combination and split
audiences are live: their members are worked out against the current ``AudienceIndex``
whenever asked, so they follow the DMP as profiles come, change and expire. An ID-list
audience is the devices its IDs matched when uploaded (still present in the DMP).

An owner sees only its own audiences: another owner's id reads as missing
(``AudienceNotFound``). Bad input raises ``AudienceError`` naming the field.

Known limit: the DMP keeps no raw IDs for tag-matched devices, so an export gives the IDs an
upload gave where the audience descends from ID lists, and ``key,<16 hex digits>`` (the
device's 8-byte lookup digest) for every other device. Both forms can be uploaded again.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from redis.asyncio import Redis

from dmp.audience_build import IndexCache
from dmp.audience_ids import KEY_TYPE, IdMatch, match_ids
from dmp.audience_index import AudienceIndex, Mask
from dmp.audience_store import (
    OPERATIONS,
    Audience,
    AudienceStore,
    SplitSpec,
    check_name,
    check_owner,
)
from dmp.errors import AudienceError, DmpError
from dmp.reverse_analysis import Analysis, analyse_mask
from dmp.tag_expression import Expr, parse, referenced_tags, to_text
from dmp.taxonomy import Taxonomy

MAX_SPLIT_PARTS = 100
MAX_SOURCES = 100


class Audiences:
    """Create, size, combine, split, export and analyse one owner's audiences."""

    def __init__(
        self,
        redis: Redis,
        taxonomy: Taxonomy,
        *,
        indexes: IndexCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._taxonomy = taxonomy
        self._store = AudienceStore(redis)
        self._indexes = indexes or IndexCache(redis, taxonomy, clock=clock)
        self._clock = clock

    async def index(self) -> AudienceIndex:
        """The current index of the population (built on first use, rebuilt on change)."""
        return await self._indexes.get()

    # --- creating -------------------------------------------------------------------------

    async def create_from_expression(self, owner: str, name: str, expression: str) -> Audience:
        """An audience of the devices a tag expression matches."""
        expr = self._parse(expression)
        index = await self.index()
        size = index.size(index.evaluate(expr, self._taxonomy))
        audience = replace(self._new(owner, name, "expression", size), expression=to_text(expr))
        await self._store.save(audience)
        return audience

    async def create_from_ids(
        self, owner: str, name: str, lines: Iterable[str], id_type: str | None = None
    ) -> Audience:
        """An audience of the devices an uploaded ID list matches.

        ``lines`` are ``type,value`` or, with ``id_type``, bare values; any form (raw, MD5,
        SHA1, any case). ``Audience.match`` reports matched, unmatched and invalid lines.
        """
        check_owner(owner)
        name = check_name(name)
        matched = await match_ids(self._redis, lines, id_type)
        if not matched.report.lines:
            raise AudienceError("ids", "no IDs given")
        audience = replace(
            self._new(owner, name, "ids", matched.report.devices), match=matched.report
        )
        await self._store.save_id_list(audience, matched)
        return audience

    async def combine(self, owner: str, name: str, op: str, ids: Sequence[str]) -> Audience:
        """``union``, ``intersection`` or ``difference`` (the first minus the others)."""
        if op not in OPERATIONS:
            raise AudienceError("operation", f"expected one of {', '.join(OPERATIONS)}")
        if isinstance(ids, str) or not 2 <= len(ids) <= MAX_SOURCES:
            raise AudienceError("ids", f"expected 2..{MAX_SOURCES} audience ids")
        check_name(name)
        sources = [await self._store.get(owner, audience_id) for audience_id in ids]
        index = await self.index()
        masks = [await self._members(source, index) for source in sources]
        size = index.size(_combine(op, masks, index))
        audience = replace(
            self._new(owner, name, "combination", size), operation=op, sources=tuple(ids)
        )
        await self._store.save(audience)
        return audience

    async def split(
        self,
        owner: str,
        audience_id: str,
        ratios: Sequence[float],
        names: Sequence[str] | None = None,
        seed: int = 0,
    ) -> list[Audience]:
        """Split an audience into disjoint parts in ``ratios`` (``[70, 30]`` or ``[0.7, 0.3]``).

        Deterministic by device: splitting again (same ratios and seed) gives the same parts.
        """
        weights = _check_ratios(ratios)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise AudienceError("seed", "must be an integer")
        source = await self._store.get(owner, audience_id)
        names = _split_names(source.name, weights, names)
        index = await self.index()
        masks = index.split(await self._members(source, index), weights, seed)
        created = [
            replace(
                self._new(owner, part_name, "split", index.size(mask)),
                sources=(source.id,),
                split=SplitSpec(weights, part, seed),
            )
            for part, (part_name, mask) in enumerate(zip(names, masks, strict=True))
        ]
        for audience in created:
            await self._store.save(audience)
        return created

    def _new(self, owner: str, name: str, kind: str, size: int) -> Audience:
        return Audience(
            id=secrets.token_hex(8),
            owner=check_owner(owner),
            name=check_name(name),
            kind=kind,
            created=round(self._clock(), 3),
            size=size,
        )

    def _parse(self, expression: str) -> Expr:
        if not isinstance(expression, str):
            raise AudienceError("expression", "must be text")
        try:
            expr = parse(expression)
            referenced_tags(expr, self._taxonomy)
        except DmpError as error:
            raise AudienceError("expression", str(error)) from error
        return expr

    # --- reading --------------------------------------------------------------------------

    async def get(self, owner: str, audience_id: str) -> Audience:
        return await self._store.get(owner, audience_id)

    async def delete(self, owner: str, audience_id: str) -> None:
        """Delete an audience; refused while a combination or split is built on it."""
        audience = await self._store.get(owner, audience_id)
        users = [a.id for a in await self._store.list(owner) if audience.id in a.sources]
        if users:
            raise AudienceError("id", f"audience {audience_id} is used by {', '.join(users)}")
        await self._store.delete(audience)

    async def size(self, owner: str, audience_id: str) -> int:
        """The audience's exact size now."""
        audience = await self._store.get(owner, audience_id)
        index = await self.index()
        return index.size(await self._members(audience, index))

    async def estimate(self, expression: str) -> int:
        """The exact size now of an expression: the advertiser console's live estimate."""
        expr = self._parse(expression)
        index = await self.index()
        return index.size(index.evaluate(expr, self._taxonomy))

    async def members(self, owner: str, audience_id: str) -> tuple[AudienceIndex, Mask]:
        """The audience's devices now, as a mask over the index returned with it."""
        audience = await self._store.get(owner, audience_id)
        index = await self.index()
        return index, await self._members(audience, index)

    async def _members(self, audience: Audience, index: AudienceIndex) -> Mask:
        if audience.kind == "expression" and audience.expression is not None:
            return index.evaluate(parse(audience.expression), self._taxonomy)
        if audience.kind == "ids":
            return index.mask_of(await self._store.digests(audience))
        sources = [await self._store.get(audience.owner, s) for s in audience.sources]
        masks = [await self._members(source, index) for source in sources]
        if audience.kind == "combination" and audience.operation is not None:
            return _combine(audience.operation, masks, index)
        if audience.kind == "split" and audience.split is not None:
            spec = audience.split
            return index.split(masks[0], spec.ratios, spec.seed)[spec.part]
        raise AudienceError("kind", f"unreadable audience definition {audience.id}")

    # --- export and analysis --------------------------------------------------------------

    async def export(self, owner: str, audience_id: str, out: Path) -> int:
        """Write the audience's devices to ``out``, one ``type,value`` ID a line; returns lines.

        IDs given by the ID lists an audience descends from come back as given (canonical
        text); any other device as ``key,<hex of its 8-byte lookup digest>``, since the DMP
        keeps no raw IDs of devices it only knows by tags.
        """
        audience = await self._store.get(owner, audience_id)
        index = await self.index()
        digests = index.digests_of(index.rows(await self._members(audience, index)))
        given = await self._given_ids(audience)
        written = 0
        with out.open("w", encoding="utf-8") as file:
            for digest in digests:
                texts = given.get(digest) or [f"{KEY_TYPE},{digest.hex()}"]
                file.writelines(f"{text}\n" for text in texts)
                written += len(texts)
        return written

    async def _given_ids(self, audience: Audience) -> dict[bytes, list[str]]:
        if audience.kind == "ids":
            return await self._store.given_ids(audience)
        given: dict[bytes, list[str]] = {}
        for source_id in audience.sources:
            source = await self._store.get(audience.owner, source_id)
            for digest, texts in (await self._given_ids(source)).items():
                known = given.setdefault(digest, [])
                known += [text for text in texts if text not in known]
        return given

    async def analyse(self, owner: str, audience_id: str) -> Analysis:
        """Reverse analysis of an audience's devices against the whole population."""
        index, mask = await self.members(owner, audience_id)
        return analyse_mask(index, mask, given=index.size(mask))

    async def analyse_ids(
        self, lines: Iterable[str], id_type: str | None = None
    ) -> tuple[IdMatch, Analysis]:
        """Reverse analysis of an uploaded ID list, with its matching report."""
        matched = await match_ids(self._redis, lines, id_type)
        index = await self.index()
        mask = index.mask_of(matched.packed())
        return matched.report, analyse_mask(index, mask, given=matched.report.lines)

    async def list(self, owner: str) -> list[Audience]:
        """The owner's audiences, oldest first."""
        return await self._store.list(owner)


def _combine(op: str, masks: Sequence[Mask], index: AudienceIndex) -> Mask:
    out = masks[0].copy()
    for mask in masks[1:]:
        if op == "union":
            np.bitwise_or(out, mask, out=out)
        elif op == "intersection":
            np.bitwise_and(out, mask, out=out)
        else:
            np.bitwise_and(out, np.bitwise_xor(mask, index.everyone()), out=out)
    return out


def _check_ratios(ratios: Sequence[float]) -> tuple[float, ...]:
    if isinstance(ratios, str) or not 2 <= len(ratios) <= MAX_SPLIT_PARTS:
        raise AudienceError("ratios", f"expected 2..{MAX_SPLIT_PARTS} ratios")
    try:
        weights = tuple(float(r) for r in ratios)
    except (TypeError, ValueError):
        raise AudienceError("ratios", "every ratio must be a number") from None
    if not all(math.isfinite(w) and w > 0 for w in weights):
        raise AudienceError("ratios", "every ratio must be a positive number")
    total = sum(weights)
    return tuple(w / total for w in weights)


def _split_names(source: str, weights: Sequence[float], names: Sequence[str] | None) -> list[str]:
    if names is None:
        return [
            f"{source[:150]} ({part + 1}/{len(weights)}, {weight:.0%})"
            for part, weight in enumerate(weights)
        ]
    if isinstance(names, str) or len(names) != len(weights):
        raise AudienceError("names", f"expected {len(weights)} names, one per ratio")
    return [check_name(name) for name in names]
