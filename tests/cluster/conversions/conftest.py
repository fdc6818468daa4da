"""The conversion tests, run again on the cluster: ``redis`` and ``redis_url`` name the
session's 3-master, 3-replica cluster here (``dsp_client`` and the rest follow them)."""

from __future__ import annotations

from tests.cluster.reruns import redis, redis_url

__all__ = ["redis", "redis_url"]
