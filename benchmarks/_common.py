"""What the benchmark scripts share: the machine, servers in subprocesses, figures and output.

Every server a benchmark talks to runs in a separate process bound to 127.0.0.1: the sandbox
(``python -m aiofinaccess sandbox``, or ``_sandbox_host.py`` when a benchmark must seed its
state), ``redis-server`` and PostgreSQL. :func:`serve` starts one, waits for the URL it prints,
and stops it with SIGTERM (SIGKILL after 5 s) however the benchmark ends.

Output: a progress display on stderr while a benchmark runs (rich), then a table on stdout,
and with ``--json PATH`` the figures as JSON, each target beside its figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import math
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from yarl import URL

from aiofinaccess.sandbox import SandboxConfig, headless_login

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = Path(__file__).resolve().parent
PYTHON = sys.executable
#: The sandbox's own client credentials and users (printed by the sandbox; they guard nothing).
SANDBOX = SandboxConfig()
REDIRECT_URI = "http://127.0.0.1/callback"

#: Tables go to stdout (wide enough for them when it is a file or a pipe), progress to stderr.
stdout = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
stderr = Console(stderr=True, highlight=False)


# -- the machine -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on: cores, CPU model, memory, Python, date."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    memory_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 2**20, 1)
                break
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": memory_gib,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(terse=True),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def describe(info: Mapping[str, Any]) -> str:
    """One line for the top of a table."""
    return (
        f"{info['nproc']} cores ({info['cpu_model']}), {info['memory_gib']} GiB, "
        f"{info['python']}, {info['platform']}, load {info['load_average_1m']}, {info['date']}"
    )


def command_line() -> str:
    """How this benchmark was started, relative to the repository."""
    script = Path(sys.argv[0]).resolve()
    with contextlib.suppress(ValueError):
        script = script.relative_to(ROOT)
    return " ".join([".venv/bin/python", str(script), *sys.argv[1:]])


def cpu_seconds(pid: int | None = None) -> float:
    """User plus system CPU seconds of a process (this one by default), from /proc."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def gc_pauses() -> Iterator[list[tuple[int, float]]]:
    """(generation, seconds) of every garbage collection meanwhile."""
    pauses: list[tuple[int, float]] = []
    began = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], time.perf_counter() - began[0]))

    gc.callbacks.append(callback)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(callback)


def rss_bytes() -> int:
    """Resident set size of this process."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


# -- figures ---------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when the denominator is zero."""
    return numerator / denominator if denominator else math.nan


def rounded(value: Any, digits: int = 3) -> Any:
    """Round floats for JSON (NaN becomes ``None``); leave everything else."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, digits)
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(item, digits) for item in value]
    return value


@dataclass(frozen=True)
class Target:
    """A figure's target: ``figure op bound`` (``op`` is ``>=``, ``<=`` or ``==``)."""

    figure: str
    op: Literal[">=", "<=", "=="]
    bound: float

    def met(self, value: float | None) -> bool | None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        if self.op == ">=":
            return value >= self.bound
        if self.op == "<=":
            return value <= self.bound
        return math.isclose(value, self.bound, abs_tol=0.005)

    def text(self) -> str:
        bound = f"{self.bound:,.2f}" if self.bound % 1 else f"{self.bound:,.0f}"
        return f"{self.op} {bound}"


def check(targets: Iterable[Target], figures: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target with its figure and whether it was met (``None``: not measured)."""
    return [
        {
            "figure": target.figure,
            "target": target.text(),
            "value": rounded(figures.get(target.figure)),
            "met": target.met(figures.get(target.figure)),
        }
        for target in targets
    ]


def check_rows(
    rows: Sequence[Mapping[str, Any]], key: str, targets: Iterable[Target]
) -> list[dict[str, Any]]:
    """:func:`check` for a table: every row's ``targets``, named ``"<row[key]>.<figure>"``."""
    targets = tuple(targets)
    return check(
        [Target(f"{row[key]}.{t.figure}", t.op, t.bound) for row in rows for t in targets],
        {f"{row[key]}.{name}": value for row in rows for name, value in row.items()},
    )


def mark(met: bool | None) -> str:
    return {True: "[green]met[/]", False: "[red]MISSED[/]", None: "[yellow]n/a[/]"}[met]


def fmt(value: Any, digits: int = 2) -> str:
    """A figure for a table cell."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.{digits}f}"
    return str(value)


# -- command line and output -----------------------------------------------------------------------


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark has (``--quick``, ``--json``)."""
    text = doc or ""
    result = argparse.ArgumentParser(
        description=text.strip().splitlines()[0] if text.strip() else None,
        epilog="\n".join(text.strip().splitlines()[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    result.add_argument(
        "--quick", action="store_true", help="small sizes: finishes in under a minute"
    )
    result.add_argument("--json", type=Path, metavar="PATH", help="write the figures here")
    return result


def progress() -> Progress:
    """The progress display (stderr), the same look in every benchmark."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        refresh_per_second=4,
    )


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    result = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        result.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        result.add_row(*(cell if isinstance(cell, str) else fmt(cell) for cell in row))
    return result


def targets_table(checked: Sequence[Mapping[str, Any]]) -> Table:
    return table(
        "targets",
        ["figure", "value", "target", ""],
        [[row["figure"], row["value"], row["target"], mark(row["met"])] for row in checked],
    )


def write_json(path: Path | None, payload: Mapping[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rounded(dict(payload)), indent=2, sort_keys=False) + "\n")
    stderr.print(f"figures written to {path}")


@dataclass
class Run:
    """One run of a benchmark: its name and options, the machine, and when it started.

    Every benchmark opens with ``run = Run(NAME, args)``, prints ``run.header(parameters)``
    above its tables and ends with ``run.finish(parameters, figures, checked)``.
    """

    name: str
    args: argparse.Namespace
    info: dict[str, Any] = field(default_factory=machine)
    started: float = field(default_factory=time.monotonic)

    def header(self, parameters: Mapping[str, Any]) -> None:
        stdout.print(f"[bold]{self.name}[/]  {command_line()}")
        stdout.print(f"machine: {describe(self.info)}")
        stdout.print("parameters: " + ", ".join(f"{k}={v}" for k, v in parameters.items()))

    def payload(
        self,
        parameters: Mapping[str, Any],
        figures: Mapping[str, Any],
        checked: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        """The JSON document every benchmark writes: figures at the top level, then context."""
        return {
            "benchmark": self.name,
            **figures,
            "targets": list(checked),
            "mode": "quick" if self.args.quick else "full",
            "command": command_line(),
            "parameters": dict(parameters),
            "machine": dict(self.info),
            "runtime_seconds": round(time.monotonic() - self.started, 1),
        }

    def finish(
        self,
        parameters: Mapping[str, Any],
        figures: Mapping[str, Any],
        checked: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """The targets table (when there are targets), then the figures to ``--json``."""
        if checked:
            stdout.print(targets_table(checked))
        write_json(self.args.json, self.payload(parameters, figures, checked))


# -- servers in subprocesses ----------------------------------------------------------------------


@dataclass
class Server:
    """A server running in a subprocess, and the URL it printed when ready."""

    url: str
    process: subprocess.Popen[str]

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.asynccontextmanager
async def serve(
    command: Sequence[str], *, name: str, ready_timeout: float = 120.0
) -> AsyncIterator[Server]:
    """Run ``command``; its first stdout line is its URL. Stopped with SIGTERM on exit."""
    with tempfile.TemporaryFile(mode="w+") as log:
        # Popen rather than an event loop's transport: the server outlives no loop of ours.
        process = await asyncio.to_thread(
            subprocess.Popen,  # our own interpreter and arguments
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=ROOT,
            text=True,
        )
        try:
            assert process.stdout is not None  # noqa: S101  (narrowing: stdout=PIPE)
            try:
                line = await asyncio.wait_for(
                    asyncio.to_thread(process.stdout.readline), ready_timeout
                )
            except TimeoutError:
                raise RuntimeError(f"{name} printed no URL within {ready_timeout:.0f} s") from None
            if not line.strip():
                process.wait(5)
                log.seek(0)
                raise RuntimeError(f"{name} exited with {process.returncode}: {log.read()[-2000:]}")
            yield Server(line.strip(), process)
        finally:
            await asyncio.to_thread(_stop, process)


def sandbox_command(*options: str) -> list[str]:
    """The sandbox CLI on a free loopback port."""
    return [PYTHON, "-m", "aiofinaccess", "sandbox", "--host", "127.0.0.1", "--port", "0", *options]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Unavailable(Exception):
    """Something a benchmark row needs is not on this machine (the row says so)."""


@contextlib.asynccontextmanager
async def redis_server() -> AsyncIterator[str]:
    """A throwaway ``redis-server`` on a free loopback port, nothing on disk; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise Unavailable("redis-server is not installed")
    with tempfile.TemporaryDirectory(prefix="aiofinaccess-bench-redis-") as tmp:
        port = free_port()
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", tmp, "--logfile", str(Path(tmp) / "log")]
        process = await asyncio.to_thread(
            subprocess.Popen, command, stdin=subprocess.DEVNULL, text=True
        )
        try:
            deadline = time.monotonic() + 15
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise Unavailable("redis-server did not start")
                with contextlib.suppress(OSError):
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(b"PING\r\n")
                    reply = await asyncio.wait_for(reader.readline(), 1)
                    writer.close()
                    if reply.startswith(b"+PONG"):
                        break
                await asyncio.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            await asyncio.to_thread(_stop, process)


@contextlib.asynccontextmanager
async def postgres_server() -> AsyncIterator[str]:
    """A throwaway PostgreSQL cluster, started as the store tests start theirs
    (``tests/support/postgres_server.py``: a temporary directory, nothing synced to disk);
    yields its ``postgresql://`` URL."""
    from tests.support import postgres_server as pg  # noqa: PLC0415  (the checkout's tests)

    bin_dir = pg.find_postgres_bin()
    if bin_dir is None:
        raise Unavailable("PostgreSQL is not installed")
    with pg.running_postgres(bin_dir=bin_dir) as server:
        yield server.url


def store_server(kind: str) -> contextlib.AbstractAsyncContextManager[str]:
    """:func:`redis_server` or :func:`postgres_server`: ``kind`` is ``redis`` or ``postgres``."""
    return redis_server() if kind == "redis" else postgres_server()


# -- talking to the sandbox ------------------------------------------------------------------------


async def sandbox_stats(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with http.get(f"{base}/_sandbox/stats") as response:
        response.raise_for_status()
        body: dict[str, Any] = await response.json()
        return body


async def sandbox_configure(http: aiohttp.ClientSession, base: str, **settings: float) -> None:
    async with http.post(f"{base}/_sandbox/config", json=settings) as response:
        response.raise_for_status()


def refresh_calls(stats: Mapping[str, Any]) -> int:
    """Refresh-token grants the sandbox's Keycloak answered."""
    return int(stats["token_requests"].get("everifin_refresh_token", 0))


def api_calls(stats: Mapping[str, Any], status: int) -> int:
    return int(stats["api_calls"].get(str(status), 0))


@dataclass(frozen=True)
class Login:
    """A token response from the Everifin realm, and when its request was sent."""

    body: dict[str, Any]
    sent_wall: float
    sent_monotonic: float


def keycloak_token_url(base: str) -> str:
    return f"{base}/auth/realms/{SANDBOX.realm}/protocol/openid-connect/token"


async def keycloak_login(
    http: aiohttp.ClientSession, base: str, username: str = "alice", password: str = ""
) -> Login:
    """A new Keycloak session: the login page, then the code exchange, by plain aiohttp.

    Neutral ground: no library under test takes part, so each starts from the same token set.
    """
    password = password or SANDBOX.everifin_users[username]
    realm = f"{base}/auth/realms/{SANDBOX.realm}/protocol/openid-connect"
    url = URL(realm + "/auth").with_query(
        client_id=SANDBOX.everifin_client_id,
        redirect_uri=REDIRECT_URI,
        response_type="code",
        scope="ais",
        state=secrets.token_urlsafe(8),
    )
    callback = await headless_login(http, url, username, password)
    form = {
        "grant_type": "authorization_code",
        "code": callback.query["code"],
        "redirect_uri": REDIRECT_URI,
        "client_id": SANDBOX.everifin_client_id,
        "client_secret": SANDBOX.everifin_client_secret,
    }
    sent_wall, sent_monotonic = time.time(), time.monotonic()
    async with http.post(keycloak_token_url(base), data=form) as response:
        response.raise_for_status()
        body: dict[str, Any] = await response.json()
    return Login(body, sent_wall, sent_monotonic)


async def until(deadline: float, tick: Callable[[], None], *, every: float = 0.25) -> None:
    """Call ``tick`` every ``every`` seconds until the monotonic ``deadline``."""
    while (left := deadline - time.monotonic()) > 0:
        tick()
        await asyncio.sleep(min(every, left))
    tick()


# -- token sets seeded on both sides (many_sessions.py and _sandbox_host.py) -----------------------

#: The golden ratio's fraction: index * it mod 1 spreads indices evenly over [0, 1).
_SPREAD = 0.6180339887498949


def seeded_tokens(nonce: str, index: int) -> tuple[str, str]:
    """The access and refresh token of seeded session ``index`` (as long as the sandbox's)."""
    return f"kc_at_{nonce}{index:010d}", f"kc_rt_{nonce}{index:010d}"


def seeded_session_id(nonce: str, index: int) -> str:
    return f"{nonce[:22]}{index:010d}"


def seeded_expiry(index: int, *, first: float, spread: float) -> float:
    """Wall-clock expiry of seeded session ``index``: evenly spread over ``spread`` seconds."""
    return first + spread * ((index * _SPREAD) % 1.0)
