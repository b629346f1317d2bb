"""The ``connections`` command: the fleet's bank connections, as the store keeps them.

``aiofinaccess connections list [--needs-action] [--provider NAME] [--json]`` opens the store
the other commands open and prints one row per connection; subjects are the app's user ids,
shown as stored (this is the operator's own store).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the parser is built on every run: the command's imports wait for it
    from ..session.connection_events import ConnectionInfo
    from .config import Config
    from .output import Output

__all__ = ["add_connections_command", "connections_list"]


def add_connections_command(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``connections list`` to the command parser."""
    connections = commands.add_parser(
        "connections",
        help="the bank connections the fleet knows (consent ends, reconnects)",
        description="Bank connections as the token store keeps them: state, next deadline.",
    )
    actions = connections.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[common], help="list known connections")
    listing.add_argument(
        "--needs-action", action="store_true", help="only those only the user can bring back"
    )
    listing.add_argument("--provider", help="only this provider's connections")
    listing.add_argument("--json", action="store_true", help="print JSON")


def _when(moment: dt.datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _record(row: ConnectionInfo) -> dict[str, object]:
    return {
        "provider": row.provider,
        "subject": row.subject,
        "connection": row.connection,
        "state": str(row.state),
        "needs_action": row.needs_action,
        "next_deadline": None if row.next_deadline is None else row.next_deadline.isoformat(),
        "expires_at": None if row.expires_at is None else row.expires_at.isoformat(),
        "episode": row.episode,
        "detail": row.detail,
    }


async def connections_list(args: argparse.Namespace, config: Config, out: Output) -> int:
    """One line per connection the store keeps."""
    from ..core.clock import SYSTEM_CLOCK  # noqa: PLC0415
    from ..session.connections import ConnectionRegistry  # noqa: PLC0415
    from .config import CliError  # noqa: PLC0415

    if not config.store.exists():
        raise CliError(f"no token store at {config.store.label}: no such file")
    async with contextlib.aclosing(config.open_store()) as store:
        registry = ConnectionRegistry(store, SYSTEM_CLOCK)
        every = await registry.list()
    known = {row.provider for row in every}
    rows = [
        row
        for row in every
        if args.provider in (None, row.provider) and (row.needs_action or not args.needs_action)
    ]
    if args.provider and args.provider not in known | set(config.provider_names()):
        # A typo would list nothing and succeed, like a provider with nothing to report.
        raise CliError(
            f"no provider {args.provider!r} in {config.store.label} or the config: "
            f"its connections are of {', '.join(sorted(known)) or 'no provider yet'}"
        )
    if args.json:
        out.json([_record(row) for row in rows])
        return 0
    if not rows:
        out.echo(f"no {'connections needing action' if args.needs_action else 'connections'} "
                 f"in {config.store.label}")  # fmt: skip
        return 0
    out.table(
        ("PROVIDER", "SUBJECT", "CONNECTION", "STATE", "NEXT DEADLINE", "ENDS"),
        [
            (
                row.provider,
                row.subject,
                row.connection or "(login)",
                str(row.state),
                _when(row.next_deadline),
                _when(row.expires_at),
            )
            for row in rows
        ],
    )
    return 0
