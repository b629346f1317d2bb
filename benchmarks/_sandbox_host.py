"""The sandbox in a helper process, with many Keycloak sessions seeded for many_sessions.py.

    .venv/bin/python benchmarks/_sandbox_host.py --sessions N --nonce HEX --first WALL \\
        --spread SECONDS --ttl SECONDS

Logging in 100,000 users through the login page would take minutes, and the sandbox has no
seeding endpoint, so this process builds the sandbox application itself
(:func:`aiofinaccess.sandbox.app.build_app`, as ``run_sandbox`` does) and registers, in its
Keycloak realm, one session per seeded token set: the session's current refresh token and
its access token with the expiry that ``_common.seeded_expiry`` gives. The benchmark derives
the very same tokens and expiries and writes them into its store, so the first refresh of
every set is an ordinary rotation the sandbox checks like any other.

One route is added under ``/_sandbox`` (which the sandbox's middleware neither faults nor
counts): ``POST /_sandbox/bench-verify`` with ``{"samples": [[token, wall_time], ...]}``
answers how many tokens were already expired at the time they were handed out, or unknown.

It binds 127.0.0.1 only, prints its base URL once seeded, and runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time

import _common as common
from aiohttp import web

from aiofinaccess.sandbox import SandboxConfig
from aiofinaccess.sandbox.app import SERVICES_KEY, build_app
from aiofinaccess.sandbox.keycloak import _Access, _Session
from aiofinaccess.sandbox.state import SandboxState


def seed(state: SandboxState, app: web.Application, args: argparse.Namespace) -> None:
    keycloak = app[SERVICES_KEY]["keycloak"]
    now = state.clock.now()
    client_id = state.config.everifin_client_id
    for index in range(args.sessions):
        access, refresh = common.seeded_tokens(args.nonce, index)
        session = _Session(
            id=common.seeded_session_id(args.nonce, index),
            user="alice",
            client_id=client_id,
            scope="ais",
            started=now,
            last_activity=now,
            current_refresh=refresh,
        )
        keycloak.sessions[session.id] = session
        keycloak.refresh[refresh] = session
        expiry = common.seeded_expiry(index, first=args.first, spread=args.spread)
        keycloak.access[access] = _Access(session, expiry)


def verify_route(state: SandboxState, app: web.Application) -> web.RouteDef:
    keycloak = app[SERVICES_KEY]["keycloak"]

    async def verify(request: web.Request) -> web.Response:
        body = await request.json()
        expired = unknown = 0
        samples = body["samples"]
        for token, handed_out_at in samples:
            access = keycloak.access.get(token)
            if access is None:
                unknown += 1
            elif access.expires_at <= handed_out_at + state.clock.offset:
                expired += 1
        return web.json_response({"checked": len(samples), "expired": expired, "unknown": unknown})

    return web.post("/_sandbox/bench-verify", verify)


async def serve(args: argparse.Namespace) -> None:
    state = SandboxState(
        SandboxConfig(keycloak_access_ttl=args.ttl, sso_idle=args.sso_idle, sso_max=args.sso_idle)
    )
    app = build_app(state)
    app.add_routes([verify_route(state, app)])
    started = time.monotonic()
    seed(state, app, args)
    seeded = time.monotonic() - started
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        print(f"http://{host}:{port}", flush=True)
        print(f"seeded {args.sessions} sessions in {seeded:.1f} s", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--nonce", required=True)
    parser.add_argument("--first", type=float, required=True, help="first expiry, wall clock")
    parser.add_argument("--spread", type=float, required=True, help="expiries spread, seconds")
    parser.add_argument("--ttl", type=float, required=True, help="access-token lifetime, s")
    parser.add_argument("--sso-idle", type=float, default=36000.0)
    args = parser.parse_args()
    if not 0 < args.sessions <= 1_000_000:
        parser.error("--sessions must be in 1..1,000,000")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
