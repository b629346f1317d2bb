"""The ``aiofinaccess`` command line (argparse: the standard library's parser is enough here).

Commands: ``demo``, ``sandbox``, ``login everifin|oidc``, ``tokens list|show|refresh|revoke|
delete`` and ``users create``. Settings come from flags, ``AIOFINACCESS_*`` environment
variables and an optional TOML file (:mod:`aiofinaccess.cli_config`); the commands themselves
live in :mod:`aiofinaccess.cli_commands`. An expected failure prints one line and exits 1; a
bad option prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

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
    ("--allow-insecure-http", ("everifin", "oidc"), {
        "action": "store_true", "default": None, "help": "permit http:// beyond loopback"}),
)  # fmt: skip


def _common_parser() -> _Parser:
    """The options every command that opens the token store takes."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--store",
        metavar="PATH",
        help="SQLite token store (default: $AIOFINACCESS_STORE, the config file's 'store', "
        "or $XDG_DATA_HOME/aiofinaccess/tokens.db)",
    )
    common.add_argument(
        "--config",
        metavar="FILE",
        help="TOML config file (default: $AIOFINACCESS_CONFIG, or "
        "$XDG_CONFIG_HOME/aiofinaccess/config.toml when it exists)",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log what happens")
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
        "--show-password", action="store_true", help="print a password finAPI generated"
    )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    _add_store_commands(commands)
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


def _run_store_command(args: argparse.Namespace) -> int:
    """Run ``login``, ``tokens`` or ``users``; expected failures become one line and exit 1."""
    import aiohttp  # noqa: PLC0415  (fast --help)

    from . import cli_commands as commands  # noqa: PLC0415
    from .cli_config import load_config  # noqa: PLC0415
    from .errors import AiofinaccessError  # noqa: PLC0415

    run: Callable[..., Coroutine[Any, Any, int]] = {
        "login": commands.login,
        "list": commands.tokens_list,
        "show": commands.tokens_show,
        "delete": commands.tokens_delete,
        "reseal": commands.tokens_reseal,
        "refresh": commands.tokens_manage,
        "revoke": commands.tokens_manage,
        "create": commands.users_create,
    }[args.action if args.command != "login" else "login"]
    where = f"aiofinaccess {args.command} {args.action}"
    try:
        return asyncio.run(run(args, load_config(args.config, args.store)))
    except AiofinaccessError as exc:
        print(f"{where}: {exc}", file=sys.stderr)
    except aiohttp.ClientError as exc:
        print(f"{where}: network error ({type(exc).__name__}: {exc})", file=sys.stderr)
    except OSError as exc:
        print(f"{where}: {exc.strerror or type(exc).__name__}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command in ("login", "tokens", "users"):
        # The SDK's warnings (a user without tokens...) would crowd the one-line errors.
        level = logging.DEBUG if args.verbose else logging.ERROR
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
        return _run_store_command(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "demo":
        from .demo import run  # noqa: PLC0415  (fast --help)

        return asyncio.run(run())
    if args.command == "sandbox":
        return asyncio.run(_serve_sandbox(args))
    return 2  # pragma: no cover  (argparse rejects unknown commands first)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
