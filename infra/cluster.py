"""A real Redis Cluster on loopback, made of the redis-server the embedded default uses.

For tests, benchmarks and trying the platform on a cluster without installing anything:
``masters`` masters, each with ``replicas`` replicas, every node a process on a free
loopback port with its own temporary directory. The cluster is assembled from Python with
the cluster commands a node takes (``CLUSTER ADDSLOTS``, ``MEET``, ``REPLICATE``; no
``redis-cli``): ``ADDSLOTS`` rather than ``ADDSLOTSRANGE``, which the bundled 6.2 lacks.

``cluster-node-timeout`` is short (1 s by default), so a replica takes over within a few
seconds of its master dying; ``cluster-require-full-coverage no`` keeps the other masters'
slots served meanwhile. Processes are stopped by their PID, never by name.

    with LocalCluster() as url:      # redis+cluster://127.0.0.1:PORT
        ...
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis

from infra.embedded_redis import EmbeddedRedis, free_port
from infra.errors import RedisStartError

log = logging.getLogger(__name__)

SLOTS = 16384
# A node also listens on its port + 10000 for the cluster bus (Redis 6.2 has no setting
# for it), so a node's port must leave that one valid and free too.
BUS_PORT_OFFSET = 10_000


def free_cluster_port(attempts: int = 100) -> int:
    """A free loopback port whose cluster bus port is free as well."""
    for _ in range(attempts):
        port = free_port()
        if port + BUS_PORT_OFFSET > 65_535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port + BUS_PORT_OFFSET))
            except OSError:
                continue
        return port
    raise RedisStartError("no free port pair for a cluster node")


@dataclass
class Node:
    server: EmbeddedRedis
    node_id: str = ""
    master_index: int = -1  # for a replica: the master it was made to follow

    @property
    def port(self) -> int:
        return self.server.port

    def client(self, timeout_s: float = 1.0) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=timeout_s, socket_connect_timeout=1
        )


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """The slots each master serves: ``(first, last)``, inclusive, as even as they come."""
    bounds = [SLOTS * i // masters for i in range(masters + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(masters)]


class LocalCluster:
    """``masters`` masters with ``replicas`` replicas each; ``start()`` returns the URL."""

    def __init__(
        self,
        masters: int = 3,
        replicas: int = 1,
        *,
        node_timeout_ms: int = 1000,
        extra_config: dict[str, str] | None = None,
    ) -> None:
        if masters < 1 or replicas < 0:
            raise ValueError("a cluster needs a master; replicas cannot be negative")
        self.masters = masters
        self.replicas = replicas
        self._node_timeout_ms = node_timeout_ms
        self._extra = extra_config or {}
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.nodes: list[Node] = []

    @property
    def url(self) -> str:
        """A cluster URL naming the first master (the client discovers the others)."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self, timeout_s: float = 30.0) -> str:
        self._tmpdir = tempfile.TemporaryDirectory(prefix="local-cluster-")
        try:
            for index in range(self.masters * (1 + self.replicas)):
                self.nodes.append(Node(self._server(Path(self._tmpdir.name) / f"node{index}")))
            self._assemble(time.monotonic() + timeout_s)
        except BaseException:
            self.stop()
            raise
        log.info("local cluster started", extra={"ports": [n.port for n in self.nodes]})
        return self.url

    def _server(self, data_dir: Path) -> EmbeddedRedis:
        config = {
            "cluster-enabled": "yes",
            "cluster-config-file": "nodes.conf",
            "cluster-node-timeout": str(self._node_timeout_ms),
            # The other masters keep serving their slots while one is failing over.
            "cluster-require-full-coverage": "no",
            **self._extra,
        }
        server = EmbeddedRedis(data_dir, extra_config=config, port_picker=free_cluster_port)
        server.start()
        return server

    def _assemble(self, deadline: float) -> None:
        masters = self.nodes[: self.masters]
        for node in self.nodes:
            with node.client() as client:
                node.node_id = client.execute_command("CLUSTER", "MYID").decode()
        for node, (first, last) in zip(masters, slot_ranges(self.masters), strict=True):
            with node.client() as client:
                client.execute_command("CLUSTER", "ADDSLOTS", *range(first, last + 1))
        with self.nodes[0].client() as client:
            for node in self.nodes[1:]:
                client.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
        self._wait(deadline, "every node to know every other", self._all_known)
        for index, node in enumerate(self.nodes[self.masters :]):
            node.master_index = index % self.masters
            with node.client() as client:
                client.execute_command("CLUSTER", "REPLICATE", masters[node.master_index].node_id)
        self._wait(deadline, "cluster state ok with replicas in sync", self._ready)

    def _wait(self, deadline: float, what: str, ready: object) -> None:
        assert callable(ready)
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise RedisStartError(f"local cluster: timed out waiting for {what}")

    def _all_known(self) -> bool:
        for node in self.nodes:
            with node.client() as client:
                lines = client.execute_command("CLUSTER", "NODES").decode().strip().splitlines()
                if len(lines) < len(self.nodes) or any("handshake" in line for line in lines):
                    return False
        return True

    def _ready(self) -> bool:
        for node in self.alive():
            with node.client() as client:
                info = client.execute_command("CLUSTER", "INFO").decode()
                if "cluster_state:ok" not in info:
                    return False
                if node.master_index >= 0:
                    replication = client.info("replication")
                    if replication.get("master_link_status") != "up":
                        return False
        return True

    def alive(self) -> list[Node]:
        return [node for node in self.nodes if node.server.pid is not None]

    def master_of_slot(self, slot: int) -> Node:
        """The node serving ``slot`` now, as a live node reports it."""
        for node in self.alive():
            try:
                with node.client() as client:
                    shards = client.execute_command("CLUSTER", "SLOTS")
            except redis.RedisError:
                continue
            for first, last, master, *_ in shards:
                if first <= slot <= last:
                    port = int(master[1])
                    return next(n for n in self.nodes if n.port == port)
        raise LookupError(f"no node serves slot {slot}")

    def kill(self, node: Node) -> None:
        """``kill -9`` a node: no shutdown, no last write to disk or to its replicas."""
        pid = node.server.pid
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        node.server.stop()  # reaps the killed process

    def wait_for_slot(self, slot: int, not_port: int, timeout_s: float = 30.0) -> Node:
        """Wait until a node other than ``not_port`` serves ``slot`` and says the cluster
        is ok (a replica promoted); returns it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                node = self.master_of_slot(slot)
                if node.port != not_port:
                    with node.client() as client:
                        if "cluster_state:ok" in client.execute_command("CLUSTER", "INFO").decode():
                            return node
            except (LookupError, redis.RedisError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"slot {slot} was not taken over within {timeout_s} s")

    def stop(self) -> None:
        for node in self.nodes:
            node.server.stop()
        self.nodes = []
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m infra.cluster``: a local cluster until Ctrl-C (its URL printed first)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m infra.cluster",
        description="Run a Redis Cluster on loopback (temporary directories) until "
        "interrupted; prints its redis+cluster:// URL for --redis-url / REDIS_URL.",
    )
    parser.add_argument("--masters", type=int, default=3, help="masters (3)")
    parser.add_argument("--replicas", type=int, default=1, help="replicas per master (1)")
    parser.add_argument(
        "--node-timeout-ms", type=int, default=1000, help="cluster-node-timeout (1000)"
    )
    args = parser.parse_args(argv)
    cluster = LocalCluster(args.masters, args.replicas, node_timeout_ms=args.node_timeout_ms)
    stop = signal.Signals.SIGTERM

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(stop, interrupted)
    with cluster as url:
        print(url, flush=True)
        for node in cluster.nodes:
            role = "master" if node.master_index < 0 else f"replica of node {node.master_index}"
            print(f"  127.0.0.1:{node.port} pid {node.server.pid} {role}", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
