"""Run a real, throwaway ``redis-server`` for the Redis store tests.

Usage::

    async with running_redis() as url:  # "redis://127.0.0.1:<port>/0"
        store = RedisStore(url)
    async with running_redis(password="s3cret") as url:  # url carries no password
        store = RedisStore(url.replace("redis://", "redis://:s3cret@"))
    async with running_redis(unix_socket=True) as url:  # "unix:///tmp/.../redis.sock?db=0"
        store = RedisStore(url)

Without ``redis-server`` on the PATH the test is skipped, or fails when ``CI`` is set (CI
installs it). The server keeps nothing on disk (``--save '' --appendonly no``), listens on a
free loopback port only, and is stopped with SIGTERM (SIGKILL after 5 s) on exit. It runs
under :class:`subprocess.Popen`, not an event loop's transport, so one server can outlive the
loop that started it (module-scoped fixtures serving function-scoped loops).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

STARTUP_TIMEOUT = 10.0


def redis_server_binary() -> str:
    """The ``redis-server`` path; skips the test (fails it in CI) when there is none."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is required in CI")
        pytest.skip("redis-server is not installed")
    return binary


def free_port() -> int:
    """A loopback TCP port nobody listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def running_redis(
    *,
    password: str | None = None,
    unix_socket: bool = False,
    tls: tuple[Path, Path, Path] | None = None,
    environment: dict[str, str] | None = None,
) -> AsyncIterator[str]:
    """Start ``redis-server`` on a free port; yield ``redis://127.0.0.1:<port>/0``.

    Args:
        password: Passed as ``--requirepass``; the yielded URL does not contain it.
        unix_socket: Also listen on a socket in the temporary directory, and yield
            ``unix://<path>?db=0`` instead.
        tls: ``(certificate, key, CA certificate)`` files: also listen with TLS on another
            port (clients need no certificate), and yield ``rediss://127.0.0.1:<port>/0``.
        environment: Added to the server's environment (e.g. ``LD_PRELOAD`` for libfaketime).
    """
    binary = redis_server_binary()
    with tempfile.TemporaryDirectory(prefix="aiofinaccess-redis-") as tmp:
        log = Path(tmp) / "redis.log"
        # The port is free when picked but could be taken before redis binds it: try again.
        for attempt in range(3):
            port = free_port()
            command = [binary, "--port", str(port), "--bind", "127.0.0.1"]
            command += ["--save", "", "--appendonly", "no", "--dir", tmp, "--logfile", str(log)]
            if password is not None:
                command += ["--requirepass", password]
            socket_path = Path(tmp) / "redis.sock"
            if unix_socket:
                command += ["--unixsocket", str(socket_path), "--unixsocketperm", "700"]
            tls_port = free_port()
            if tls is not None:
                cert, key, ca = (str(path) for path in tls)
                command += ["--tls-port", str(tls_port), "--tls-cert-file", cert]
                command += ["--tls-key-file", key, "--tls-ca-cert-file", ca]
                command += ["--tls-auth-clients", "no"]
            process = await asyncio.to_thread(
                subprocess.Popen,
                command,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **environment} if environment is not None else None,
            )
            try:
                if await _wait_ready(process, port):
                    if tls is not None:
                        yield f"rediss://127.0.0.1:{tls_port}/0"
                    elif unix_socket:
                        yield f"unix://{socket_path}?db=0"
                    else:
                        yield f"redis://127.0.0.1:{port}/0"
                    return
                text = log.read_text(errors="replace") if log.exists() else ""
                if attempt < 2 and "Address already in use" in text:
                    continue
                raise RuntimeError(f"redis-server exited with {process.returncode}:\n{text}")
            finally:
                await _stop(process)
    raise AssertionError("unreachable")  # pragma: no cover


async def _wait_ready(process: subprocess.Popen[bytes], port: int) -> bool:
    """True once the server answers PING (``-NOAUTH`` counts); False if it exited first."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while process.poll() is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not answer PING within {STARTUP_TIMEOUT} s")
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(b"PING\r\n")
                await writer.drain()
                reply = await asyncio.wait_for(reader.readline(), 1)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            if reply.startswith((b"+PONG", b"-NOAUTH")):
                return True
        await asyncio.sleep(0.02)
    return False


async def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 5)
        except subprocess.TimeoutExpired:
            process.kill()
    await asyncio.to_thread(process.wait)
