"""``aiofinaccess worker``: run the refresh duty alone, until SIGTERM or SIGINT.

A session manager that serves nothing: it claims due token sets from the shared store and
renews them, keeping none in memory, with providers configured as for the other store
commands. On SIGTERM or SIGINT it stops claiming, lets every renewal in flight finish (a
redeemed set is always written), closes the store and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .config import CliError, Config, ProviderSettings
from .output import Output

if TYPE_CHECKING:
    from ..session.hub import ManagerStats

__all__ = ["add_worker_command", "run_worker"]


def add_worker_command(
    commands: argparse._SubParsersAction[Any],
    parents: list[argparse.ArgumentParser],
    seconds: Callable[[str], float],
) -> None:
    """Add ``worker`` to the command line."""
    worker = commands.add_parser(
        "worker",
        parents=parents,
        help="run the refresh duty: renew due token sets of a shared store until stopped",
        description="Claim due token sets from the store (a SQLite path, a Redis or PostgreSQL "
        "URL, from --store, AIOFINACCESS_STORE or the config file) and renew them, until SIGTERM "
        "or SIGINT; then let renewals in flight finish and exit 0. Provider flags apply to "
        "every --provider named.",
    )
    worker.add_argument(
        "--provider",
        dest="providers",
        action="append",
        metavar="NAME",
        help="a provider to renew sets of (repeatable; default: every provider named in the "
        "config file or remembered for the store)",
    )
    worker.add_argument(
        "--prefix",
        help="Redis key prefix (default: $AIOFINACCESS_REDIS_PREFIX, the config file's "
        "redis_prefix, or aiofinaccess:)",
    )
    worker.add_argument("--batch", type=int, default=100, help="sets claimed per store call")
    worker.add_argument("--concurrency", type=int, default=16, help="renewals at once")
    worker.add_argument("--poll", type=seconds, default=1.0, help="longest sleep between claims")
    worker.add_argument(
        "--gather",
        type=seconds,
        default=0.1,
        help="seconds due sets gather between claims (a fleet's claims stay few)",
    )
    worker.add_argument(
        "--claim-ttl",
        type=seconds,
        default=None,
        help="seconds a claim lasts (default: token timeout + 2 x 10 s lease)",
    )
    worker.add_argument(
        "--token-timeout", type=seconds, default=30.0, help="seconds one token exchange may take"
    )


def summary(stats: ManagerStats) -> str:
    """The exit line's counts. A claimed set that could not be read (a record the keys
    cannot decode, a store error) failed as surely as a refused renewal."""
    failed = stats.refresh_failures + stats.store_failures
    return f"{stats.duty_claimed} claimed, {stats.token_requests} token requests, {failed} failed"


async def run_worker(
    args: argparse.Namespace, config: Config, out: Output, flags: dict[str, Any]
) -> int:
    """Run the duty until a signal; returns the exit code."""
    from .. import Duty, Limits, SessionManager, Timeouts  # noqa: PLC0415  (fast --help)

    names = args.providers or config.provider_names()
    if not names:
        raise CliError("no provider to renew: name one with --provider or in the config file")
    settings: list[ProviderSettings] = [config.provider(name, flags) for name in names]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with SessionManager(
            store=config.open_store(args.prefix),
            duty=Duty(
                enabled=True,
                batch=args.batch,
                poll=args.poll,
                gather=args.gather,
                claim_ttl=args.claim_ttl,
            ),
            limits=Limits(
                working_set=max(1, 2 * args.concurrency), concurrent_refreshes=args.concurrency
            ),
            timeouts=Timeouts(token=args.token_timeout),
        ) as manager:
            for setting in settings:
                provider = await setting.provider(manager.http_session())
                manager.register(provider, setting.credentials())
            out.echo(f"worker started: renewing due sets of {', '.join(names)} (pid {os.getpid()})")
            # The fleet's connection notices: swept and redelivered once a minute (claims
            # keep each notice once, however many workers run this).
            watcher = asyncio.create_task(manager.connections.watch(every=60.0))
            try:
                await stop.wait()
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            out.echo("worker stopping: letting renewals in flight finish")
        out.success(f"worker stopped: {summary(manager.stats)}")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    return 0
