"""Run a real, throwaway Redis Cluster for the cluster store tests.

Usage::

    async with running_cluster() as cluster:   # 3 primaries, 3 replicas, slots covered
        store = RedisStore(cluster.url)         # "redis+cluster://127.0.0.1:<port>"
        await cluster.failover(await cluster.a_replica())

Six ``redis-server --cluster-enabled yes`` processes on loopback ports in a temporary directory
(nothing on disk but their ``nodes.conf``), joined by ``redis-cli --cluster create ...
--cluster-replicas 1 --cluster-yes``; ready once every node reports ``cluster_state:ok`` and
the same slot map. Without ``redis-server``/``redis-cli`` the test is skipped, or fails when
``CI`` is set (CI installs them). Like :mod:`tests.redis_server`, the servers run under
:class:`subprocess.Popen`, so a module-scoped cluster outlives function-scoped loops; they are
stopped with SIGTERM (SIGKILL after 5 s) on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest

from tests.support.redis_server import _stop, _wait_ready, redis_server_binary

STARTUP_TIMEOUT = 30.0


def redis_cli_binary() -> str:
    """The ``redis-cli`` path; skips the test (fails it in CI) when there is none."""
    binary = shutil.which("redis-cli")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-cli is required in CI")
        pytest.skip("redis-cli is not installed")
    return binary


def _cluster_port(taken: set[int]) -> int:
    """A free port whose cluster-bus port (port + 10000) is free as well."""
    for _ in range(200):
        port = random.randrange(20000, 30000)  # port + 10000 stays below 65536
        if port in taken:
            continue
        try:
            for candidate in (port, port + 10000):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@attrs.define
class Cluster:
    """A running local cluster: its ports, and ways to ask and steer it."""

    ports: list[int]
    cli: str

    @property
    def url(self) -> str:
        """A ``redis+cluster://`` URL naming the first node (clients discover the rest)."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    async def command(self, port: int, *args: str) -> str:
        """Run one ``redis-cli`` command against the node on ``port``; its output."""
        done = await asyncio.to_thread(
            subprocess.run,
            [self.cli, "-h", "127.0.0.1", "-p", str(port), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    async def roles(self) -> dict[int, str]:
        """port -> ``master`` or ``slave``, as each node sees itself."""
        roles = {}
        for port in self.ports:
            for line in (await self.command(port, "ROLE")).splitlines()[:1]:
                roles[port] = line.strip()
        return roles

    async def a_replica(self) -> int:
        """The port of some replica."""
        return next(port for port, role in (await self.roles()).items() if role == "slave")

    async def failover(self, replica: int, *, timeout: float = 20.0) -> float:
        """``CLUSTER FAILOVER`` on ``replica`` (a coordinated manual failover); return once it is
        a primary and every node reports the cluster ok. Returns the seconds that took."""
        started = time.monotonic()
        reply = await self.command(replica, "CLUSTER", "FAILOVER")
        if "OK" not in reply:
            raise RuntimeError(f"CLUSTER FAILOVER refused: {reply!r}")
        deadline = started + timeout
        while (await self.roles())[replica] != "master":
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {replica} did not become a primary in {timeout} s")
            await asyncio.sleep(0.05)
        await self.wait_ok(timeout=deadline - time.monotonic())
        return time.monotonic() - started

    async def wait_ok(self, *, timeout: float = STARTUP_TIMEOUT) -> None:
        """Until every node says ``cluster_state:ok``, all agree on who serves each slot, and
        every replica has finished syncing with its primary (a replica promoted before its
        first sync would come up empty: no real failover picks one)."""
        deadline = time.monotonic() + timeout
        while True:
            states, maps = [], set()
            for port in self.ports:
                info = await self.command(port, "CLUSTER", "INFO")
                states.append("cluster_state:ok" in info)
                maps.add(_primaries_of(await self.command(port, "CLUSTER", "NODES")))
                replication = await self.command(port, "INFO", "replication")
                if "role:slave" in replication:
                    states.append(
                        "master_link_status:up" in replication
                        and "master_sync_in_progress:0" in replication
                    )
            if all(states) and len(maps) == 1:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not settle in time")
            await asyncio.sleep(0.1)


def _primaries_of(nodes: str) -> str:
    """The ``CLUSTER NODES`` lines of primaries as ``address slots``, sorted: one node's map."""
    lines = []
    for line in nodes.splitlines():
        fields = line.split()
        if len(fields) >= 8 and "master" in fields[2] and "fail" not in fields[2]:
            lines.append(" ".join([fields[1].split("@")[0], *fields[8:]]))
    return "\n".join(sorted(lines))


@contextlib.asynccontextmanager
async def running_cluster(*, primaries: int = 3, replicas: int = 1) -> AsyncIterator[Cluster]:
    """Start and join ``primaries * (1 + replicas)`` nodes; yield the ready :class:`Cluster`."""
    server, cli = redis_server_binary(), redis_cli_binary()
    with tempfile.TemporaryDirectory(prefix="aiofinaccess-cluster-") as tmp:
        ports: list[int] = []
        processes: list[subprocess.Popen[bytes]] = []
        try:
            for _ in range(primaries * (1 + replicas)):
                port = _cluster_port(set(ports))
                ports.append(port)
                command = [server, "--port", str(port), "--bind", "127.0.0.1"]
                command += ["--cluster-enabled", "yes"]
                command += ["--cluster-config-file", f"nodes-{port}.conf"]
                command += ["--cluster-node-timeout", "2000", "--repl-diskless-sync-delay", "0"]
                command += ["--save", "", "--appendonly", "no", "--dir", tmp]
                command += ["--logfile", str(Path(tmp) / f"redis-{port}.log")]
                processes.append(
                    await asyncio.to_thread(subprocess.Popen, command, stdin=subprocess.DEVNULL)
                )
            for process, port in zip(processes, ports, strict=True):
                if not await _wait_ready(process, port):
                    log = Path(tmp) / f"redis-{port}.log"
                    text = log.read_text(errors="replace") if log.exists() else ""
                    raise RuntimeError(f"cluster node {port} exited:\n{text}")
            create = [cli, "--cluster", "create", *(f"127.0.0.1:{port}" for port in ports)]
            create += ["--cluster-replicas", str(replicas), "--cluster-yes"]
            await asyncio.to_thread(
                subprocess.run, create, capture_output=True, timeout=60, check=True
            )
            cluster = Cluster(ports, cli)
            await cluster.wait_ok()
            yield cluster
        finally:
            for process in processes:
                await _stop(process)
