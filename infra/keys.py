"""Every Redis key name the platform uses, built here and nowhere else.

Keys that one operation touches together share a hash tag (the part in braces), so the same
code runs on Redis Cluster: a device's profile bucket, a campaign's money, an auction's notices.
A bid request's Redis work is one slot; the exceptions (alias-only lookups, a notice's device
and event writes) and how the cluster path handles them are in docs/SCALING.md.
"""

from __future__ import annotations

from typing import Final

# Profiles are stored in 2**15 small hashes (buckets) rather than one key per device: a Redis
# key costs about 100 bytes before any data, a field inside a small (ziplist) hash a few. A
# bucket keeps up to 2048 fields (infra.embedded_redis), so 32,768 of them hold about 33
# million devices compactly; at a million devices a bucket costs each of its 30 devices 3 bytes.
PROFILE_BUCKET_BITS: Final = 15
# Whole digest bytes the bucket number stands for, left out of the field names.
_BUCKET_BYTES: Final = PROFILE_BUCKET_BITS // 8
# Alias fields keep 4 bytes of the digest: they only have to tell apart the few aliases of
# one bucket (a stranger's digest matches one by chance once in 2**32 / 60 lookups).
ALIAS_FIELD_BYTES: Final = 4
# A key named ``{NAME}:...`` hashes to the same cluster slot as the key ``NAME`` (a hash tag
# equal to a whole untagged name), so a global key and its companions stay in one slot
# without renaming the global key itself.
SNAPSHOTS: Final = b"dmp:snapshots"  # hash: snapshot reference -> snapshot bytes (dmp.profile_refs)
# hash: snapshot bytes -> its reference; one script interns into both (dmp.profile_refs)
SNAPSHOT_REFS: Final = b"{dmp:snapshots}:refs"

CAMPAIGNS: Final = b"dsp:campaigns"  # hash: campaign id -> campaign JSON
# Counter bumped on every change, in one MULTI/EXEC with the hash: the same slot.
CAMPAIGNS_VERSION: Final = b"{dsp:campaigns}:version"
SIGNING_KEY: Final = b"dsp:signing-key"
EVENTS: Final = b"dsp:events"  # stream of win, impression and click events


def event_appended(seen: str) -> str:
    """Marks that the event of the notice whose seen key is ``seen`` is in the stream, beside
    the stream (hash tag: the stream's own name, as ``event_counts``): a cluster client's
    retry of the append finds it and adds nothing."""
    return f"dsp:{{dsp:events}}:appended:{seen}"


def _bucket(digest: bytes) -> int:
    return int.from_bytes(digest[:2], "big") >> (16 - PROFILE_BUCKET_BITS)


def profile_bucket(digest: bytes) -> bytes:
    """The hash holding the profile (or alias) of a device's 8-byte lookup digest."""
    return b"dmp:p:{%04x}" % _bucket(digest)


def _beside_profile(prefix: bytes, digest: bytes) -> bytes:
    # A device's side keys share its profile bucket's hash tag: one slot, one lookup.
    return prefix + b":{%04x}:" % _bucket(digest) + digest.hex().encode()


def profile_field(digest: bytes) -> bytes:
    """The field of a device's profile in its bucket: the digest bytes the bucket leaves out."""
    return digest[_BUCKET_BYTES:]


def alias_field(digest: bytes) -> bytes:
    """The field of an alias (shorter than any profile field, so the two never collide)."""
    return digest[-ALIAS_FIELD_BYTES:]


def profile_digest(bucket: bytes, field: bytes) -> bytes:
    """The 8-byte digest of a profile ``field`` found in the hash named ``bucket``."""
    number = int(bucket[bucket.index(b"{") + 1 : bucket.index(b"}")], 16)
    high = number >> (PROFILE_BUCKET_BITS - 8 * _BUCKET_BYTES)
    return high.to_bytes(_BUCKET_BYTES, "big") + field


def scene_tags(digest: bytes) -> bytes:
    """A device's live scene tags, in the same slot as its profile bucket."""
    return _beside_profile(b"dmp:s", digest)


def frequency_counters(digest: bytes) -> bytes:
    """The DSP's impression counters of a device (per campaign and cap window), beside its
    profile bucket so the bidder reads them in the same call."""
    return _beside_profile(b"dsp:f", digest)


PROFILE_BUCKET_PATTERN: Final = b"dmp:p:{*}"  # SCAN MATCH pattern of every profile bucket


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


def api_token(service: str, token_sha256: str) -> str:
    """An API token of ``service`` (dmp, dsp), stored under the SHA-256 of the token only."""
    return f"{service}:token:{token_sha256}"


def scene_events() -> bytes:
    """Stream of behaviour events (geofence, app open, URL, search, call) for scene tagging."""
    return b"dmp:scene-events"


def dmp_version() -> str:
    """Counter bumped whenever DMP profiles change in bulk: cached audience indexes rebuild."""
    return "dmp:version"


def audiences(owner: str) -> str:
    """Hash of one owner's audience definitions: audience id -> definition JSON."""
    return f"dmp:{{aud:{owner}}}:audiences"


def audience_digests(owner: str, audience_id: str) -> str:
    """An ID-list audience's matched primary digests, packed 8 bytes a device."""
    return f"dmp:{{aud:{owner}}}:{audience_id}:digests"


def audience_ids(owner: str, audience_id: str) -> str:
    """Hash of an ID-list audience: primary digest -> the canonical IDs given for it."""
    return f"dmp:{{aud:{owner}}}:{audience_id}:ids"


def audience_id_lists() -> str:
    """Set of every ID-list audience as ``owner\\naudience id``, for erasure to visit."""
    return "dmp:audiences:id-lists"


# Advertiser API. Everything one advertiser owns shares the hash tag ``{adv:ID}``, so one
# MULTI/EXEC can change an object, its listing order and the audit log together.


def advertisers() -> str:
    """Sorted set of every advertiser id, scored by creation time (admin listing)."""
    return "dsp:advertisers"


def advertiser(advertiser_id: str) -> str:
    """An advertiser's own record (name, time zone, currency) as versioned JSON."""
    return f"dsp:{{adv:{advertiser_id}}}:advertiser"


def advertiser_revision(advertiser_id: str) -> str:
    """Counter bumped by every API write of an advertiser; writers WATCH it."""
    return f"dsp:{{adv:{advertiser_id}}}:rev"


def advertiser_tokens(advertiser_id: str) -> str:
    """Hash of an advertiser's API tokens: token id -> JSON (digest, scopes, created)."""
    return f"dsp:{{adv:{advertiser_id}}}:tokens"


def api_objects(advertiser_id: str, kind: str) -> str:
    """Hash of an advertiser's objects of one kind (campaigns, creatives...): id -> JSON."""
    return f"dsp:{{adv:{advertiser_id}}}:{kind}"


def api_order(advertiser_id: str, kind: str, *, live: bool) -> str:
    """Sorted set of object ids by creation sequence: every object, or the unarchived ones."""
    return f"dsp:{{adv:{advertiser_id}}}:{kind}:{'live' if live else 'all'}"


def api_sequence(advertiser_id: str) -> str:
    """Counter giving each new object of an advertiser its place in listings."""
    return f"dsp:{{adv:{advertiser_id}}}:seq"


def api_audit(advertiser_id: str) -> str:
    """Stream of an advertiser's audit entries: who changed what, when."""
    return f"dsp:{{adv:{advertiser_id}}}:audit"


# Budgets (dsp/budget). A campaign's money keys all carry ``{c:ID}``: granting a lease, charging
# a win and reading what is left touch them together in one Lua script.


def campaign_leases(campaign_id: str) -> str:
    """Hash of a campaign's budget leases: ``<lease>|granted``, ``<lease>|charged``,
    ``<lease>|day``, and the budgets the last grant saw (``budget|daily``, ``budget|total``)."""
    return f"dsp:{{c:{campaign_id}}}:leases"


def campaign_lease_expiry(campaign_id: str) -> str:
    """Sorted set of a campaign's leases scored by expiry (Redis time, milliseconds)."""
    return f"dsp:{{c:{campaign_id}}}:lease-expiry"


def lease_resolved(campaign_id: str, lease: str) -> str:
    """List of a lease's settled reservations (charged or lost), drained by its process."""
    return f"dsp:{{c:{campaign_id}}}:resolved:{lease}"


def campaign_overdelivery(campaign_id: str, day: str) -> str:
    """Micros won on one day (``YYYYMMDD``, the campaign's zone) beyond its budget: not charged."""
    return f"dsp:{{c:{campaign_id}}}:overdelivery:{day}"


def audience_memberships(digest: bytes) -> bytes:
    """Set of the targetable member audiences a device belongs to, beside its profile bucket
    so the bidder reads it in the same call."""
    return _beside_profile(b"dmp:m", digest)


TARGETABLE_AUDIENCES: Final = b"dmp:audiences:targetable"  # hash: audience id -> how to target it
# Bumped when that hash changes, in the same MULTI/EXEC: the same slot.
TARGETABLE_VERSION: Final = b"{dmp:audiences:targetable}:version"


# Event log (dsp/events). The aggregator's counts share the event stream's slot: their hash
# tag is the stream's own name, so one Lua script can count a batch and XACK it together.
EVENTS_GROUP_AGGREGATOR: Final = "aggregator"  # consumer group that keeps the report counts
EVENTS_GROUP_ARCHIVER: Final = "archiver"  # consumer group that writes the archive files


def event_counts(campaign_id: str, hour: str) -> str:
    """Counts of one campaign in one hour (``YYYYMMDDHH``, UTC) from the event log: field
    ``<creative>|<tag>|<metric>`` (tag ``*``: every event once; ``-``: matched no tag).
    One hash an hour stays small, so Redis keeps it compact and an increment stays cheap."""
    return f"dsp:{{dsp:events}}:counts:{campaign_id}:{hour}"


def event_hours(campaign_id: str) -> str:
    """Set of the hours (``YYYYMMDDHH``) a campaign has counts in."""
    return f"dsp:{{dsp:events}}:hours:{campaign_id}"


def event_campaigns() -> str:
    """Set of the campaign ids the aggregator has counted events of."""
    return "dsp:{dsp:events}:campaigns"


def archive_offsets() -> str:
    """Hash of the archiver's files: file name -> bytes durably written and acknowledged."""
    return "dsp:{dsp:events}:archive-offsets"


def device_clicks(digest: bytes, window: int) -> bytes:
    """Clicks of a device in one click-rate window (invalid-traffic rule), beside its profile."""
    return _beside_profile(b"dsp:k", digest) + b":%d" % window


# issue 12: conversions
def conversion_seen(scope: str, dedup_id: str) -> str:
    """Marks a conversion counted: an advertiser's order id (or the touch it was credited to)."""
    return f"dsp:{{conv:{scope}}}:seen:{dedup_id}"


def device_touches(digest: bytes) -> bytes:
    """A device's last counted click and impression per campaign (view-through attribution):
    field ``<campaign>|<click|imp>``, the event JSON; beside the device's profile."""
    return _beside_profile(b"dsp:t", digest)


# issue 9 follow-up: the advertiser API and conversions on Redis Cluster (docs/SCALING.md).


def advertiser_unpublished(advertiser_id: str) -> str:
    """Hash of an advertiser's campaign payloads saved but not yet known published to the
    bidders (cluster only): campaign id -> ``<advertiser revision>|<payload JSON>``. Written
    in the same script as the change (its ``{adv:ID}`` slot), cleared once ``CAMPAIGNS`` has
    the payload, so a process dying in between leaves the work for the next one."""
    return f"dsp:{{adv:{advertiser_id}}}:unpublished"


# Hash beside ``CAMPAIGNS``: campaign id -> the advertiser revision of the payload it holds
# (cluster only). A publication of an older revision than the one stored changes nothing, so
# two writers publishing out of order, or a republication, never put back an old payload.
CAMPAIGNS_REVISIONS: Final = b"{dsp:campaigns}:revisions"


def conversion_logged(scope: str, dedup_id: str) -> str:
    """Cluster: marks a conversion whose event is in the stream, beside the stream (its slot),
    so the once-only check and the append are one script. Holds what the campaign's
    counters need, for a repeat to finish a count its first try could not."""
    return f"dsp:{{dsp:events}}:conv:{scope}:{dedup_id}"


def conversion_counted(campaign_id: str, scope: str, dedup_id: str) -> str:
    """Cluster: marks a conversion counted in its campaign's counters (the ``{c:ID}`` slot)."""
    return f"dsp:{{c:{campaign_id}}}:conv:{scope}:{dedup_id}"
