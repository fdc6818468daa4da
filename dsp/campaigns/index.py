"""The bidder's compiled view of active campaigns, rebuilt when campaigns change.

Every (campaign, creative) pair is a *line* with one bit. Lines are numbered by descending
price, so the lowest set bit of a candidate set is the best-paying line. Each targeting
dimension maps its values to a bitset of the lines that accept them, and a request's
candidates are a few dict lookups and ANDs of Python ints: the per-request cost does not
grow with campaigns that cannot match. Only survivors have their tag expression evaluated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from dmp.errors import DmpError
from dmp.tag_expression import compile_expression, parse
from dmp.taxonomy import Taxonomy
from dsp.campaigns.model import Campaign, Creative, CreativeFormat

log = logging.getLogger(__name__)

TagPredicate = Callable[[Mapping[int, int]], bool]


@dataclass(frozen=True, slots=True)
class Line:
    """One creative of one campaign that the bidder can bid with."""

    bit: int
    campaign: Campaign
    creative: Creative
    price_micros: int
    tags: TagPredicate | None  # None: the campaign does not target tags


@dataclass(slots=True)
class _Dimension:
    """Lines by accepted value, plus the lines that accept any value."""

    by_value: dict[str, int] = field(default_factory=dict)
    any_value: int = 0

    def add(self, values: Iterable[str], bit: int) -> None:
        flag = 1 << bit
        values = list(values)
        if not values:
            self.any_value |= flag
        for value in values:
            self.by_value[value] = self.by_value.get(value, 0) | flag

    def accepting(self, value: str) -> int:
        return self.any_value | self.by_value.get(value, 0)


class CampaignIndex:
    """Built once per campaign change; read by every request."""

    def __init__(self, lines: list[Line]) -> None:
        self.lines = lines
        self.all_lines = (1 << len(lines)) - 1
        self._sizes: dict[tuple[int, int], int] = {}
        self._native = 0
        self._video = 0
        self._country = _Dimension()
        self._region = _Dimension()
        self._os = _Dimension()
        self.untargeted = 0  # lines eligible for a device the DMP knows nothing of
        self.campaign_lines: dict[str, int] = {}
        self.creatives: dict[tuple[str, str], Creative] = {}
        for line in lines:
            self._add(line)

    def _add(self, line: Line) -> None:
        flag = 1 << line.bit
        creative, targeting = line.creative, line.campaign.targeting
        if creative.format is CreativeFormat.BANNER:
            size = (creative.w, creative.h)
            self._sizes[size] = self._sizes.get(size, 0) | flag
        elif creative.format is CreativeFormat.NATIVE:
            self._native |= flag
        else:
            self._video |= flag
        self._country.add(targeting.countries, line.bit)
        self._region.add(targeting.regions, line.bit)
        self._os.add(targeting.os, line.bit)
        if line.tags is None:
            self.untargeted |= flag
        campaign_id = line.campaign.id
        self.campaign_lines[campaign_id] = self.campaign_lines.get(campaign_id, 0) | flag
        self.creatives[(campaign_id, creative.id)] = creative

    @classmethod
    def build(cls, campaigns: Sequence[Campaign], taxonomy: Taxonomy) -> CampaignIndex:
        """Compile active campaigns; one whose tag expression fails to compile is skipped."""
        candidates: list[tuple[Campaign, Creative, TagPredicate | None]] = []
        for campaign in campaigns:
            if not campaign.active:
                continue
            try:
                predicate = _compile_tags(campaign, taxonomy)
            except DmpError as error:
                log.error("campaign skipped", extra={"campaign": campaign.id, "error": str(error)})
                continue
            candidates += [(campaign, creative, predicate) for creative in campaign.creatives]
        candidates.sort(key=lambda c: (-c[0].cpm_micros, c[0].id, c[1].id))
        lines = [
            Line(bit, campaign, creative, campaign.cpm_micros, predicate)
            for bit, (campaign, creative, predicate) in enumerate(candidates)
        ]
        index = cls(lines)
        # Clicks on ads of paused campaigns still land: keep every creative reachable.
        for campaign in campaigns:
            for creative in campaign.creatives:
                index.creatives.setdefault((campaign.id, creative.id), creative)
        return index

    def format_lines(self, sizes: Iterable[tuple[int, int]], native: bool, video: bool) -> int:
        found = self._native if native else 0
        if video:
            found |= self._video
        for size in sizes:
            found |= self._sizes.get(size, 0)
        return found

    def audience_lines(self, country: str, region: str, os: str) -> int:
        return (
            self._country.accepting(country)
            & self._region.accepting(region)
            & self._os.accepting(os)
        )

    def lines_of(self, campaign_ids: Iterable[str]) -> int:
        mask = 0
        for campaign_id in campaign_ids:
            mask |= self.campaign_lines.get(campaign_id, 0)
        return mask


def _compile_tags(campaign: Campaign, taxonomy: Taxonomy) -> TagPredicate | None:
    text = campaign.targeting.tags
    return None if text is None else compile_expression(parse(text), taxonomy)
