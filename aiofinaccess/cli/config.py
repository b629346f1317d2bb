"""Where the command line's settings come from: flags, then environment, then a TOML file.

Highest first: flags; ``AIOFINACCESS_*`` environment variables (per provider
``AIOFINACCESS_<NAME>_<FIELD>``); the config file (``$XDG_CONFIG_HOME/aiofinaccess/config.toml``,
one ``[providers.NAME]`` table per provider); then what a successful login remembered beside a
SQLite store (:mod:`aiofinaccess.cli.remembered`). The store is opened by
:mod:`aiofinaccess.cli.store`, secrets found by :mod:`aiofinaccess.cli.secrets`. Every source
and setting: docs/guides/cli.md.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import aiohttp
import attrs

from ..core.errors import AiofinaccessError, ConfigurationError
from ..core.tokens import ClientCredentials
from ..oauth.client import discover
from ..oauth.presets import Everifin, FinApi, Oidc
from ..oauth.providers import Provider
from ..stores.codec import FernetCodec
from .booleans import BOOLEAN_FIELDS, parse_bool
from .origins import allow_http, check_urls
from .remembered import read_remembered, write_remembered
from .secrets import client_secret, secret_source
from .store import StoreLocation, holds_secret, locate
from .values import check_config, check_providers

if TYPE_CHECKING:
    from ..stores.postgres import PostgresStore
    from ..stores.redis import RedisStore
    from ..stores.sqlite import SQLiteStore

__all__ = ["CliError", "Config", "ProviderSettings", "load_config"]

FIELDS: Final = (
    "type",
    "client_id",
    "client_secret",
    "idp_url",
    "api_url",
    "realm",
    "environment",
    "base_url",
    "api_version",
    "issuer",
    "authorization_url",
    "token_url",
    "revocation_url",
    "logout_url",
    "scopes",
    "allow_insecure_http",
    "client_secret_file",
    "client_secret_keyring",
    "sandbox",
)
#: Never written to the remembered settings (the other fields are not secret).
SECRET_FIELDS: Final = frozenset({"client_secret"})
_SECRET_SOURCES: Final = frozenset({"client_secret", "client_secret_file", "client_secret_keyring"})
#: The sandbox's own client, printed when it starts; it guards nothing real.
SANDBOX_CLIENTS: Final = {
    "everifin": ("everifin-sandbox-client", "everifin-sandbox-secret"),
    "finapi": ("finapi-sandbox-client", "finapi-sandbox-secret"),
}


_SANDBOX_IDS: Final = dict(SANDBOX_CLIENTS.values())
#: The source of a value that ``sandbox`` stands for (never remembered: it follows from it).
VIA_SANDBOX: Final = "sandbox"


class CliError(AiofinaccessError):
    """An expected failure of a command: printed as one line, exit code 1."""


def _home_dir(variable: str, fallback: str) -> Path:
    base = os.environ.get(variable) or str(Path.home() / fallback)
    return Path(base) / "aiofinaccess"


@attrs.frozen
class ProviderSettings:
    """One provider's settings after merging every source. ``client_secret`` is redacted."""

    name: str
    values: Mapping[str, Any] = attrs.field(repr=lambda v: "{" + ", ".join(sorted(v)) + "}")
    #: Where each value came from: ``flag``, ``environment``, ``config file``, ``remembered``
    #: or ``sandbox`` (the sandbox's public test client).
    sources: Mapping[str, str] = attrs.field(factory=dict, repr=False, eq=False)

    @property
    def kind(self) -> str:
        """``everifin``, ``finapi`` or ``oidc``."""
        kind = str(self.values.get("type") or self.name)
        return kind if kind in ("everifin", "finapi") else "oidc"

    def _get(self, field: str) -> str | None:
        value = self.values.get(field)
        return None if value in (None, "") else str(value)

    def credentials(self) -> ClientCredentials:
        """The client's id and secret (secret optional: public clients use PKCE alone)."""
        client_id = self._get("client_id")
        if client_id is None:
            env = f"AIOFINACCESS_{self.name.upper()}_CLIENT_ID"
            raise CliError(f"no client id for {self.name}: pass --client-id or set {env}")
        return ClientCredentials(client_id, client_secret(self.name, self.values, self.sources))

    def remembered(self) -> dict[str, Any]:
        """The settings worth keeping for the next command: not secret, not empty."""
        return {
            field: value
            for field, value in self.values.items()
            if field not in SECRET_FIELDS
            and value not in (None, "", [])
            and self.sources.get(field) != VIA_SANDBOX
        }

    def scopes(self) -> tuple[str, ...] | None:
        """The scopes to ask for, or ``None`` for the provider's defaults."""
        raw = self.values.get("scopes")
        if raw is None or raw == "":
            return None
        parts = raw.replace(",", " ").split() if isinstance(raw, str) else [str(s) for s in raw]
        return tuple(parts)

    def check(self) -> bool:
        """Check the URL settings (:func:`~aiofinaccess.cli.origins.check_urls`); whether
        plain http is allowed."""
        insecure = parse_bool(
            self.values.get("allow_insecure_http", False),
            "allow_insecure_http",
            self.sources.get("allow_insecure_http", "default"),
        )
        check_urls(self.name, self.values, self.sources, insecure=insecure)
        return insecure

    async def provider(self, session: aiohttp.ClientSession) -> Provider:
        """Build the provider (an OIDC issuer is discovered over ``session``)."""
        insecure = self.check()
        try:
            if self.kind == "everifin":
                idp, api = self._get("idp_url"), self._get("api_url")
                if idp is None:
                    production = self._get("environment") == "production"
                    idp = Everifin.PRODUCTION_IDP_URL if production else Everifin.STAGE_IDP_URL
                    api = api or (
                        Everifin.PRODUCTION_API_URL if production else Everifin.STAGE_API_URL
                    )
                realm = self._get("realm") or Everifin.DEFAULT_REALM
                scopes = self.scopes() or ("ais",)
                return Everifin.at(
                    idp,
                    api or idp,
                    realm=realm,
                    scopes=scopes,
                    name=self.name,
                    allow_insecure_http=insecure,
                )
            if self.kind == "finapi":
                version: Literal["v1", "v2"] = "v1" if self._get("api_version") == "v1" else "v2"
                base = self._get("base_url")
                if base is None:
                    return FinApi.sandbox(api_version=version, name=self.name)
                return FinApi.at(
                    base, api_version=version, name=self.name, allow_insecure_http=insecure
                )
            issuer = self._get("issuer")
            if issuer is not None and self._get("token_url") is None:
                try:
                    return await discover(
                        session,
                        issuer,
                        name=self.name,
                        default_scopes=self.scopes() or (),
                        allow_insecure_http=insecure,
                    )
                except ConfigurationError as exc:  # an endpoint the issuer's document names
                    hint = allow_http(self.name, self.sources, "issuer")
                    text = str(exc).replace("pass allow_insecure_http=True", hint)
                    raise CliError(f"{self.name}: {text}") from None
            token_url = self._get("token_url")
            if token_url is None:
                raise CliError(f"{self.name}: give --issuer, or --token-url and friends")
            return Oidc.endpoints(
                name=self.name,
                token_url=token_url,
                authorization_url=self._get("authorization_url"),
                revocation_url=self._get("revocation_url"),
                logout_url=self._get("logout_url"),
                issuer=issuer,
                scopes=self.scopes() or (),
                allow_insecure_http=insecure,
            )
        except TypeError as exc:  # e.g. a number where a URL belongs, from the config file
            raise CliError(f"{self.name}: a setting has the wrong type ({exc})") from None


@attrs.frozen
class Config:
    """The settings a command runs with."""

    store: StoreLocation
    file: Mapping[str, Any] = attrs.field(repr=False)
    encryption_keys: tuple[str, ...] = attrs.field(default=(), repr=False)
    #: Read encrypted records written before sealed records (only while migrating).
    accept_unbound: bool = False

    @property
    def store_path(self) -> Path | None:
        """The SQLite store's file (``None`` for a Redis store)."""
        return self.store.path

    @property
    def settings_path(self) -> Path | None:
        """Where the non-secret provider settings of this store are remembered (a SQLite
        store only)."""
        return self.store.settings_path

    def remembered(self) -> dict[str, dict[str, Any]]:
        """The provider settings remembered for this store, by provider name."""
        path = self.settings_path
        if path is None:
            return {}
        try:
            text = read_remembered(path)
            data = json.loads(text) if text is not None else {}
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read remembered settings {path}: {exc}") from None
        if not isinstance(data, dict):
            raise CliError(f"remembered settings {path} are not a JSON object: delete the file")
        kept = set(FIELDS) - SECRET_FIELDS  # another version's fields are left alone
        return check_providers(data.get("providers"), f"remembered settings {path}", kept)

    def remember(self, settings: ProviderSettings) -> bool:
        """Keep ``settings`` (secrets left out) for later commands on this store (mode 0600);
        ``False`` for a Redis store, which has no place for them."""
        path = self.settings_path
        if path is None:
            return False
        providers = self.remembered()
        providers[settings.name] = settings.remembered()
        write_remembered(path, {"providers": providers})
        return True

    def provider_names(self) -> list[str]:
        """Providers named in the config file or remembered for this store."""
        tables = self.file.get("providers", {})
        named = set(tables) if isinstance(tables, dict) else set()
        return sorted(named | set(self.remembered()))

    def provider(self, name: str, flags: Mapping[str, Any] | None = None) -> ProviderSettings:
        """Merge, lowest first: remembered, ``[providers.NAME]``, ``AIOFINACCESS_<NAME>_*``,
        ``flags``. ``sandbox`` (a URL) stands for the sandbox's endpoints in its layer and
        supplies its public test client when no client id is given."""
        tables = self.file.get("providers", {})
        from_file: dict[str, Any] = dict(tables.get(name, {}) if isinstance(tables, dict) else {})
        unknown = sorted(set(from_file) - set(FIELDS))
        if unknown:
            raise CliError(f"config file: [providers.{name}] has unknown keys {unknown}")
        prefix = f"AIOFINACCESS_{name.upper().replace('-', '_')}_"
        from_env = {
            field: value
            for field in FIELDS
            if (value := os.environ.get(prefix + field.upper())) is not None
        }
        given = {key: value for key, value in (flags or {}).items() if value not in (None, [])}
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        layers = (
            ("remembered", self.remembered().get(name, {})),
            ("config file", from_file),
            ("environment", from_env),
            ("flag", given),
        )
        for source, layer in layers:
            expanded = dict(layer)
            if layer.get("sandbox"):  # the sandbox's endpoints, unless the layer names others
                base = str(layer["sandbox"]).rstrip("/")
                urls = {"idp_url": f"{base}/auth", "api_url": base, "base_url": base}
                expanded = {**urls, **layer}
            if _SECRET_SOURCES & set(layer):  # one secret source: the highest layer's
                for field in _SECRET_SOURCES:
                    values.pop(field, None)
            values.update(expanded)
            sources.update({key: source if key in layer else VIA_SANDBOX for key in expanded})
        for field in BOOLEAN_FIELDS & set(values):  # text from the environment or a file
            where = f"of {name}, from the {sources.get(field, 'settings')}"
            if sources.get(field) == "environment":
                where = f"{prefix}{field.upper()}"
            values[field] = parse_bool(values[field], field, where)
        if values.get("sandbox"):  # its public test client, unless another one is named
            kind = str(values.get("type") or name)
            if not values.get("client_id"):
                default_id = SANDBOX_CLIENTS.get(kind, SANDBOX_CLIENTS["everifin"])[0]
                values["client_id"], sources["client_id"] = default_id, VIA_SANDBOX
            secret = _SANDBOX_IDS.get(values["client_id"])
            if secret is not None and secret_source(values) is None:
                values["client_secret"], sources["client_secret"] = secret, VIA_SANDBOX
        return ProviderSettings(name, values, sources)

    def open_store(self, prefix: str | None = None) -> SQLiteStore | RedisStore | PostgresStore:
        """The store (SQLite, Redis or PostgreSQL), encrypted when keys are set."""
        keys = list(self.encryption_keys)
        codec = FernetCodec(keys, accept_unbound=self.accept_unbound) if keys else None
        return self.store.open(codec, prefix)


def _holds_secrets(data: Mapping[str, Any]) -> bool:
    tables = data.get("providers")
    secrets = any(
        isinstance(table, Mapping) and table.get("client_secret")
        for table in (tables.values() if isinstance(tables, Mapping) else ())
    )
    store = data.get("store")
    password = isinstance(store, str) and holds_secret(store)
    return secrets or password or bool(data.get("encryption_keys"))


def _check_config_file(path: Path, info: os.stat_result, data: Mapping[str, Any]) -> None:
    """Refuse a config others can change, or whose secrets others can read; warn otherwise.

    Whoever can edit the file chooses the endpoints the client secret and codes go to, and
    a readable ``client_secret`` or ``encryption_keys`` is as good as published (ssh refuses
    such files for the same reasons). A symlinked config is judged by its target.
    """
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        raise CliError(f"config file {path} is writable by others: chmod go-w {path}")
    if info.st_uid not in (os.geteuid(), 0):
        raise CliError(f"config file {path} belongs to uid {info.st_uid}, not to us")
    if mode & 0o044:
        if _holds_secrets(data):
            raise CliError(
                f"config file {path} holds secrets and is readable by others: chmod 600 {path}"
            )
        sys.stderr.write(
            f"aiofinaccess: warning: config file {path} is readable by others "
            f"(chmod 600 {path} before putting secrets in it)\n"
        )


def load_config(
    config: str | None = None, store: str | None = None, redis_password_file: str | None = None
) -> Config:
    """Read the config file and resolve the store (flags first, then environment;
    :mod:`aiofinaccess.cli.store`).

    Raises:
        CliError: The config file named by a flag or the environment is missing or not TOML;
            others can write it, or read the secrets in it.
    """
    named = config or os.environ.get("AIOFINACCESS_CONFIG")
    path = Path(named) if named else _home_dir("XDG_CONFIG_HOME", ".config") / "config.toml"
    data: dict[str, Any] = {}
    if named or path.exists():
        try:
            with path.open("rb") as file:
                data = tomllib.load(file)
                _check_config_file(path, os.fstat(file.fileno()), data)
            check_config(data, f"config file {path}")
        except OSError as exc:
            raise CliError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise CliError(f"config file {path} is not valid TOML: {exc}") from None
    chosen = store or os.environ.get("AIOFINACCESS_STORE") or data.get("store")
    location = locate(
        chosen or None,
        data,
        from_flag=bool(store),
        password_file=redis_password_file,
    )
    raw_keys = os.environ.get("AIOFINACCESS_ENCRYPTION_KEYS") or data.get("encryption_keys", ())
    keys = raw_keys.split(",") if isinstance(raw_keys, str) else [str(k) for k in raw_keys]
    unbound = os.environ.get("AIOFINACCESS_ACCEPT_UNBOUND_RECORDS")
    if unbound is not None:
        accept_unbound = parse_bool(unbound, "accept_unbound_records", "environment")
    else:
        raw = data.get("accept_unbound_records", False)
        accept_unbound = parse_bool(raw, "accept_unbound_records", "config file")
    return Config(
        location,
        data,
        tuple(k.strip() for k in keys if k.strip()),
        accept_unbound=accept_unbound,
    )
