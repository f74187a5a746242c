"""A throw-away Ray cluster of several nodes on this machine: to try ``--ray`` without a cluster,
and for the tests and benchmarks (``ray start --head`` plus ``ray start --address`` per node).

Every process the cluster starts carries a marker in its environment, so :meth:`LocalCluster.stop`
ends exactly those processes (``ray stop`` would end every Ray process of the machine).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from genrify.errors import ConfigError
from genrify.scale.engine import import_ray

_MARKER = "GENRIFY_LOCAL_CLUSTER"
#: Seconds rather than Ray's default minute before a silent node is declared dead.
_FAST_FAILURE = {"RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "1000",
                 "RAY_health_check_failure_threshold": "3", "RAY_USAGE_STATS_ENABLED": "0"}


@dataclass(frozen=True)
class NodeSpec:
    """One node's share of the machine: CPUs, memory Ray may hand to actors, object store (bytes)."""

    cpus: int = 1
    memory: int = 3_000_000_000
    object_store: int = 100_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """``with LocalCluster(nodes=2) as cluster:`` → ``cluster.address`` (``127.0.0.1:PORT``)."""

    def __init__(self, *, nodes: int = 2, node: NodeSpec = NodeSpec()):
        import_ray()
        self.nodes, self.node = nodes, node
        self.marker = uuid.uuid4().hex
        self.root = Path(tempfile.mkdtemp(prefix="gr-ray-"))  # short: Ray's socket paths are length-limited
        self.port = free_port()
        self.node_ports: list[int] = []
        self.address = f"127.0.0.1:{self.port}"

    def __enter__(self) -> "LocalCluster":
        try:
            self._start(head=True)
            for _ in range(1, self.nodes):
                self.add_node()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def add_node(self) -> None:
        """Start one more worker node on this machine."""
        self._start(head=False)

    def _start(self, *, head: bool) -> None:
        ray_cli = Path(sys.executable).with_name("ray")
        node_port = free_port()
        cmd = [str(ray_cli if ray_cli.exists() else shutil.which("ray") or "ray"), "start", "--node-ip-address", "127.0.0.1",
               "--num-cpus", str(self.node.cpus), "--memory", str(self.node.memory),
               "--object-store-memory", str(self.node.object_store), "--node-manager-port", str(node_port),
               "--dashboard-agent-listen-port", str(free_port()), "--disable-usage-stats"]
        if head:
            cmd += ["--head", "--port", str(self.port), "--temp-dir", str(self.root), "--include-dashboard", "false",
                    "--ray-client-server-port", str(free_port())]
        else:
            cmd += ["--address", self.address]
        env = {**os.environ, **_FAST_FAILURE, _MARKER: self.marker}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise ConfigError(f"could not start a local Ray node: {tail}")
        self.node_ports.append(node_port)

    def processes(self):
        """The processes this cluster started (psutil ``Process`` objects), their children included."""
        import psutil

        found = {}
        for proc in psutil.process_iter(["pid"]):
            if self._marked(proc):
                found[proc.pid] = proc
                try:
                    found.update((c.pid, c) for c in proc.children(recursive=True))
                except psutil.Error:
                    continue
        return list(found.values())

    def _marked(self, proc) -> bool:
        needle = f"{_MARKER}={self.marker}"
        try:
            # /proc first: psutil parses nothing once a process has rewritten its title over its environment.
            with open(f"/proc/{proc.pid}/environ", "rb") as f:
                return needle.encode() in f.read()
        except OSError:
            pass
        try:
            return proc.environ().get(_MARKER) == self.marker
        except Exception:  # noqa: BLE001 - gone, or not ours to read
            return False

    def raylet_pid(self, node: int) -> int:
        """The raylet's pid of node ``node`` (0: the head)."""
        flag = f"--node_manager_port={self.node_ports[node]}"
        for proc in self.processes():
            try:
                if proc.name() == "raylet" and flag in proc.cmdline():
                    return proc.pid
            except Exception:  # noqa: BLE001 - a process that just ended is simply not the one
                continue
        raise ConfigError(f"node {node} of the local Ray cluster has no raylet")

    def kill_node(self, node: int) -> None:
        """``kill -9`` node ``node``'s raylet, then every process under it (its workers and agents), as
        a machine that fails takes them all at once. (A worker outlives its raylet by a while, and
        finishes the calls it has, so the raylet alone would not lose the songs in flight.)"""
        import psutil

        raylet = psutil.Process(self.raylet_pid(node))
        below = raylet.children(recursive=True)
        raylet.send_signal(signal.SIGKILL)
        for proc in below:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.Error:
                continue

    def stop(self) -> None:
        """End every process of this cluster (and leave the driver disconnected); remove its files."""
        import ray

        if ray.is_initialized():
            ray.shutdown()
        for proc in self.processes():
            try:
                proc.kill()
            except Exception:  # noqa: BLE001 - already gone
                pass
        shutil.rmtree(self.root, ignore_errors=True)
