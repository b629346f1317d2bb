"""The ``aiofinaccess`` command line (argparse: the standard library's parser is enough here).

Commands: ``demo``, ``sandbox``, ``login everifin|oidc``, ``tokens list|show|refresh|revoke|
delete|reseal``, ``users create``, ``config show|set-secret``, ``connections list`` and
``worker``. The global flags
(``--store``, ``--config``, ``-v``) go before or after the command. An expected failure prints
one line and exits 1; a bad option prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from .connections import add_connections_command
from .output import Output
from .sandbox import add_sandbox_command, serve_sandbox
from .worker import add_worker_command

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage itself is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _default_subject() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in a bare container
        return "default"


_ALL = ("everifin", "finapi", "oidc")
# Each provider setting: its flag, the provider kinds it applies to, and argparse's arguments.
_PROVIDER_OPTIONS: tuple[tuple[str, tuple[str, ...], dict[str, Any]], ...] = (
    ("--client-id", _ALL, {"help": "the OAuth client id"}),
    ("--client-secret", _ALL, {"help": "the client secret, or - to read it from stdin (a value "
        "here shows in the process list: prefer --client-secret-file or the environment)"}),
    ("--client-secret-file", _ALL, {"metavar": "PATH", "help": "read the client secret from PATH"}),
    ("--sandbox", ("everifin", "finapi"), {
        "metavar": "URL", "help": "the aiofinaccess sandbox at URL, with its public test client"}),
    ("--idp-url", ("everifin",), {"help": "Keycloak base URL, including /auth"}),
    ("--api-url", ("everifin",), {"help": "BankConnect base URL"}),
    ("--realm", ("everifin",), {"help": "Keycloak realm (default everifin_app)"}),
    ("--environment", ("everifin",), {
        "choices": ("stage", "production"), "help": "Everifin's hosts, without --idp-url"}),
    ("--base-url", ("finapi",), {"help": "finAPI base URL (default: finAPI's sandbox)"}),
    ("--api-version", ("finapi",), {"choices": ("v1", "v2"), "help": "finAPI API version"}),
    ("--issuer", ("oidc",), {"help": "issuer URL (the endpoints come by discovery)"}),
    ("--authorization-url", ("oidc",), {"help": "authorization endpoint"}),
    ("--token-url", ("oidc",), {"help": "token endpoint"}),
    ("--revocation-url", ("oidc",), {"help": "revocation endpoint"}),
    ("--logout-url", ("oidc",), {"help": "logout endpoint"}),
    ("--scope", ("everifin", "oidc"), {
        "dest": "scopes", "action": "append", "help": "a scope to ask for (repeatable)"}),
    ("--allow-insecure-http", _ALL, {
        "action": "store_true", "default": None, "help": "permit http:// beyond loopback"}),
)  # fmt: skip


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every command takes, before or after the command's name.

    On the top parser they have defaults; on each command's parser they are SUPPRESSed, so a
    flag given there wins and an absent one leaves the top value (argparse copies the
    sub-namespace over the top one). ``-v`` counts in both places (``-v users create -v``).
    """
    keep: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "--store",
        metavar="PATH|URL",
        help="token store: a SQLite path, a redis://, rediss://, unix://, redis+cluster:// "
        "or rediss+cluster:// URL, or a postgresql:// URL (default: $AIOFINACCESS_STORE, the "
        "config file's 'store', or $XDG_DATA_HOME/aiofinaccess/tokens.db)",
        **keep,
    )
    parser.add_argument(
        "--redis-password-file",
        metavar="PATH",
        help="read the Redis password from PATH (or set AIOFINACCESS_REDIS_PASSWORD; a "
        "password in --store shows in the process list)",
        **keep,
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML config file (default: $AIOFINACCESS_CONFIG, or "
        "$XDG_CONFIG_HOME/aiofinaccess/config.toml when it exists)",
        **keep,
    )
    parser.add_argument(
        "-v",
        "--verbose",
        dest="verbose" if top else "verbose_after",
        action="count",
        default=0,
        help="-v: aiofinaccess's own log; -vv: every library's log too",
    )


def _common_parser() -> _Parser:
    """The global options, for each command's parser."""
    common = _Parser(add_help=False)
    _global_options(common, top=False)
    return common


def _provider_parser(*kinds: str) -> _Parser:
    """The provider settings that apply to ``kinds``."""
    parser = _Parser(add_help=False)
    group = parser.add_argument_group(
        "provider settings",
        "Each may also come from AIOFINACCESS_<NAME>_<SETTING> (for example "
        "AIOFINACCESS_EVERIFIN_CLIENT_SECRET) or the config file's [providers.<name>] table.",
    )
    for flag, applies, options in _PROVIDER_OPTIONS:
        if set(kinds) & set(applies):
            group.add_argument(flag, **options)
    return parser


def _add_store_commands(commands: argparse._SubParsersAction[_Parser]) -> None:
    common = _common_parser()
    login = commands.add_parser(
        "login",
        help="log in through the browser and store the token set",
        description="Run the authorization-code flow (PKCE) with a loopback redirect to "
        "127.0.0.1 on a free port (RFC 8252), then store the token set.",
    )
    kinds = login.add_subparsers(dest="action", required=True, metavar="PROVIDER")
    for kind, text in (("everifin", "Everifin (Keycloak)"), ("oidc", "any OpenID Connect server")):
        sub = kinds.add_parser(
            kind,
            parents=[common, _provider_parser(kind)],
            help=f"log in at {text}",
            description=login.description,
        )
        if kind == "oidc":
            sub.add_argument("--name", required=True, help="the provider's name in the store")
            sub.set_defaults(type="oidc")
        else:
            sub.add_argument("--name", default="everifin", help="name in the store (everifin)")
        sub.add_argument("--subject", default=_default_subject(), help="whose tokens (your login)")
        sub.add_argument("--no-browser", action="store_true", help="only print the URL")
        sub.add_argument("--port", type=int, default=0, help="loopback port (default: free)")
        sub.add_argument("--timeout", type=_seconds, default=300.0, help="seconds to wait")

    tokens = commands.add_parser(
        "tokens",
        help="inspect and manage stored token sets (secrets never shown)",
        description="Token sets are shown by expiry and SHA-256 fingerprints, never by value.",
    )
    actions = tokens.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[common], help="list stored token sets")
    listing.add_argument("--provider", help="only this provider's sets")
    listing.add_argument("--json", action="store_true", help="print JSON")
    for action, text in (
        ("show", "details of one token set"),
        ("refresh", "renew a token set now"),
        ("revoke", "revoke a token set at the provider and delete it"),
        ("delete", "delete a token set from the store only"),
    ):
        parents = [common, _provider_parser(*_ALL)] if action in ("refresh", "revoke") else [common]
        sub = actions.add_parser(action, parents=parents, help=text, description=text + ".")
        sub.add_argument("provider", help="the provider's name in the store")
        sub.add_argument("subject", nargs="?", help="the user (omit for the client's own token)")
        sub.add_argument(
            "--client",
            metavar="ID",
            help="which client's own token, where tokens list shows several: (client ID)",
        )
        if action == "show":
            sub.add_argument("--json", action="store_true", help="print JSON")
        if action == "revoke":
            sub.add_argument("--logout", action="store_true", help="end the Keycloak session")

    actions.add_parser(
        "reseal",
        parents=[common],
        help="seal every stored set to its key (after upgrading an encrypted store)",
        description="Rewrite every token set sealed to its key. Run once, with "
        "AIOFINACCESS_ACCEPT_UNBOUND_RECORDS=1, after upgrading a store encrypted by an older "
        "aiofinaccess; then unset it.",
    )

    users = commands.add_parser("users", help="finAPI users")
    user_actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = user_actions.add_parser(
        "create",
        parents=[common, _provider_parser("finapi")],
        help="create a finAPI user with the client's token",
        description="Create a finAPI user (finAPI draws id and password when not given).",
    )
    create.add_argument("--name", default="finapi", help="the provider's name (finapi)")
    create.add_argument("--user-id", help="the new user's id")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    create.add_argument("--email", help="the user's email")
    create.add_argument("--phone", help="the user's phone number")
    create.add_argument("--login", action="store_true", help="log in and store the token set")
    create.add_argument(
        "--show-password",
        action="store_true",
        help="print the password finAPI generates (without it or --password-stdin nothing is "
        "created: the password would be lost)",
    )

    config = commands.add_parser(
        "config",
        help="the settings commands run with (secrets never shown)",
        description="Provider settings come from flags, AIOFINACCESS_* variables, the config "
        "file and, lowest, what a successful login remembered for the store.",
    )
    config_actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = config_actions.add_parser(
        "show", parents=[common], help="show the merged settings and where each came from"
    )
    show.add_argument("provider", nargs="?", help="only this provider")
    show.add_argument("--json", action="store_true", help="print JSON")
    set_secret = config_actions.add_parser(
        "set-secret",
        parents=[common],
        help="store a provider's client secret in the system keyring",
        description="Read the secret from stdin (without echo on a terminal) and store it in "
        "the system keyring; commands then use it when client_secret_keyring is true.",
    )
    set_secret.add_argument("provider", help="the provider's name")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="aiofinaccess", description="Async token layer for open-banking access APIs."
    )
    parser.add_argument("--version", action="version", version=f"aiofinaccess {_version()}")
    _global_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "demo",
        parents=[_common_parser()],
        help="walk the finAPI and Everifin flows on the embedded sandbox",
        description="Start the embedded sandbox and walk both providers' flows step by step: "
        "finAPI's client token, a new user and their token, a refresh, a Web Form import, "
        "accounts and transactions; Everifin's login, code exchange, accounts, transactions and "
        "rotating refreshes, and the sandbox refusing a replayed refresh token. Tokens are "
        "shown as fingerprints only. Needs no network or settings; the exit status is 1 if a "
        "step fails.",
    )
    add_sandbox_command(commands, _common_parser(), _seconds)
    _add_store_commands(commands)
    add_connections_command(commands, _common_parser())
    add_worker_command(commands, [_common_parser(), _provider_parser(*_ALL)], _seconds)
    return parser


def _run_store_command(args: argparse.Namespace, out: Output) -> int:
    """Run ``login``, ``tokens``, ``users``, ``config``, ``connections`` or ``worker``."""
    from . import commands, login, settings  # noqa: PLC0415
    from .config import load_config  # noqa: PLC0415
    from .connections import connections_list  # noqa: PLC0415

    if args.command == "worker":
        from .worker import run_worker  # noqa: PLC0415

        return _store_call(
            "aiofinaccess worker",
            lambda: run_worker(
                args,
                load_config(args.config, args.store, args.redis_password_file),
                out,
                commands.provider_flags(args),
            ),
            out,
        )
    run: Callable[..., Coroutine[Any, Any, int]] = {
        "login": login.login,
        "list": commands.tokens_list,
        "show": settings.config_show if args.command == "config" else commands.tokens_show,
        "delete": commands.tokens_delete,
        "reseal": commands.tokens_reseal,
        "refresh": commands.tokens_manage,
        "revoke": commands.tokens_manage,
        "create": commands.users_create,
        "set-secret": settings.config_set_secret,
        "connections": connections_list,
    }[args.command if args.command in ("login", "connections") else args.action]
    return _store_call(
        f"aiofinaccess {args.command} {args.action}",
        lambda: run(args, load_config(args.config, args.store, args.redis_password_file), out),
        out,
    )


def _store_call(where: str, call: Callable[[], Coroutine[Any, Any, int]], out: Output) -> int:
    """Run a store command; an expected failure is one line and exit code 1."""
    import aiohttp  # noqa: PLC0415  (fast --help)

    from ..core.errors import AiofinaccessError  # noqa: PLC0415

    try:
        return asyncio.run(call())
    except AiofinaccessError as exc:
        out.error(where, str(exc))
    except aiohttp.ClientError as exc:
        out.error(where, f"network error ({type(exc).__name__}: {exc})")
    except OSError as exc:
        out.error(where, exc.strerror or type(exc).__name__)
    except KeyboardInterrupt:
        out.error(where, "interrupted")
        return 130
    return 1


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("aiofinaccess")
    except PackageNotFoundError:  # pragma: no cover  (run from a bare checkout)
        return "unknown"


def _configure_logging(verbosity: int, out: Output) -> None:
    """Quiet by default; ``-v`` shows aiofinaccess's log, ``-vv`` every library's.

    Without ``-v`` only errors are logged: the SDK's warnings (a refused refresh, a user
    without tokens) would crowd the one-line error a command ends with. Like
    ``logging.basicConfig``, nothing changes when the root logger already has a handler (the
    host configured logging: ``main()`` called from a test or a program).
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler: logging.Handler
    if out.rich_err:
        from rich.logging import RichHandler  # noqa: PLC0415  (only with a terminal)

        handler = RichHandler(show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(out.err)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.ERROR)
    own = logging.getLogger("aiofinaccess")
    own.setLevel(logging.DEBUG if verbosity >= 1 else logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    out = Output()
    _configure_logging(args.verbose + getattr(args, "verbose_after", 0), out)
    if args.command in ("login", "tokens", "users", "config", "worker", "connections"):
        return _run_store_command(args, out)
    if args.command == "demo":
        from .demo import run  # noqa: PLC0415  (fast --help)

        return asyncio.run(run())
    if args.command == "sandbox":
        return asyncio.run(serve_sandbox(args))
    return 2  # pragma: no cover  (argparse rejects unknown commands first)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
