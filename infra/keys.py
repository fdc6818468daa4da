"""Every Redis key name the platform uses, built here and nowhere else.

Keys that one operation touches together share a hash tag (the part in braces), so the same
code runs on Redis Cluster: a device's profile bucket, a campaign's money, an auction's notices.
"""

from __future__ import annotations

# Profiles are stored in 2**16 small hashes (buckets) rather than one key per device: a Redis
# key costs about 50 bytes of overhead before any data, a field inside a small hash a few.
PROFILE_BUCKET_BITS = 16

CAMPAIGNS = b"dsp:campaigns"  # hash: campaign id -> campaign JSON
CAMPAIGNS_VERSION = b"dsp:campaigns:version"  # counter bumped on every change
SIGNING_KEY = b"dsp:signing-key"
EVENTS = b"dsp:events"  # stream of win, impression and click events


def profile_bucket(digest: bytes) -> bytes:
    """The hash holding the profile (or alias) of a device's 8-byte lookup digest."""
    bucket = int.from_bytes(digest[:2], "big") >> (16 - PROFILE_BUCKET_BITS)
    return b"dmp:p:{%04x}" % bucket


def scene_tags(digest: bytes) -> bytes:
    """A device's live scene tags, in the same slot as its profile bucket."""
    bucket = int.from_bytes(digest[:2], "big") >> (16 - PROFILE_BUCKET_BITS)
    return b"dmp:s:{%04x}:" % bucket + digest.hex().encode()


def all_profile_buckets() -> list[bytes]:
    """Every profile bucket key, for scans over the whole population."""
    return [b"dmp:p:{%04x}" % bucket for bucket in range(1 << PROFILE_BUCKET_BITS)]


def campaign_spent(campaign_id: str) -> str:
    """Micros charged to a campaign over its whole life."""
    return f"dsp:{{c:{campaign_id}}}:spent"


def campaign_spent_day(campaign_id: str, day: str) -> str:
    """Micros charged to a campaign on one day (``YYYYMMDD``)."""
    return f"dsp:{{c:{campaign_id}}}:spent:{day}"


def campaign_stats(campaign_id: str) -> str:
    """Counters of one campaign: field ``<yyyymmddhh>|<creative>|<metric>``."""
    return f"dsp:{{c:{campaign_id}}}:stats"


def notice_seen(kind: str, campaign_id: str, auction_id: str, imp_id: str) -> str:
    """Marks that an auction's imp has had its win (or impression, click) counted.

    Tagged with the campaign, not the auction, so the check and the charge it guards stay
    on one shard.
    """
    return f"dsp:{{c:{campaign_id}}}:{kind}:{auction_id}:{imp_id}"
