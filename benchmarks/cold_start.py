"""Cold start: importing aiofinaccess against aiohttp alone, and the first token from a restart.

    .venv/bin/python benchmarks/cold_start.py [--quick] [--json PATH] [--repetitions N]

Imports: a fresh interpreter per measurement times one statement with ``time.perf_counter``
(wall) and ``time.process_time`` (CPU) around it. In every round each statement runs once, the
order reversed every other round, and each is paired with ``import aiohttp`` of the same round;
a figure is the median over the rounds of those paired ratios (``import_ratio``:
``import aiofinaccess`` / ``import aiohttp``; ``token_path_import_ratio``: the names the first
token needs, the manager, the SQLite store, a preset and ``BearerAuth``; both targets at most
1.15; ``authlib_import_ratio``: Authlib's httpx client, a peer). The CPU ratios are less
disturbed by other load on the machine than the wall ones; both are shown, and the load
average at start and end. Bytecode caches are written by a warm-up run first and used
by every measured one (``PYTHONDONTWRITEBYTECODE`` is dropped), as in an installed application.

First token: the sandbox CLI runs in its own process; one user logs in and the token set is
written to a SQLite file. Then, N times, a fresh interpreter imports what it needs, opens a
``SessionManager`` on that file (which restores the set) and awaits ``access_token()``.
``first_token_process_ms`` runs from just before the parent starts the child to the token in
the child's hands (both read the same system-wide monotonic clock), interpreter start-up
included; the child also lists any module it loaded that the token path does not need.
``first_request_*`` do the same and then make one ``GET /v1/accounts`` through ``BearerAuth``.
No token request may happen: the token comes from the store (``token_calls`` counts them).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as common
import aiohttp

from aiofinaccess import ClientCredentials, Everifin, Schedule, SessionManager, SQLiteStore
from aiofinaccess.core.tokens import Anchor, parse_token_response

NAME = "cold_start"

#: What each import measurement runs; ``aiohttp`` is the yardstick of the others.
STATEMENTS = {
    "aiohttp": "import aiohttp",
    "aiofinaccess": "import aiofinaccess",
    "token_path": (
        "from aiofinaccess import BearerAuth, ClientCredentials, Everifin, SessionManager, "
        "SQLiteStore"
    ),
    "authlib": "from authlib.integrations.httpx_client import AsyncOAuth2Client",
}

IMPORT = """
import time
wall, cpu = time.perf_counter(), time.process_time()
{statement}
print(time.perf_counter() - wall, time.process_time() - cpu)
"""

#: Modules the token path must not load (the brief of issue 13); a token served from the store
#: sends no token request either.
NOT_NEEDED = (
    "aiohttp.web",
    "aiofinaccess.api",
    "aiofinaccess.cli",
    "aiofinaccess.core.connections",
    "aiofinaccess.core.retry",
    "aiofinaccess.integrations",
    "aiofinaccess.oauth.client",
    "aiofinaccess.oauth.transport",
    "aiofinaccess.session.connection_events",
    "aiofinaccess.session.connections",
    "aiofinaccess.session.events",
    "aiofinaccess.session.redeem",
    "aiofinaccess.session.retrying",
)

FIRST_TOKEN = """
import time, asyncio, json, sys
from aiofinaccess import ClientCredentials, Everifin, SessionManager, SQLiteStore

async def first(path, base, client_id, secret):
    manager = SessionManager(store=SQLiteStore(path))
    manager.register(Everifin.at(base + "/auth", base), ClientCredentials(client_id, secret))
    async with manager:
        await manager.access_token("everifin", "user-0")
        return time.monotonic()

token_at = asyncio.run(first(*sys.argv[1:5]))
loaded = sorted(m for m in sys.modules if m.startswith(tuple(sys.argv[5:])))
print(json.dumps({"token_at": token_at, "cpu": time.process_time(), "not_needed": loaded}))
"""

FIRST_REQUEST = """
import time
started = time.perf_counter()
import asyncio, json, sys
import aiohttp
from aiofinaccess import BearerAuth, ClientCredentials, Everifin, SessionManager, SQLiteStore
imported = time.perf_counter()

async def first(path, base, client_id, secret):
    begun = time.perf_counter()
    manager = SessionManager(store=SQLiteStore(path))
    manager.register(Everifin.at(base + "/auth", base), ClientCredentials(client_id, secret))
    async with manager:
        auth = BearerAuth(manager, "everifin", "user-0")
        async with aiohttp.ClientSession(middlewares=(auth,)) as http:
            async with http.get(base + "/v1/accounts") as response:
                await response.read()
                done = time.perf_counter()
                return response.status, begun, done

status, begun, done = asyncio.run(first(*sys.argv[1:5]))
print(json.dumps({"status": status, "imports": imported - started,
                  "first_request": done - begun, "with_imports": done - started}))
"""


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def child(code: str, *args: str) -> tuple[str, float, float]:
    """Run ``code`` in a fresh interpreter: its last stdout line, the monotonic time just
    before it was started, and the wall seconds it took."""
    spawned = time.monotonic()
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603  (our own interpreter and code)
        [common.PYTHON, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=common.ROOT,
        env=environment(),
        timeout=120,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"child failed: {done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1], spawned, wall


async def imports(repetitions: int, bar: Any) -> list[dict[str, dict[str, float]]]:
    """One dict per round: statement -> wall, cpu and process seconds."""
    for statement in STATEMENTS.values():  # warm-up: write the bytecode caches
        await asyncio.to_thread(child, IMPORT.format(statement=statement))
    task = bar.add_task("import times", total=repetitions * len(STATEMENTS))
    rounds = []
    for round_ in range(repetitions):
        order = list(STATEMENTS) if round_ % 2 == 0 else list(reversed(STATEMENTS))
        measured = {}
        for name in order:
            line, _spawned, process = await asyncio.to_thread(
                child, IMPORT.format(statement=STATEMENTS[name])
            )
            wall, cpu = (float(part) for part in line.split())
            measured[name] = {"wall": wall, "cpu": cpu, "process": process}
            bar.advance(task)
        rounds.append(measured)
    return rounds


async def first_runs(repetitions: int, bar: Any) -> dict[str, Any]:
    task = bar.add_task("first token, first request", total=2 * repetitions + 2)
    with tempfile.TemporaryDirectory(prefix="aiofinaccess-bench-") as tmp:
        path = str(Path(tmp) / "tokens.db")
        async with (
            common.serve(common.sandbox_command(), name="sandbox") as server,
            aiohttp.ClientSession() as control,
        ):
            base = server.url
            login = await common.keycloak_login(control, base)
            client_id = common.SANDBOX.everifin_client_id
            secret = common.SANDBOX.everifin_client_secret
            async with SessionManager(
                store=SQLiteStore(path), schedule=Schedule(enabled=False)
            ) as setup:
                setup.register(
                    Everifin.at(base + "/auth", base), ClientCredentials(client_id, secret)
                )
                sent = Anchor(login.sent_wall, login.sent_monotonic)
                await setup.store_token_set(
                    "everifin", "user-0", parse_token_response(login.body, sent=sent)
                )
            args = (path, base, client_id, secret)
            for code in (FIRST_TOKEN, FIRST_REQUEST):  # warm-up: bytecode caches
                await asyncio.to_thread(child, code, *args, *NOT_NEEDED)
                bar.advance(task)
            before = await common.sandbox_stats(control, base)
            tokens: list[dict[str, Any]] = []
            requests: list[dict[str, Any]] = []
            for _ in range(repetitions):
                line, spawned, wall = await asyncio.to_thread(
                    child, FIRST_TOKEN, *args, *NOT_NEEDED
                )
                run = json.loads(line)
                tokens.append({**run, "to_token": run["token_at"] - spawned, "process": wall})
                bar.advance(task)
                line, _spawned, wall = await asyncio.to_thread(child, FIRST_REQUEST, *args)
                requests.append({**json.loads(line), "process": wall})
                bar.advance(task)
            after = await common.sandbox_stats(control, base)
    token_calls = sum(after["token_requests"].values()) - sum(before["token_requests"].values())
    return {"tokens": tokens, "requests": requests, "token_calls": token_calls}


def import_figures(rounds: list[dict[str, dict[str, float]]]) -> dict[str, float]:
    """Medians of each statement's times and of its paired ratios to ``import aiohttp``."""
    figures: dict[str, float] = {}
    for name in STATEMENTS:
        for kind in ("wall", "cpu", "process"):
            figures[f"import_{name}_{kind}_ms"] = (
                statistics.median(r[name][kind] for r in rounds) * 1e3
            )
        if name == "aiohttp":
            continue
        prefix = "import" if name == "aiofinaccess" else f"{name}_import"
        for kind, suffix in (("wall", ""), ("cpu", "_cpu")):
            figures[f"{prefix}_ratio{suffix}"] = statistics.median(
                common.ratio(r[name][kind], r["aiohttp"][kind]) for r in rounds
            )
    return figures


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument(
        "--repetitions", type=int, help="rounds per measurement (default 15; quick 5)"
    )
    args = parser.parse_args()
    repetitions = args.repetitions or (5 if args.quick else 15)
    if not 1 <= repetitions <= 200:
        parser.error("--repetitions must be in 1..200")
    parameters = {
        "repetitions": repetitions,
        "statistic": "median of paired ratios",
        "store": "SQLiteStore",
    }
    run = common.Run(NAME, args)

    async def run_all() -> tuple[list[dict[str, dict[str, float]]], dict[str, Any]]:
        with common.progress() as bar:
            return await imports(repetitions, bar), await first_runs(repetitions, bar)

    rounds, first = asyncio.run(run_all())
    tokens, requests = first["tokens"], first["requests"]

    def median_ms(runs: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(run[key] for run in runs)) * 1e3

    figures: dict[str, Any] = {
        **import_figures(rounds),
        "first_token_process_ms": median_ms(tokens, "to_token"),
        "first_token_cpu_ms": median_ms(tokens, "cpu"),
        "first_token_not_needed_modules": sorted({m for run in tokens for m in run["not_needed"]}),
        "first_request_ms": median_ms(requests, "first_request"),
        "first_request_with_imports_ms": median_ms(requests, "with_imports"),
        "first_request_process_ms": median_ms(requests, "process"),
        "first_request_statuses": sorted({run["status"] for run in requests}),
        "token_calls": first["token_calls"],
        "load_average_1m_end": round(os.getloadavg()[0], 2),
    }
    figures["first_token_not_needed_count"] = len(figures["first_token_not_needed_modules"])
    checked = common.check(
        [
            common.Target("import_ratio", "<=", 1.15),
            common.Target("token_path_import_ratio", "<=", 1.15),
            common.Target("first_token_not_needed_count", "==", 0),
            common.Target("token_calls", "==", 0),
        ],
        figures,
    )
    run.header(parameters)

    def import_row(label: str, name: str, ratio: str) -> list[Any]:
        f = figures
        if name == "aiohttp":
            return [label, f["import_aiohttp_wall_ms"], f["import_aiohttp_cpu_ms"], "1", "1"]
        return [
            label,
            f[f"import_{name}_wall_ms"],
            f[f"import_{name}_cpu_ms"],
            f[ratio],
            f[ratio + "_cpu"],
        ]

    common.stdout.print(
        common.table(
            f"imports in fresh interpreters, {repetitions} alternating rounds "
            f"(load {run.info['load_average_1m']} -> {figures['load_average_1m_end']})",
            ["statement", "wall ms", "CPU ms", "x aiohttp (wall)", "x aiohttp (CPU)"],
            [
                import_row("import aiohttp", "aiohttp", ""),
                import_row("import aiofinaccess", "aiofinaccess", "import_ratio"),
                import_row("the first token's imports", "token_path", "token_path_import_ratio"),
                import_row("Authlib AsyncOAuth2Client (httpx)", "authlib", "authlib_import_ratio"),
            ],
        )
    )
    common.stdout.print(
        common.table(
            f"a restart with a fresh set in SQLite, median of {repetitions}",
            ["measurement", "ms"],
            [
                ["interpreter start -> access_token()", figures["first_token_process_ms"]],
                ["  ... CPU of that process", figures["first_token_cpu_ms"]],
                ["first request (store opened -> 200)", figures["first_request_ms"]],
                ["  ... with the imports", figures["first_request_with_imports_ms"]],
                ["  ... whole process", figures["first_request_process_ms"]],
                ["process: python -c 'import aiohttp'", figures["import_aiohttp_process_ms"]],
                ["token requests during all of it", first["token_calls"]],
                [
                    "modules the token path did not need",
                    ", ".join(figures["first_token_not_needed_modules"]) or "none",
                ],
            ],
        )
    )
    run.finish(parameters, figures, checked)


if __name__ == "__main__":
    main()
