"""``aiofinaccess config show`` and ``config set-secret``: the settings a command runs with.

Values are shown with their source (flag, environment, config file, remembered, sandbox); a
client secret only as the source it would come from, never its value.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from ..core.tokens import Secret
from .config import SECRET_FIELDS, CliError, Config, ProviderSettings
from .output import Output
from .secrets import secret_source, store_secret

__all__ = ["config_set_secret", "config_show"]


def _settings_record(settings: ProviderSettings) -> dict[str, Any]:
    """A provider's merged settings with their sources; the secret only as where it comes from."""
    values = {
        field: {"value": value, "source": settings.sources.get(field, "?")}
        for field, value in sorted(settings.values.items())
        if field not in SECRET_FIELDS
    }
    source = secret_source(settings.values)
    field = "client_secret_keyring" if source == "keyring" else source
    secret_from = settings.sources.get(field or "", "?")
    return {
        "name": settings.name,
        "kind": settings.kind,
        "settings": values,
        "client_secret": None if source is None else f"{source} ({secret_from})",
    }


async def config_show(args: argparse.Namespace, config: Config, out: Output) -> int:
    """The store, the config file and each provider's merged settings (no secret values)."""
    names = [args.provider] if args.provider else config.provider_names()
    records = [_settings_record(config.provider(name)) for name in names]
    remembered = config.settings_path
    if args.json:
        out.json(
            {
                "store": config.store.label,
                "remembered_settings": None if remembered is None else str(remembered),
                "providers": records,
            }
        )
        return 0
    if config.store.path is None:
        state = "PostgreSQL" if config.store.postgres else "Redis"
        kept = "none (kept beside a SQLite store only)"
    else:
        state = "exists" if config.store.exists() else "not created yet"
        kept = str(remembered)
    out.fields([("store", f"{config.store.label} ({state})"), ("remembered settings", kept)])
    if not records:
        out.echo("no provider settings yet: log in, or add [providers.NAME] to the config file")
    for record in records:
        out.echo()
        out.echo(f"{record['name']} ({record['kind']})")
        rows = [
            (field, str(item["value"]), item["source"])
            for field, item in record["settings"].items()
        ]
        rows.append(("client_secret", record["client_secret"] or "not set", ""))
        out.table(("SETTING", "VALUE", "SOURCE"), rows)
    return 0


async def config_set_secret(args: argparse.Namespace, config: Config, out: Output) -> int:
    """Read a client secret from stdin and store it in the system keyring."""
    if sys.stdin.isatty():
        text = getpass.getpass(f"client secret for {args.provider}: ")
    else:
        text = sys.stdin.readline().rstrip("\r\n")
    if not text:
        raise CliError("no secret given on stdin")
    store_secret(args.provider, Secret(text))
    out.success(
        f"stored the client secret of {args.provider} in the system keyring; set "
        f"client_secret_keyring = true for it (config file or AIOFINACCESS_"
        f"{args.provider.upper().replace('-', '_')}_CLIENT_SECRET_KEYRING=1)"
    )
    return 0
