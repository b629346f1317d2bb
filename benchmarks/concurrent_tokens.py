"""C coroutines make authorized GETs while access tokens expire: aiofinaccess beside its peers.

    .venv/bin/python benchmarks/concurrent_tokens.py [--quick] [--json PATH]
        [--concurrency C] [--slice SECONDS] [--rounds R] [--ttl SECONDS] [--libraries ...]

The sandbox CLI runs in its own process on 127.0.0.1 and serves both the token endpoint
(Everifin's Keycloak realm: every refresh rotates the refresh token, and an old one is a
reuse violation) and the resource (``GET /v1/accounts``, which answers 401 to an expired
token). Every library starts from its own, new Keycloak session and keeps ONE token set
alive for C coroutines:

* ``raw``: aiohttp with a fixed ``Authorization`` header and a token minted with a lifetime
  of 10^9 s: the ceiling, no token logic at all;
* ``aiofinaccess``: ``SessionManager`` (scheduler on) and the ``BearerAuth`` middleware;
* ``aiofinaccess_header``: the same manager, ``await manager.access_token()`` and a header;
* ``httpx_raw``: httpx with a fixed header: the ceiling of Authlib's transport (Authlib uses
  ``httpx2`` when installed, as it asks, else ``httpx``; so does this row);
* ``authlib``: ``AsyncOAuth2Client`` with ``token_endpoint``, ``update_token`` and
  ``leeway``, its documented auto-refresh;
* ``aiohttp_oauth2_client``: ``OAuth2Middleware`` around a grant that refreshes.

Libraries take turns in slices of ``--slice`` seconds (one token lifetime; two in quick
mode), ``--rounds`` times (12; quick 1), in a rotated order, so that the load other
processes put on the machine falls on all of them alike; figures add up the slices, and the
per-round ratios are kept to show the noise. Each slice starts from a new login, and a
library's clients are closed at its end. Token calls are the sandbox's refresh-grant counter
over each slice; expiries are D / token lifetime, D the slice's length. All clients get one
connection per coroutine (aiohttp ``limit=C``, httpx ``max_connections=C``) and a 60 s
timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import math
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import _common as common
import aiohttp
from aiohttp.client_middlewares import build_client_middlewares
from yarl import URL

from aiofinaccess import (
    BearerAuth,
    ClientCredentials,
    Everifin,
    Oidc,
    RefreshPolicy,
    SessionManager,
    TokenSet,
)
from aiofinaccess.core.tokens import Anchor, parse_token_response

NAME = "concurrent_tokens"
SUBJECT = "bench-user"
#: Renew 5 % of the lifetime ahead (at least 0.5 s); a token counts as expired 0.3 s early,
#: which covers a request's time in flight at C=1000 (p99 well under 0.3 s at the ceiling).
POLICY = RefreshPolicy(lead_fraction=0.05, min_lead=0.5, expiry_margin=0.3)
#: Authlib compares whole seconds (``expires_at`` is an int): 1 s is its smallest leeway.
AUTHLIB_LEEWAY = 1
LIBRARIES = (
    "raw",
    "aiofinaccess",
    "aiofinaccess_header",
    "httpx_raw",
    "authlib",
    "aiohttp_oauth2_client",
)
#: Rows measured for context only: failing to run them is reported, not fatal.
PEERS = frozenset({"httpx_raw", "authlib", "aiohttp_oauth2_client"})
TIMEOUT = 60.0
#: A bound on each coroutine's loop besides the slice's deadline.
MAX_REQUESTS_PER_COROUTINE = 1_000_000

Fetch = Callable[[], Awaitable[int]]


@dataclass
class Context:
    base: str
    concurrency: int
    raw_token: str
    login: common.Login | None = None
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def resource(self) -> str:
        return f"{self.base}/v1/accounts"

    def connector(self) -> aiohttp.TCPConnector:
        return aiohttp.TCPConnector(limit=self.concurrency)

    def aiohttp_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=TIMEOUT)


@dataclass
class Tally:
    """What one library did, over all its slices."""

    requests: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    gc_seconds: float = 0.0
    sandbox_cpu_seconds: float = 0.0
    token_calls: int = 0
    expiries: float = 0.0
    rejected_401: int = 0
    reuse_violations: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    slice_rps: list[float] = field(default_factory=list)
    unavailable: str | None = None

    @property
    def rps(self) -> float:
        return common.ratio(self.requests, self.seconds)


def _aiohttp_fetch(http: aiohttp.ClientSession, url: str) -> Fetch:
    async def fetch() -> int:
        async with http.get(url) as response:
            await response.read()
            return response.status

    return fetch


# -- the libraries, each set up the way its documentation recommends ----------------------------


@contextlib.asynccontextmanager
async def raw(ctx: Context) -> AsyncIterator[Fetch]:
    headers = {"Authorization": f"Bearer {ctx.raw_token}"}
    async with aiohttp.ClientSession(
        connector=ctx.connector(), timeout=ctx.aiohttp_timeout(), headers=headers
    ) as http:
        yield _aiohttp_fetch(http, ctx.resource)


@contextlib.asynccontextmanager
async def _manager(ctx: Context) -> AsyncIterator[SessionManager]:
    assert ctx.login is not None  # noqa: S101  (every token library gets a login)
    async with SessionManager(policy=POLICY) as manager:
        manager.register(
            Everifin.at(ctx.base + "/auth", ctx.base),
            ClientCredentials(
                common.SANDBOX.everifin_client_id, common.SANDBOX.everifin_client_secret
            ),
        )
        sent = Anchor(ctx.login.sent_wall, ctx.login.sent_monotonic)
        await manager.store_token_set(
            "everifin", SUBJECT, parse_token_response(ctx.login.body, sent=sent)
        )
        yield manager


@contextlib.asynccontextmanager
async def aiofinaccess_middleware(ctx: Context) -> AsyncIterator[Fetch]:
    async with (
        _manager(ctx) as manager,
        aiohttp.ClientSession(
            connector=ctx.connector(),
            timeout=ctx.aiohttp_timeout(),
            middlewares=(BearerAuth(manager, "everifin", SUBJECT),),
        ) as http,
    ):
        yield _aiohttp_fetch(http, ctx.resource)


@contextlib.asynccontextmanager
async def aiofinaccess_header(ctx: Context) -> AsyncIterator[Fetch]:
    async with (
        _manager(ctx) as manager,
        aiohttp.ClientSession(connector=ctx.connector(), timeout=ctx.aiohttp_timeout()) as http,
    ):
        url = ctx.resource

        async def fetch() -> int:
            token = await manager.access_token("everifin", SUBJECT)
            async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
                await response.read()
                return response.status

        yield fetch


def _httpx() -> Any:
    """The httpx module Authlib sends with: ``httpx2`` when installed (Authlib asks for it)."""
    try:
        return importlib.import_module("httpx2")
    except ImportError:
        return importlib.import_module("httpx")


@contextlib.asynccontextmanager
async def httpx_raw(ctx: Context) -> AsyncIterator[Fetch]:
    httpx = _httpx()
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {ctx.raw_token}"},
        limits=httpx.Limits(
            max_connections=ctx.concurrency, max_keepalive_connections=ctx.concurrency
        ),
        timeout=TIMEOUT,
    ) as client:
        url = ctx.resource

        async def fetch() -> int:
            response = await client.get(url)
            return int(response.status_code)

        yield fetch


@contextlib.asynccontextmanager
async def authlib(ctx: Context) -> AsyncIterator[Fetch]:
    httpx = _httpx()
    from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]  # noqa: PLC0415
        AsyncOAuth2Client,
    )

    assert ctx.login is not None  # noqa: S101

    async def update_token(token: dict[str, Any], refresh_token: str | None = None) -> None:
        """Authlib's hook for persisting a refreshed token; nothing to persist here."""

    client = AsyncOAuth2Client(
        client_id=common.SANDBOX.everifin_client_id,
        client_secret=common.SANDBOX.everifin_client_secret,
        token=dict(ctx.login.body),
        token_endpoint=common.keycloak_token_url(ctx.base),
        update_token=update_token,
        leeway=AUTHLIB_LEEWAY,
        limits=httpx.Limits(
            max_connections=ctx.concurrency, max_keepalive_connections=ctx.concurrency
        ),
        timeout=TIMEOUT,
    )
    async with client:
        url = ctx.resource

        async def fetch() -> int:
            response = await client.get(url)
            return int(response.status_code)

        yield fetch


@contextlib.asynccontextmanager
async def aiohttp_oauth2_client(ctx: Context) -> AsyncIterator[Fetch]:
    from aiohttp_oauth2_client.grant.resource_owner_password_credentials import (  # type: ignore[import-untyped]  # noqa: PLC0415
        ResourceOwnerPasswordCredentialsGrant,
    )
    from aiohttp_oauth2_client.middleware import (  # type: ignore[import-untyped]  # noqa: PLC0415
        OAuth2Middleware,
    )

    assert ctx.login is not None  # noqa: S101
    # Its AuthorizationCodeGrant would open a browser and sends no client_id when refreshing,
    # which Keycloak refuses for a confidential client; this grant's refresh carries the
    # client's id and secret (its extra arguments). Given a token it never uses the password.
    grant = ResourceOwnerPasswordCredentialsGrant(
        token_url=common.keycloak_token_url(ctx.base),
        username="alice",
        password="unused",
        token=dict(ctx.login.body),
        client_id=common.SANDBOX.everifin_client_id,
        client_secret=common.SANDBOX.everifin_client_secret,
    )
    async with (
        grant,
        aiohttp.ClientSession(
            connector=ctx.connector(),
            timeout=ctx.aiohttp_timeout(),
            middlewares=(OAuth2Middleware(grant),),
        ) as http,
    ):
        yield _aiohttp_fetch(http, ctx.resource)


SETUPS: dict[str, Callable[[Context], AbstractAsyncContextManager[Fetch]]] = {
    "raw": raw,
    "aiofinaccess": aiofinaccess_middleware,
    "aiofinaccess_header": aiofinaccess_header,
    "httpx_raw": httpx_raw,
    "authlib": authlib,
    "aiohttp_oauth2_client": aiohttp_oauth2_client,
}


# -- the SDK's own cost per request, without a network --------------------------------------------


async def sdk_overhead(calls: int, rounds: int = 5) -> dict[str, float]:
    """Nanoseconds the SDK adds to one request, measured in-process (median of ``rounds``).

    A handler that answers at once stands in for aiohttp's connect-and-send; it is awaited bare,
    through ``BearerAuth`` (with aiohttp's own middleware wrapper, built per request as aiohttp
    does), and after ``access_token()`` plus building the header. Machine load barely moves
    these figures, unlike the throughput of two processes sharing two cores.
    """
    provider = Oidc.endpoints(
        name="bench", token_url="https://idp.example.com/token", api_url="http://127.0.0.1:9/v1"
    )
    samples: dict[str, list[float]] = {"bearer_auth": [], "access_token_header": []}
    async with SessionManager() as manager:
        manager.register(provider, ClientCredentials("c", "s"))
        now = time.time()
        token_set = TokenSet(access_token="x" * 38, issued_at=now, expires_at=now + 3600)
        await manager.store_token_set("bench", SUBJECT, token_set)
        auth = BearerAuth(manager, "bench", SUBJECT)
        request = aiohttp.ClientRequest(
            "GET", URL("http://127.0.0.1:9/v1/accounts"), loop=asyncio.get_running_loop()
        )

        class Answer:
            status = 200

        answer = Answer()

        async def handler(request: aiohttp.ClientRequest) -> Any:
            return answer

        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(calls):
                await handler(request)
            bare = time.perf_counter() - started
            started = time.perf_counter()
            for _ in range(calls):
                await build_client_middlewares(handler, (auth,))(request)
            samples["bearer_auth"].append(time.perf_counter() - started - bare)
            started = time.perf_counter()
            for _ in range(calls):
                token = await manager.access_token("bench", SUBJECT)
                headers = {"Authorization": f"Bearer {token}"}
                await handler(request)
            samples["access_token_header"].append(time.perf_counter() - started - bare)
        del headers
    return {name: statistics.median(values) / calls * 1e9 for name, values in samples.items()}


# -- the load -------------------------------------------------------------------------------------


async def load(fetch: Fetch, concurrency: int, seconds: float, tally: Tally) -> tuple[int, float]:
    """``concurrency`` coroutines call ``fetch`` until ``seconds`` pass; (successes, elapsed)."""
    deadline = time.monotonic() + seconds
    done = 0
    latencies = tally.latencies
    errors = tally.errors

    async def worker() -> None:
        nonlocal done
        for _ in range(MAX_REQUESTS_PER_COROUTINE):
            if time.monotonic() >= deadline:
                return
            started = time.perf_counter()
            try:
                status = await fetch()
            except Exception as exc:  # a peer may raise anything; it is counted, not fatal
                errors[type(exc).__name__] += 1
                await asyncio.sleep(0.01)
                continue
            if status == 200:
                latencies.append(time.perf_counter() - started)
                done += 1
            else:
                errors[f"HTTP {status}"] += 1

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.monotonic() - started


async def run_slice(
    library: str,
    ctx: Context,
    control: aiohttp.ClientSession,
    server: common.Server,
    *,
    seconds: float,
    ttl: float,
    tally: Tally,
) -> float:
    """One library for one slice; returns its requests per second."""
    fixed = library in ("raw", "httpx_raw")
    ctx.login = None if fixed else await common.keycloak_login(control, ctx.base)
    before = await common.sandbox_stats(control, ctx.base)
    cpu, sandbox_cpu = common.cpu_seconds(), server.cpu_seconds()
    try:
        async with SETUPS[library](ctx) as fetch:
            with common.gc_pauses() as pauses:
                done, elapsed = await load(fetch, ctx.concurrency, seconds, tally)
            tally.gc_seconds += sum(pause for _, pause in pauses)
    except ImportError as exc:
        if library not in PEERS:
            raise
        tally.unavailable = f"not installed: {exc.name or exc}"
        return math.nan
    except Exception as exc:
        if library not in PEERS:
            raise
        tally.unavailable = f"failed: {type(exc).__name__}: {exc}"[:120]
        return math.nan
    after = await common.sandbox_stats(control, ctx.base)
    tally.cpu_seconds += common.cpu_seconds() - cpu
    tally.sandbox_cpu_seconds += server.cpu_seconds() - sandbox_cpu
    tally.requests += done
    tally.seconds += elapsed
    tally.token_calls += common.refresh_calls(after) - common.refresh_calls(before)
    tally.rejected_401 += common.api_calls(after, 401) - common.api_calls(before, 401)
    tally.reuse_violations += after["reuse_violations"] - before["reuse_violations"]
    if not fixed:
        tally.expiries += seconds / ttl  # D / lifetime: the load runs for D seconds
    rps = common.ratio(done, elapsed)
    tally.slice_rps.append(rps)
    return rps


async def measure(
    concurrency: int,
    slice_seconds: float,
    rounds: int,
    ttl: float,
    libraries: tuple[str, ...] = LIBRARIES,
) -> tuple[dict[str, Tally], list[dict[str, float]]]:
    tallies = {library: Tally() for library in LIBRARIES}
    for library in set(LIBRARIES) - set(libraries):
        tallies[library].unavailable = "not selected (--libraries)"
    per_round: list[dict[str, float]] = []
    async with (
        common.serve(
            common.sandbox_command("--keycloak-access-ttl", str(ttl)), name="sandbox"
        ) as server,
        aiohttp.ClientSession() as control,
    ):
        # The ceiling's token: minted while the realm issues 10^9-second tokens.
        await common.sandbox_configure(control, server.url, keycloak_access_ttl=1e9)
        raw_login = await common.keycloak_login(control, server.url)
        await common.sandbox_configure(control, server.url, keycloak_access_ttl=ttl)
        ctx = Context(server.url, concurrency, raw_login.body["access_token"])
        with common.progress() as bar:
            total = slice_seconds * (rounds * len(libraries) + 0.5)
            task = bar.add_task("warm-up", total=total)
            started = time.monotonic()

            def tick(text: str) -> Callable[[], None]:
                return lambda: bar.update(
                    task, description=text, completed=time.monotonic() - started
                )

            warm = Tally()
            async with raw(ctx) as fetch:
                await asyncio.gather(
                    load(fetch, concurrency, slice_seconds / 2, warm),
                    common.until(time.monotonic() + slice_seconds / 2, tick("warm-up (raw)")),
                )
            for round_ in range(rounds):
                shift = round_ % len(libraries)
                order = libraries[shift:] + libraries[:shift]
                figures: dict[str, float] = {}
                for library in order:
                    if tallies[library].unavailable:
                        continue
                    label = f"round {round_ + 1}/{rounds}: {library}"
                    ticker = asyncio.ensure_future(
                        common.until(time.monotonic() + slice_seconds, tick(label))
                    )
                    try:
                        figures[library] = await run_slice(
                            library,
                            ctx,
                            control,
                            server,
                            seconds=slice_seconds,
                            ttl=ttl,
                            tally=tallies[library],
                        )
                    finally:
                        ticker.cancel()
                        await asyncio.gather(ticker, return_exceptions=True)
                per_round.append(figures)
            bar.update(task, completed=total, description="done")
    return tallies, per_round


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def summarise(
    tallies: dict[str, Tally], per_round: list[dict[str, float]], overhead: dict[str, float]
) -> dict[str, Any]:
    rps = {library: tally.rps for library, tally in tallies.items()}

    def by_library(value: Callable[[Tally], Any]) -> dict[str, Any]:
        return {library: value(tally) for library, tally in tallies.items()}

    def per_round_ratio(a: str, b: str) -> list[float]:
        return [common.ratio(r[a], r[b]) for r in per_round if a in r and b in r]

    def cpu_per_request(tally: Tally) -> float:
        return common.ratio(tally.cpu_seconds, tally.requests) * 1e6

    return {
        "sdk_rps": rps["aiofinaccess"],
        "raw_rps": rps["raw"],
        "authlib_rps": rps["authlib"],
        "aiohttp_oauth2_rps": rps["aiohttp_oauth2_client"],
        "sdk_header_rps": rps["aiofinaccess_header"],
        "ratio_sdk_raw": common.ratio(rps["aiofinaccess"], rps["raw"]),
        "ratio_sdk_authlib": common.ratio(rps["aiofinaccess"], rps["authlib"]),
        "ratio_sdk_header_raw": common.ratio(rps["aiofinaccess_header"], rps["raw"]),
        "ratio_authlib_httpx_raw": common.ratio(rps["authlib"], rps["httpx_raw"]),
        "httpx_raw_rps": rps["httpx_raw"],
        "ratio_sdk_raw_per_round": per_round_ratio("aiofinaccess", "raw"),
        "ratio_sdk_raw_median_of_rounds": median(per_round_ratio("aiofinaccess", "raw")),
        "ratio_sdk_header_raw_median_of_rounds": median(
            per_round_ratio("aiofinaccess_header", "raw")
        ),
        "ratio_sdk_header_raw_per_round": per_round_ratio("aiofinaccess_header", "raw"),
        "token_calls": by_library(lambda t: t.token_calls),
        "expiries": by_library(lambda t: t.expiries),
        "token_calls_per_expiry": by_library(lambda t: common.ratio(t.token_calls, t.expiries)),
        "errors": by_library(lambda t: sum(t.errors.values())),
        "error_kinds": by_library(lambda t: dict(t.errors)),
        "latency_p50_ms": by_library(lambda t: common.percentile(t.latencies, 50) * 1e3),
        "latency_p99_ms": by_library(lambda t: common.percentile(t.latencies, 99) * 1e3),
        "requests": by_library(lambda t: t.requests),
        "seconds": by_library(lambda t: t.seconds),
        "client_cpu_us_per_request": by_library(cpu_per_request),
        # Of which the cyclic garbage collector (gc.callbacks), during the load.
        "client_gc_us_per_request": by_library(
            lambda t: common.ratio(t.gc_seconds, t.requests) * 1e6
        ),
        "sandbox_cpu_percent": by_library(
            lambda t: common.ratio(t.sandbox_cpu_seconds, t.seconds) * 100
        ),
        "rejected_401": by_library(lambda t: t.rejected_401),
        "reuse_violations": by_library(lambda t: t.reuse_violations),
        "unavailable": {lib: t.unavailable for lib, t in tallies.items() if t.unavailable},
        "sdk_overhead_ns_per_request": overhead,
        # What the SDK's own cost would do to throughput if the client's CPU were the limit.
        "ratio_sdk_raw_cpu_bound": common.ratio(
            cpu_per_request(tallies["raw"]),
            cpu_per_request(tallies["raw"]) + overhead["bearer_auth"] / 1e3,
        ),
    }


TARGETS = (
    common.Target("ratio_sdk_raw", ">=", 0.95),
    common.Target("token_calls_per_expiry.aiofinaccess", "==", 1.0),
    common.Target("errors.aiofinaccess", "==", 0),
)


def flat(figures: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in figures.items():
        if isinstance(value, dict):
            out.update({f"{key}.{inner}": item for inner, item in value.items()})
        else:
            out[key] = value
    return out


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--concurrency", type=int, help="coroutines (default 1000; quick 200)")
    parser.add_argument("--ttl", type=float, help="access-token lifetime, s (default 5; quick 3)")
    parser.add_argument(
        "--slice", type=float, help="seconds per library per round (default ttl; quick 2 x ttl)"
    )
    parser.add_argument("--rounds", type=int, help="rounds (default 12; quick 1)")
    parser.add_argument(
        "--libraries", nargs="+", choices=LIBRARIES, default=list(LIBRARIES), help="rows to run"
    )
    args = parser.parse_args()
    concurrency = args.concurrency or (200 if args.quick else 1000)
    ttl = args.ttl or (3.0 if args.quick else 5.0)
    slice_seconds = args.slice or (2 * ttl if args.quick else ttl)
    rounds = args.rounds or (1 if args.quick else 12)
    if not (1 <= concurrency <= 5000 and 1 <= rounds <= 100 and ttl >= 2 and slice_seconds > 0):
        parser.error("need 1 <= concurrency <= 5000, 1 <= rounds <= 100, ttl >= 2")
    parameters = {
        "concurrency": concurrency,
        "token_lifetime_s": ttl,
        "slice_s": slice_seconds,
        "rounds": rounds,
        "seconds_per_library": slice_seconds * rounds,
        "token": "Everifin Keycloak realm, refresh-token rotation (one session per library)",
        "resource": "GET /v1/accounts on the sandbox (401 for an expired token)",
        "sdk_policy": "RefreshPolicy(lead_fraction=0.05, min_lead=0.5, expiry_margin=0.3)",
        "authlib_leeway_s": AUTHLIB_LEEWAY,
    }
    run = common.Run(NAME, args)
    overhead = asyncio.run(sdk_overhead(20_000 if args.quick else 200_000))
    tallies, per_round = asyncio.run(
        measure(concurrency, slice_seconds, rounds, ttl, tuple(args.libraries))
    )
    figures = summarise(tallies, per_round, overhead)
    checked = common.check(TARGETS, flat(figures))

    run.header(parameters)
    rows: list[list[Any]] = []
    for library, tally in tallies.items():
        if tally.unavailable:
            rows.append([library, f"[yellow]{tally.unavailable}[/]", *["-"] * 9])
            continue
        raw_share = common.ratio(tally.rps, tallies["raw"].rps)
        rows.append(
            [
                library,
                tally.rps,
                raw_share,
                figures["latency_p50_ms"][library],
                figures["latency_p99_ms"][library],
                tally.token_calls,
                tally.expiries or None,
                figures["token_calls_per_expiry"][library] if tally.expiries else None,
                sum(tally.errors.values()),
                figures["client_cpu_us_per_request"][library],
                figures["client_gc_us_per_request"][library],
            ]
        )
    common.stdout.print(
        common.table(
            f"{concurrency} coroutines, {ttl:g}-s access tokens, "
            f"{rounds} x {slice_seconds:g} s per library",
            [
                "library",
                "req/s",
                "x raw",
                "p50 ms",
                "p99 ms",
                "token calls",
                "expiries",
                "calls/expiry",
                "errors",
                "client CPU us/req",
                "of which GC",
            ],
            rows,
        )
    )
    run.finish(parameters, figures, checked)


if __name__ == "__main__":
    main()
