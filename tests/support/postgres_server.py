"""Run a real, throwaway PostgreSQL for the PostgreSQL store tests.

Usage::

    with running_postgres() as server:  # server.url: "postgresql://aiofinaccess@127.0.0.1:<port>/postgres"
        store = PostgresStore(server.url)
    with running_postgres(tls=(cert, key)) as server:  # also serves TLS with that certificate
        ...

Debian's package puts the binaries in ``/usr/lib/postgresql/<major>/bin``; without them the
test is skipped, or fails when ``CI`` is set (CI installs them); benchmarks use this module too
(``find_postgres_bin``, ``running_postgres(bin_dir=...)``), which imports pytest only to skip.
PostgreSQL refuses to run as root, so a root test run starts it as the ``postgres`` user the
package creates (``nobody`` without it), in a temporary directory that user owns. The cluster
listens on a free loopback port and a Unix socket in that directory, trusts local logins, syncs
nothing to disk, and is stopped (``pg_ctl stop -m immediate``) on exit.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs

USER = "aiofinaccess"


def find_postgres_bin() -> Path | None:
    """The directory of ``initdb``, ``pg_ctl`` and ``postgres`` (the newest major), if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_major)
    if found:
        return Path(found[-1]).parent
    if (pg_ctl := shutil.which("pg_ctl")) is not None:
        return Path(pg_ctl).resolve().parent
    return None


def postgres_bin() -> Path:
    """:func:`find_postgres_bin`'s directory; skips the test (fails it in CI) without."""
    if (found := find_postgres_bin()) is None:
        import pytest  # noqa: PLC0415  (benchmarks use this module without pytest)

        if os.environ.get("CI"):
            pytest.fail("PostgreSQL (Debian's postgresql package) is required in CI")
        pytest.skip("PostgreSQL is not installed")
    return found


def _major(path: str) -> int:
    version = Path(path).parent.parent.name
    return int(version) if version.isdigit() else 0


@attrs.frozen
class Server:
    """A running cluster: ``url`` over TCP, ``socket_url`` over its Unix socket."""

    url: str
    socket_url: str
    port: int
    directory: Path

    def url_for(self, host: str, **options: str) -> str:
        """The URL through ``host`` (e.g. ``localhost``) with query ``options``."""
        query = "&".join(f"{name}={value}" for name, value in options.items())
        return f"postgresql://{USER}@{host}:{self.port}/postgres" + (f"?{query}" if query else "")


def _runner() -> tuple[int | None, int | None]:
    """(uid, gid) to run PostgreSQL as: our own unless we are root."""
    if os.geteuid() != 0:
        return None, None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    raise RuntimeError("no unprivileged user to run PostgreSQL as")  # pragma: no cover


def _parent(uid: int | None) -> str:
    """A temporary directory's parent that the server's user can reach: the usual one, unless
    some directory above it is closed to others (CI's Python matrix gives each run a private
    TMPDIR), then ``/tmp``."""
    usual = tempfile.gettempdir()
    if uid is None:
        return usual
    path = Path(usual).resolve()
    if all(part.stat().st_mode & stat.S_IXOTH for part in (path, *path.parents)):
        return usual
    return "/tmp"  # noqa: S108  (sticky and open to all, as PostgreSQL's user needs)


def free_port() -> int:
    """A loopback TCP port nobody listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_postgres(
    *, tls: tuple[Path, Path] | None = None, bin_dir: Path | None = None
) -> Iterator[Server]:
    """Start a cluster in a temporary directory; stop it and delete the directory on exit.

    Args:
        tls: ``(certificate, key)`` files: the server also accepts TLS with them.
        bin_dir: Where PostgreSQL's binaries are (:func:`postgres_bin` without it).
    """
    bin_dir = postgres_bin() if bin_dir is None else bin_dir
    uid, gid = _runner()
    base = Path(tempfile.mkdtemp(prefix="aiofinaccess-pg-", dir=_parent(uid)))
    data = base / "data"

    def run(*command: str | Path) -> None:
        subprocess.run(  # noqa: S603  (our own binaries, our own arguments)
            [str(part) for part in command],
            user=uid,
            group=gid,
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=base,
        )

    try:
        if uid is not None and gid is not None:
            os.chown(base, uid, gid)
        run(
            bin_dir / "initdb",
            "-D",
            data,
            "-U",
            USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={base}",
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c max_connections=300",
        ]
        if tls is not None:
            for source, name in zip(tls, ("server.crt", "server.key"), strict=True):
                shutil.copyfile(source, data / name)
                os.chmod(data / name, 0o600)
                if uid is not None and gid is not None:
                    os.chown(data / name, uid, gid)
            options += ["-c ssl=on", "-c ssl_cert_file=server.crt", "-c ssl_key_file=server.key"]
        for attempt in range(3):
            port = free_port()
            try:
                run(
                    bin_dir / "pg_ctl", "start", "-w", "-t", "30", "-D", data,
                    "-l", base / "postgres.log", "-o", " ".join([f"-p {port}", *options]),
                )  # fmt: skip
                break
            except subprocess.CalledProcessError:
                log = (base / "postgres.log").read_text(errors="replace")
                if attempt < 2 and "could not bind" in log:
                    continue
                raise RuntimeError(f"PostgreSQL did not start:\n{log}") from None
        try:
            yield Server(
                url=f"postgresql://{USER}@127.0.0.1:{port}/postgres",
                socket_url=f"postgresql://{USER}@/postgres?host={base}&port={port}",
                port=port,
                directory=base,
            )
        finally:
            run(bin_dir / "pg_ctl", "stop", "-m", "immediate", "-D", data)
    finally:
        shutil.rmtree(base, ignore_errors=True)
