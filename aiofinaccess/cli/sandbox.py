"""``aiofinaccess sandbox``: its options, and serving it until SIGINT or SIGTERM.

The first line printed is the sandbox's base URL (scripts and the benchmarks read it); then
its public test clients, users and registered redirect URIs, for a person to copy.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["add_sandbox_command", "serve_sandbox"]

#: argparse fills in the default (a float shown as given: 3600 rather than 3600.0).
_DEFAULT = "(default: %(default)g)"
_TEXT_DEFAULT = "(default: %(default)s)"
#: The sandbox's fault kinds (aiofinaccess.sandbox.FAULT_KINDS, not imported: --help stays fast).
_FAULT_KINDS = ("500", "502", "503", "drop", "malformed", "html", "429", "timeout")


def add_sandbox_command(
    commands: argparse._SubParsersAction[Any],
    common: argparse.ArgumentParser,
    seconds: Callable[[str], float],
) -> None:
    """Add ``sandbox`` and its options to ``commands``."""
    sandbox = commands.add_parser(
        "sandbox",
        parents=[common],
        help="run the offline finAPI + Everifin sandbox",
        description="Run the sandbox until SIGINT/SIGTERM. Prints its base URL when ready.",
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    sandbox.add_argument("--finapi-version", choices=("v1", "v2"), default="v2")
    ttl = sandbox.add_argument_group("lifetimes (seconds; 0 = never expires for finAPI)")
    for flag, default, text in (
        ("--finapi-client-ttl", 3600.0, "finAPI's client token"),
        ("--finapi-user-ttl", 3600.0, "finAPI's user tokens"),
        ("--keycloak-access-ttl", 300.0, "Everifin's (Keycloak's) access tokens"),
        ("--sso-idle", 1800.0, "Keycloak's SSO Session Idle: a refresh token's lifetime"),
        ("--sso-max", 36000.0, "Keycloak's SSO Session Max: a login's whole lifetime"),
    ):
        ttl.add_argument(
            flag, type=seconds, default=default, metavar="SECONDS", help=f"{text} {_DEFAULT}"
        )
    ttl.add_argument(
        "--keycloak-max-reuse",
        type=int,
        default=0,
        metavar="N",
        help=f"Keycloak's Refresh Token Max Reuse: extra uses of the refresh token used last "
        f"{_DEFAULT}",
    )
    faults = sandbox.add_argument_group("fault injection (changeable later: POST /_sandbox/faults)")
    faults.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        metavar="RATE",
        help=f"share of requests that fail, 0-1 {_DEFAULT}",
    )
    faults.add_argument(
        "--fault-kinds",
        default=",".join(kind for kind in _FAULT_KINDS if kind != "timeout"),
        metavar="KIND,...",
        help=f"which failures to draw from; kinds: {', '.join(_FAULT_KINDS)} {_TEXT_DEFAULT}",
    )
    faults.add_argument(
        "--fault-scope",
        choices=("token", "api", "all"),
        default="all",
        help=f"the requests that may fail {_TEXT_DEFAULT}",
    )
    faults.add_argument(
        "--latency",
        type=seconds,
        default=0.0,
        metavar="SECONDS",
        help=f"seconds added to each request {_DEFAULT}",
    )
    faults.add_argument(
        "--retry-after",
        type=seconds,
        default=1.0,
        metavar="SECONDS",
        help=f"the Retry-After of a 429 or 503 {_DEFAULT}",
    )
    sandbox.add_argument(
        "--seed", type=int, default=0, help="seed of the synthetic data and faults"
    )
    sandbox.add_argument(
        "--redirect-uri",
        dest="redirect_uris",
        action="append",
        metavar="URI",
        help="a valid redirect URI of the Everifin client (repeatable; exact match, a trailing "
        "* matches by prefix, loopback on any port; default: loopback only)",
    )


def _sandbox_summary(sandbox: Any) -> str:
    """What a new user needs to connect: the test clients (they guard nothing real)."""
    config = sandbox.config
    users = ", ".join(f"{name}/{password}" for name, password in config.everifin_users.items())
    return "\n".join(
        (
            f"  finAPI   {sandbox.base_url}  (API {config.finapi_version})",
            f"           client id {config.finapi_client_id}, secret {config.finapi_client_secret}",
            f"  Everifin idp {sandbox.idp_url}  realm {config.realm}  api {sandbox.api_url}",
            f"           client id {config.everifin_client_id}, "
            f"secret {config.everifin_client_secret}",
            f"           redirect URIs {' '.join(config.everifin_redirect_uris)}",
            f"           users {users}",
            "  Stop with Ctrl-C.",
        )
    )


async def serve_sandbox(args: argparse.Namespace) -> int:
    """Run the sandbox until SIGINT/SIGTERM; print its URL, then its test clients."""
    from ..sandbox import Faults, SandboxConfig, run_sandbox  # noqa: PLC0415  (fast --help)

    try:
        config = SandboxConfig(
            finapi_version=args.finapi_version,
            finapi_client_token_ttl=args.finapi_client_ttl,
            finapi_user_token_ttl=args.finapi_user_ttl,
            keycloak_access_ttl=args.keycloak_access_ttl,
            keycloak_refresh_max_reuse=args.keycloak_max_reuse,
            sso_idle=args.sso_idle,
            sso_max=args.sso_max,
            seed=args.seed,
            faults=Faults(
                rate=args.fault_rate,
                kinds=tuple(kind.strip() for kind in args.fault_kinds.split(",") if kind.strip()),
                scope=args.fault_scope,
                latency=args.latency,
                retry_after=args.retry_after,
            ),
        )
    except ValueError as exc:
        print(f"aiofinaccess sandbox: {exc}", file=sys.stderr)
        return 2
    if args.redirect_uris:
        config.everifin_redirect_uris = tuple(args.redirect_uris)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with run_sandbox(config, host=args.host, port=args.port) as sandbox:
            print(sandbox.base_url, flush=True)  # first line: scripts read the URL from it
            print(_sandbox_summary(sandbox), flush=True)
            await stop.wait()
    except OSError as exc:
        print(
            f"aiofinaccess sandbox: cannot listen on {args.host}:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    return 0
