"""Messages name a setting as the user gave it: the flag, the variable or the file's key.

A provider setting's source is tracked when the settings are merged
(:meth:`aiofinaccess.cli.config.Config.provider`); :func:`origin` turns it back into what was
typed (``--idp-url``, ``AIOFINACCESS_EVERIFIN_IDP_URL``, ``[providers.everifin] idp_url in
the config file``). A URL the ``sandbox`` setting stands for is named as ``sandbox`` itself.
Every URL is parsed here, before a provider is built from it (:func:`check_urls`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from .booleans import SettingValueError

__all__ = ["URL_FIELDS", "allow_http", "check_urls", "environment_name", "origin"]

#: The provider settings that are URLs, in the order they are checked.
URL_FIELDS: Final = (
    "sandbox",
    "idp_url",
    "api_url",
    "base_url",
    "issuer",
    "authorization_url",
    "token_url",
    "revocation_url",
    "logout_url",
)
#: The flags whose name is not the setting's.
_FLAGS: Final = {"scopes": "--scope"}


def environment_name(provider: str, field: str) -> str:
    """The variable that sets ``field`` of ``provider``."""
    return f"AIOFINACCESS_{provider.upper().replace('-', '_')}_{field.upper()}"


def origin(provider: str, field: str, sources: Mapping[str, str]) -> str:
    """``field`` of ``provider`` named as it was given (by its source in ``sources``)."""
    source = sources.get(field)
    if source == "sandbox" and field != "sandbox":
        return origin(provider, "sandbox", sources)
    if source == "flag":
        return _FLAGS.get(field, "--" + field.replace("_", "-"))
    if source == "environment":
        return environment_name(provider, field)
    if source == "config file":
        return f"[providers.{provider}] {field} in the config file"
    if source == "remembered":
        return f"remembered {field}"  # aiofinaccess config show lists them
    return field


def allow_http(provider: str, sources: Mapping[str, str], field: str) -> str:
    """How to permit plain http, said in the terms ``field`` was given in."""
    source = sources.get(field)
    if source == "sandbox":
        source = sources.get("sandbox")
    if source == "environment":
        return f"set {environment_name(provider, 'allow_insecure_http')}=1"
    if source == "config file":
        return f"set allow_insecure_http = true in [providers.{provider}]"
    return "pass --allow-insecure-http"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_urls(
    provider: str, values: Mapping[str, Any], sources: Mapping[str, str], *, insecure: bool
) -> None:
    """Refuse a URL setting that is not an absolute http(s) URL with a host and a valid port,
    or (unless ``insecure``) is plain http off loopback.

    Raises:
        SettingValueError: Naming the flag, variable or file key the URL came from.
    """
    for field in URL_FIELDS:
        value = values.get(field)
        if value is None or value == "":
            continue
        where = origin(provider, field, sources)
        try:
            parts = urlsplit(str(value))
            _ = parts.port  # read lazily: a bad one raises only here
        except ValueError as exc:
            raise SettingValueError(f"{where} is not a URL that can be read ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingValueError(
                f"{where} must be an absolute http:// or https:// URL with a host"
            )
        if parts.scheme == "http" and not insecure and not _is_loopback(parts.hostname):
            raise SettingValueError(
                f"{where} uses plain http on a non-loopback host ({parts.hostname}): use "
                f"https, or {allow_http(provider, sources, field)}"
            )
