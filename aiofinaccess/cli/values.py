"""The types of the settings read from a file (the TOML config file, remembered settings).

An operator's typo (``encryption_keys = 5``, ``store = ["redis://..."]``) is refused with the
setting's name and its file, never str()-ed into a path (printed, with a password in it) nor
left to a traceback. Messages name the type found, never the value: it may be a secret.
Yes/no values are read by :mod:`aiofinaccess.cli.booleans`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final

from .booleans import BOOLEAN_FIELDS, SettingValueError

__all__ = ["check_config", "check_provider", "check_providers"]

#: Top-level settings that are text.
_TEXT: Final = ("store", "redis_prefix", "redis_password_file")
#: Provider settings that may be a list of text as well.
_LISTS: Final = frozenset({"scopes"})


def _kind(value: object) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "text" if isinstance(value, str) else f"a {type(value).__name__}"


def _refuse(name: str, source: str, wanted: str, value: object) -> SettingValueError:
    return SettingValueError(f"{name} ({source}) must be {wanted}, not {_kind(value)}")


def _is_texts(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def check_provider(
    table: object, name: str, source: str, fields: Collection[str] | None = None
) -> dict[str, Any]:
    """Provider ``name``'s table from ``source`` (only ``fields``, when given), each value of
    its field's type.

    Raises:
        SettingValueError: Not a table; a value that is not text (a list of text for
            ``scopes``, a boolean for a yes/no setting).
    """
    if not isinstance(table, Mapping):
        raise _refuse(f"providers.{name}", source, "a table", table)
    kept = {
        str(field): value for field, value in table.items() if fields is None or field in fields
    }
    for field, value in kept.items():
        setting = f"providers.{name}.{field}"
        if field in BOOLEAN_FIELDS and isinstance(value, bool | str):
            continue
        if field in _LISTS and _is_texts(value):
            continue
        if not isinstance(value, str):
            wanted = "text or a list of text" if field in _LISTS else "text"
            wanted = "true or false" if field in BOOLEAN_FIELDS else wanted
            raise _refuse(setting, source, wanted, value)
    return kept


def check_providers(
    value: object, source: str, fields: Collection[str] | None = None
) -> dict[str, dict[str, Any]]:
    """``providers`` from ``source``: a table of provider tables (``None``: none), with only
    ``fields`` when given.

    Raises:
        SettingValueError: Not a table, or a provider table that :func:`check_provider` refuses.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _refuse("providers", source, "a table of provider tables", value)
    return {
        str(name): check_provider(table, str(name), source, fields) for name, table in value.items()
    }


def check_config(data: Mapping[str, Any], source: str) -> None:
    """Refuse a config file whose settings have the wrong types.

    Raises:
        SettingValueError: ``store``, ``redis_prefix`` or ``redis_password_file`` not text,
            ``encryption_keys`` neither text nor a list of text, ``providers`` malformed.
    """
    for name in _TEXT:
        if name in data and not isinstance(data[name], str):
            raise _refuse(name, source, "text", data[name])
    keys = data.get("encryption_keys")
    if keys is not None and not isinstance(keys, str) and not _is_texts(keys):
        raise _refuse("encryption_keys", source, "text or a list of text", keys)
    check_providers(data.get("providers"), source)
