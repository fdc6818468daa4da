"""The bidder's compiled view of active campaigns, rebuilt when campaigns change.

Every (campaign, creative) pair is a *line* with one bit. Lines are numbered by descending
highest price (a fixed CPM, or a target-CPC line's cap), so the lowest set bit of a
candidate set is the best-paying line, or bounds what the lines after it can pay. Each targeting
dimension maps its values to a bitset of the lines that accept them, and a request's
candidates are a few dict lookups and ANDs of Python ints: the per-request cost does not
grow with campaigns that cannot match. Only survivors get the per-line checks (tag
expression, OS version, radius, frequency cap).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from dmp.errors import DmpError
from dmp.tag_expression import compile_expression, parse
from dmp.taxonomy import Taxonomy
from dsp.bidder.openrtb import BidRequest, Imp
from dsp.campaigns.dimensions import Allow, Block, Circles
from dsp.campaigns.model import BidStrategy, Campaign, Creative, CreativeFormat, FrequencyCap
from dsp.conversions.cvr import target_cpa_bid_micros

log = logging.getLogger(__name__)

TagPredicate = Callable[[Mapping[int, int]], bool]
# Until a CTR model is trained (and for campaigns it knows nothing of), target-CPC bids
# assume this click-through rate.
PRIOR_CTR: Final = 0.005
# Member audiences are matched as pseudo tags numbered from here, far above taxonomy ids:
# the bidder adds them to a device's tags from the memberships its lookup returned.
MEMBER_TAG_BASE: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class Line:
    """One creative of one campaign that the bidder can bid with."""

    bit: int
    campaign: Campaign
    creative: Creative
    price_micros: int
    tags: TagPredicate | None  # None: the campaign does not target tags
    os_min_version: Mapping[str, tuple[int, ...]]
    cap: FrequencyCap | None


def bid_price_micros(
    campaign: Campaign, predicted_ctr: float = PRIOR_CTR, predicted_cvr: float | None = None
) -> int:
    """CPM in USD micros: fixed, target CPC x pCTR x 1000, or target CPA x pCTR x pCVR x
    1000, capped at the campaign's max CPM.

    issue 12: a target-CPA line has no prior conversion rate: without a pCVR
    (``predicted_cvr`` None: no pCVR model loaded) its price is 0, and a 0 price is no bid.
    """
    strategy = campaign.strategy
    if strategy is BidStrategy.FIXED_CPM:
        return campaign.cpm_micros
    if strategy is BidStrategy.TARGET_CPA:
        if predicted_cvr is None:
            return 0
        return target_cpa_bid_micros(
            campaign.target_cpa_micros, predicted_ctr, predicted_cvr, campaign.cpm_micros
        )
    return min(campaign.cpm_micros, int(campaign.target_cpc_micros * predicted_ctr * 1000))


class ClickPredictor(Protocol):
    """issue 8: what the bid decision asks of a CTR model (``dsp.ctr.predictor``)."""

    def predict(
        self, line: Line, tags: Mapping[int, int], request: BidRequest, imp: Imp
    ) -> float | None: ...

    def maybe_reload(self) -> bool: ...


# The decision looks first among this many best-paying lines: most requests are decided
# there, with bitsets of 128 bytes, whatever the number of campaigns (a bitset over 24,000
# lines is 3 KB, and every AND or OR copies it).
WINDOW_LINES: Final = 1024
WINDOW: Final = (1 << WINDOW_LINES) - 1  # those lines' bits


class CampaignIndex:
    """Built once per campaign change; read by every request."""

    def __init__(self, lines: list[Line]) -> None:
        self.lines = lines
        self._sizes: dict[tuple[int, int], int] = {}
        self._native = self._video = 0
        self._country, self._region, self._city = Allow(), Allow(), Allow()
        self._os, self._device_type, self._connection_type = Allow(), Allow(), Allow()
        self._category, self._domain, self._bundle = Allow(), Allow(), Allow()
        self._domain_block, self._bundle_block = Block(), Block()
        self.circles = Circles()
        self.untargeted = 0  # lines eligible for a device the DMP knows nothing of
        self.checked = 0  # lines needing a per-line check after the bitset filter
        self.campaign_lines: dict[str, int] = {}
        self.creatives: dict[tuple[str, str], Creative] = {}
        self.member_tags: dict[str, int] = {}  # member audience id -> its pseudo tag
        # issue 8: target-CPC lines price each bid with it; None: they bid at PRIOR_CTR.
        self.ctr: ClickPredictor | None = None
        # issue 12: target-CPA lines' pCVR (a ``dsp.ctr.predictor`` over a pCVR model file);
        # None: they do not bid.
        self.cvr: ClickPredictor | None = None
        for line in lines:
            self._add(line)
        for allow in (
            self._country, self._region, self._city, self._os, self._device_type,
            self._connection_type, self._category, self._domain, self._bundle,
        ):  # fmt: skip
            allow.seal()
        self.circles.seal()
        self.beyond_window = len(lines) > WINDOW_LINES

    def _add_format(self, creative: Creative, flag: int) -> None:
        if creative.format is CreativeFormat.BANNER:
            size = (creative.w, creative.h)
            self._sizes[size] = self._sizes.get(size, 0) | flag
        elif creative.format is CreativeFormat.NATIVE:
            self._native |= flag
        else:
            self._video |= flag

    def _add(self, line: Line) -> None:
        bit, flag, targeting = line.bit, 1 << line.bit, line.campaign.targeting
        self._add_format(line.creative, flag)
        self._country.add(targeting.countries, bit)
        self._region.add(targeting.regions, bit)
        self._city.add(targeting.cities, bit)
        self._os.add(targeting.os, bit)
        self._device_type.add(map(str, targeting.device_types), bit)
        self._connection_type.add(map(str, targeting.connection_types), bit)
        self._category.add(targeting.categories, bit)
        self._domain.add(targeting.domains_allow, bit)
        self._bundle.add(targeting.bundles_allow, bit)
        self._domain_block.add(targeting.domains_block, bit)
        self._bundle_block.add(targeting.bundles_block, bit)
        self.circles.add(targeting.radius, bit)
        if line.tags is None:
            self.untargeted |= flag
        if line.tags is not None or line.os_min_version or line.cap or targeting.radius:
            self.checked |= flag
        campaign_id = line.campaign.id
        self.campaign_lines[campaign_id] = self.campaign_lines.get(campaign_id, 0) | flag
        self.creatives[(campaign_id, line.creative.id)] = line.creative

    @classmethod
    def build(
        cls,
        campaigns: Sequence[Campaign],
        taxonomy: Taxonomy,
        audiences: Mapping[str, str | None] | None = None,
    ) -> CampaignIndex:
        """Compile active campaigns; one whose targeting cannot compile is skipped, logged.

        ``audiences`` are the DMP's targetable audiences: id -> expression, or None for an
        audience targeted by its members.
        """
        targetable = audiences or {}
        member_tags = {
            audience_id: MEMBER_TAG_BASE + n
            for n, audience_id in enumerate(sorted(a for a, e in targetable.items() if e is None))
        }
        compiled: list[tuple[Campaign, Creative, TagPredicate | None]] = []
        for campaign in campaigns:
            if not campaign.active:
                continue
            try:
                predicate = _compile_tags(campaign, taxonomy, targetable, member_tags)
            except DmpError as error:
                log.error("campaign skipped", extra={"campaign": campaign.id, "error": str(error)})
                continue
            compiled += [(campaign, creative, predicate) for creative in campaign.creatives]
        # By the most a line can bid (a fixed CPM, or a target-CPC line's cap): the decision
        # stops at the first line that cannot beat the best found.
        compiled.sort(key=lambda c: (-c[0].cpm_micros, c[0].id, c[1].id))
        lines = [
            Line(
                bit, campaign, creative, bid_price_micros(campaign), predicate,
                dict(campaign.targeting.os_min_version), campaign.targeting.frequency_cap,
            )
            for bit, (campaign, creative, predicate) in enumerate(compiled)
        ]  # fmt: skip
        index = cls(lines)
        index.member_tags = member_tags
        # Clicks on ads of paused campaigns still land: keep every creative reachable.
        for campaign in campaigns:
            for creative in campaign.creatives:
                index.creatives.setdefault((campaign.id, creative.id), creative)
        return index

    def format_lines(
        self, sizes: Iterable[tuple[int, int]], native: bool, video: bool, within: int
    ) -> int:
        """Lines of ``within`` with a creative the imp can show."""
        found = within & self._native if native else 0
        if video:
            found |= within & self._video
        for size in sizes:
            lines = self._sizes.get(size)
            if lines is not None:
                found |= within & lines
        return found

    def request_lines(
        self, request: BidRequest, country: str, region: str, os: str, within: int = -1
    ) -> int:
        """Lines of ``within`` (-1: all) whose bitset dimensions all accept the request (geo
        may come from the DMP). A narrow ``within`` first keeps every AND that narrow."""
        accepted = (
            within
            & self._country.accepting(country)
            & self._region.accepting(region)
            & self._os.accepting(os)
            & self._city.accepting(request.city)
            & self._device_type.accepting(str(request.device_type or ""))
            & self._connection_type.accepting(str(request.connection_type or ""))
            & self._category.accepting_any(request.categories)
            & self._domain.accepting(request.domain)
            & self._bundle.accepting(request.bundle)
            & self.circles.near(request.point)
        )
        refused = self._domain_block.refusing(request.domain) | self._bundle_block.refusing(
            request.bundle
        )
        # Most requests name no blocked domain or bundle: no 3 KB inversion then.
        return accepted & ~refused if refused else accepted

    def lines_of(self, campaign_ids: Iterable[str]) -> int:
        mask = 0
        for campaign_id in campaign_ids:
            mask |= self.campaign_lines.get(campaign_id, 0)
        return mask


def _compile_tags(
    campaign: Campaign,
    taxonomy: Taxonomy,
    audiences: Mapping[str, str | None],
    member_tags: Mapping[str, int],
) -> TagPredicate | None:
    """The campaign's tag expression AND (any of its audiences), as one predicate."""
    tags = campaign.targeting.tags
    own = None if tags is None else compile_expression(parse(tags), taxonomy)
    wanted = campaign.targeting.audiences
    if not wanted:
        return own
    expressions = [audiences[a] for a in wanted if audiences.get(a) is not None]
    members = frozenset(member_tags[a] for a in wanted if a in member_tags)
    if not expressions and not members:
        # Audiences the DMP does not (or no longer) publish: no device qualifies, so the
        # campaign does not bid rather than bid outside its audience.
        return _never
    text = " OR ".join(f"({expression})" for expression in expressions)
    in_expression = compile_expression(parse(text), taxonomy) if text else _never

    def in_audience(device_tags: Mapping[int, int]) -> bool:
        return not members.isdisjoint(device_tags.keys()) or in_expression(device_tags)

    if own is None:
        return in_audience
    return lambda device_tags: own(device_tags) and in_audience(device_tags)


def _never(tags: Mapping[int, int]) -> bool:
    return False
