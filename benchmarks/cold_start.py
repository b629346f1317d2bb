"""Cold start: importing aiofinaccess against aiohttp alone, and the first authorized request.

    .venv/bin/python benchmarks/cold_start.py [--quick] [--json PATH] [--repetitions N]

Import time: a fresh interpreter per measurement times ``import aiohttp`` or
``import aiofinaccess`` (which imports aiohttp itself) with ``time.perf_counter`` around the
statement; the two alternate, N times each, and the medians are compared
(``import_ratio`` = aiofinaccess / aiohttp). Bytecode caches are written by a warm-up run
first and used by every measured one (``PYTHONDONTWRITEBYTECODE`` is dropped), as in an
installed application.

First request: the sandbox CLI runs in its own process; one user logs in and the token set is
written to a SQLite file. Then, N times, a fresh interpreter imports the SDK, opens a
``SessionManager`` on that file (which restores the set) and makes one ``GET /v1/accounts``
through ``BearerAuth``. ``first_request_ms`` runs from constructing the store to the 200
answer; ``first_request_with_imports_ms`` adds the imports; ``first_request_process_ms`` is
the whole child process, interpreter start-up included. No token request may happen: the
token comes from the store (``token_calls`` counts them).
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

from aiofinaccess import ClientCredentials, Everifin, SessionManager, SQLiteStore
from aiofinaccess.core.tokens import Anchor, parse_token_response

NAME = "cold_start"

IMPORT = """
import time
started = time.perf_counter()
import {module}
print(time.perf_counter() - started)
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


def child(code: str, *args: str) -> tuple[str, float]:
    """Run ``code`` in a fresh interpreter; (its last stdout line, wall seconds)."""
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
    return done.stdout.strip().splitlines()[-1], wall


async def imports(repetitions: int, bar: Any) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"aiohttp": [], "aiofinaccess": []}
    process: dict[str, list[float]] = {"aiohttp": [], "aiofinaccess": []}
    for module in times:  # warm-up: write the bytecode caches
        await asyncio.to_thread(child, IMPORT.format(module=module))
    task = bar.add_task("import times", total=repetitions * 2)
    for round_ in range(repetitions):
        order = ("aiohttp", "aiofinaccess") if round_ % 2 == 0 else ("aiofinaccess", "aiohttp")
        for module in order:
            line, wall = await asyncio.to_thread(child, IMPORT.format(module=module))
            times[module].append(float(line))
            process[module].append(wall)
            bar.advance(task)
    return {**times, **{f"{m}_process": v for m, v in process.items()}}


async def first_requests(repetitions: int, bar: Any) -> dict[str, Any]:
    task = bar.add_task("first request", total=repetitions + 1)
    with tempfile.TemporaryDirectory(prefix="aiofinaccess-bench-") as tmp:
        path = str(Path(tmp) / "tokens.db")
        async with (
            common.serve(common.sandbox_command(), name="sandbox") as server,
            aiohttp.ClientSession() as control,
        ):
            base = server.url
            login = await common.keycloak_login(control, base)
            async with SessionManager(store=SQLiteStore(path), scheduler=False) as setup:
                setup.register(
                    Everifin.at(base + "/auth", base),
                    ClientCredentials(
                        common.SANDBOX.everifin_client_id, common.SANDBOX.everifin_client_secret
                    ),
                )
                sent = Anchor(login.sent_wall, login.sent_monotonic)
                await setup.store_token_set(
                    "everifin", "user-0", parse_token_response(login.body, sent=sent)
                )
            args = (
                path,
                base,
                common.SANDBOX.everifin_client_id,
                common.SANDBOX.everifin_client_secret,
            )
            await asyncio.to_thread(child, FIRST_REQUEST, *args)  # warm-up: bytecode caches
            bar.advance(task)
            before = await common.sandbox_stats(control, base)
            runs: list[dict[str, Any]] = []
            for _ in range(repetitions):
                line, wall = await asyncio.to_thread(child, FIRST_REQUEST, *args)
                runs.append({**json.loads(line), "process": wall})
                bar.advance(task)
            after = await common.sandbox_stats(control, base)
    token_calls = sum(after["token_requests"].values()) - sum(before["token_requests"].values())
    return {"runs": runs, "token_calls": token_calls}


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--repetitions", type=int, help="per measurement (default 15; quick 5)")
    args = parser.parse_args()
    repetitions = args.repetitions or (5 if args.quick else 15)
    if not 1 <= repetitions <= 200:
        parser.error("--repetitions must be in 1..200")
    parameters = {"repetitions": repetitions, "statistic": "median", "store": "SQLiteStore"}
    started = time.monotonic()
    info = common.machine()

    async def run_all() -> tuple[dict[str, list[float]], dict[str, Any]]:
        with common.progress() as bar:
            return await imports(repetitions, bar), await first_requests(repetitions, bar)

    times, first = asyncio.run(run_all())
    ms = {key: statistics.median(values) * 1e3 for key, values in times.items()}
    runs = first["runs"]

    def median_ms(key: str) -> float:
        return float(statistics.median(run[key] for run in runs)) * 1e3

    figures = {
        "import_ratio": common.ratio(ms["aiofinaccess"], ms["aiohttp"]),
        "import_aiofinaccess_ms": ms["aiofinaccess"],
        "import_aiohttp_ms": ms["aiohttp"],
        "process_aiofinaccess_ms": ms["aiofinaccess_process"],
        "process_aiohttp_ms": ms["aiohttp_process"],
        "first_request_ms": median_ms("first_request"),
        "first_request_with_imports_ms": median_ms("with_imports"),
        "first_request_process_ms": median_ms("process"),
        "first_request_statuses": sorted({run["status"] for run in runs}),
        "token_calls": first["token_calls"],
    }
    checked = common.check(
        [common.Target("token_calls", "==", 0)],
        figures,
    )
    common.header(NAME, info, parameters)
    common.stdout.print(
        common.table(
            f"fresh interpreters, median of {repetitions}",
            ["measurement", "ms"],
            [
                ["import aiohttp", ms["aiohttp"]],
                ["import aiofinaccess (includes aiohttp)", ms["aiofinaccess"]],
                ["import ratio aiofinaccess / aiohttp", figures["import_ratio"]],
                ["process: python -c 'import aiohttp'", ms["aiohttp_process"]],
                ["process: python -c 'import aiofinaccess'", ms["aiofinaccess_process"]],
                ["first request, token restored from SQLite", figures["first_request_ms"]],
                ["  ... with the imports", figures["first_request_with_imports_ms"]],
                ["  ... whole process", figures["first_request_process_ms"]],
                ["token requests during the first requests", first["token_calls"]],
            ],
        )
    )
    common.stdout.print(common.targets_table(checked))
    common.write_json(
        args.json,
        common.payload(
            NAME,
            quick=args.quick,
            info=info,
            parameters=parameters,
            figures=figures,
            checked=checked,
            started=started,
        ),
    )


if __name__ == "__main__":
    main()
