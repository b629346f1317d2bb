"""The ``aiofinaccess`` command line (argparse: the standard library's parser is enough here)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiofinaccess", description="Async token layer for open-banking access APIs."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("demo", help="walk the finAPI and Everifin flows on the embedded sandbox")
    sandbox = commands.add_parser(
        "sandbox",
        help="run the offline finAPI + Everifin sandbox",
        description="Run the sandbox until SIGINT/SIGTERM. Prints its base URL when ready.",
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    sandbox.add_argument("--finapi-version", choices=("v1", "v2"), default="v2")
    ttl = sandbox.add_argument_group("lifetimes (seconds; 0 = never expires for finAPI)")
    ttl.add_argument("--finapi-client-ttl", type=_seconds, default=3600.0)
    ttl.add_argument("--finapi-user-ttl", type=_seconds, default=3600.0)
    ttl.add_argument("--keycloak-access-ttl", type=_seconds, default=300.0)
    ttl.add_argument("--sso-idle", type=_seconds, default=1800.0)
    ttl.add_argument("--sso-max", type=_seconds, default=36000.0)
    faults = sandbox.add_argument_group("fault injection (changeable later: POST /_sandbox/faults)")
    faults.add_argument(
        "--fault-rate", type=float, default=0.0, help="share of requests that fail, 0-1"
    )
    faults.add_argument("--fault-kinds", default="500,502,503,drop,malformed,html,429")
    faults.add_argument("--fault-scope", choices=("token", "api", "all"), default="all")
    faults.add_argument(
        "--latency", type=_seconds, default=0.0, help="seconds added to each request"
    )
    faults.add_argument("--retry-after", type=_seconds, default=1.0)
    sandbox.add_argument(
        "--seed", type=int, default=0, help="seed of the synthetic data and faults"
    )
    return parser


async def _serve_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import Faults, SandboxConfig, run_sandbox  # noqa: PLC0415  (fast --help)

    try:
        config = SandboxConfig(
            finapi_version=args.finapi_version,
            finapi_client_token_ttl=args.finapi_client_ttl,
            finapi_user_token_ttl=args.finapi_user_ttl,
            keycloak_access_ttl=args.keycloak_access_ttl,
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
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with run_sandbox(config, host=args.host, port=args.port) as sandbox:
            print(sandbox.base_url, flush=True)
            await stop.wait()
    except OSError as exc:
        print(
            f"aiofinaccess sandbox: cannot listen on {args.host}:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "demo":
        from .demo import run  # noqa: PLC0415  (fast --help)

        return asyncio.run(run())
    if args.command == "sandbox":
        return asyncio.run(_serve_sandbox(args))
    return 2  # pragma: no cover  (argparse rejects unknown commands first)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
