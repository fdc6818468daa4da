"""Snapshot references: the handset and place of a profile as one to three bytes in Redis.

A blob's snapshot (price tier, OS, model, country, region, city) costs some 30 bytes as
text, but a population repeats few combinations, so Redis keeps each combination once in a
dictionary (``keys.SNAPSHOTS``) and a stored profile starts with its reference instead:

    first byte 0x10..0xbf  1 byte,  references 0..175
    first byte 0xc0..0xef  2 bytes, references 176..12,463
    first byte 0xf0..0xff  3 bytes, references 12,464..1,060,975

A self-contained blob starts with its version (2), below 0x10, so the two forms never mix;
a full dictionary just leaves later blobs self-contained. References are handed out by one
script, so concurrent loaders agree on them, and never change, so any cache of them is safe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dmp.profile import VERSION, ProfileFormatError

FIRST_REF_BYTE = 0x10
_VERSION_BYTE = bytes((VERSION,))
_TEXTS = 5

# The dictionary is read by every bid lookup. Left to itself, Redis keeps a hash of up to
# hash-max-ziplist-entries fields as a ziplist, which a read scans end to end (that setting is
# high so that profile buckets stay compact): 935 snapshots cost 10 us a lookup. One field
# whose value is longer than any hash-max-ziplist-value in use turns the dictionary into a
# hash table for good. Its name is longer than any reference, so no lookup can hit it.
TABLE_FIELD = b"~hash-table"
TABLE_VALUE_BYTES = 16_384

# KEYS: dictionary, reverse dictionary; ARGV: snapshot bytes. Returns each one's reference
# ('' once the dictionary is full). References are numbered by the reverse dictionary's
# size, which the table field does not count.
INTERN_LUA = f"""
if redis.call('HEXISTS', KEYS[1], '{TABLE_FIELD.decode()}') == 0 then
  redis.call('HSET', KEYS[1], '{TABLE_FIELD.decode()}', string.rep('-', {TABLE_VALUE_BYTES}))
end
local refs = {{}}
for i = 1, #ARGV do
  local ref = redis.call('HGET', KEYS[2], ARGV[i])
  if not ref then
    local n = redis.call('HLEN', KEYS[2])
    if n < 176 then
      ref = string.char(16 + n)
    elseif n < 12464 then
      n = n - 176
      ref = string.char(192 + math.floor(n / 256), n % 256)
    elseif n < 1060976 then
      n = n - 12464
      ref = string.char(240 + math.floor(n / 65536), math.floor(n / 256) % 256, n % 256)
    else
      ref = ''
    end
    if ref ~= '' then
      redis.call('HSET', KEYS[1], ref, ARGV[i])
      redis.call('HSET', KEYS[2], ARGV[i], ref)
    end
  end
  refs[i] = ref
end
return refs
"""

# Lua: a stored value with its snapshot put back (or unchanged when it has no reference).
EXPAND_LUA = """
local function expand(value)
  local first = string.byte(value, 1)
  if not first or first < 16 then
    return value
  end
  local n = 1
  if first >= 240 then n = 3 elseif first >= 192 then n = 2 end
  local snapshot = redis.call('HGET', 'dmp:snapshots', string.sub(value, 1, n))
  if not snapshot then
    return value
  end
  return '\\2' .. snapshot .. string.sub(value, n + 1)
end
"""


def ref_length(value: bytes) -> int:
    """Bytes of the reference ``value`` starts with; 0 for a self-contained blob."""
    first = value[0] if value else 0
    if first < FIRST_REF_BYTE:
        return 0
    return 1 if first < 0xC0 else 2 if first < 0xF0 else 3


def split(blob: bytes) -> tuple[bytes, bytes]:
    """A self-contained blob as (snapshot bytes, tag section)."""
    if not blob or blob[0] != VERSION:
        raise ProfileFormatError("not a self-contained profile")
    pos = 2  # version and price tier
    for _ in range(_TEXTS):
        if pos >= len(blob):
            raise ProfileFormatError("truncated snapshot")
        pos += 1 + blob[pos]
    return blob[1:pos], blob[pos:]


def expand(value: bytes, snapshots: Mapping[bytes, bytes]) -> bytes | None:
    """A stored value made self-contained; None when its reference is not in ``snapshots``."""
    length = ref_length(value)
    if not length:
        return value
    snapshot = snapshots.get(value[:length])
    return None if snapshot is None else _VERSION_BYTE + snapshot + value[length:]


def intern_args(snapshots: Sequence[bytes]) -> list[bytes]:
    """The snapshots not yet known, once each, in first-seen order (the script's ARGV)."""
    return list(dict.fromkeys(snapshots))
