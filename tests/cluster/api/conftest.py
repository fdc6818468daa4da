"""The advertiser API's own tests, run again on the cluster: ``redis`` and ``redis_url``
name the session's 3-master, 3-replica cluster here, everything else is the same."""

from __future__ import annotations

from tests.cluster.reruns import redis, redis_url
from tests.dsp.api.conftest import alice, api_client, bob

# The API suite's fixtures, over the cluster's ``redis`` and ``redis_url``.
__all__ = ["alice", "api_client", "bob", "redis", "redis_url"]
