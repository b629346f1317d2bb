"""Reading a yes/no setting given as text (environment, config file, remembered settings).

Strictly: ``bool("false")`` is true, and a setting such as ``allow_insecure_http`` must never be
switched on by a word meant to switch it off. A TOML or JSON boolean is taken as it is; text
must be one of a few plain words; anything else is refused with the setting's name.
"""

from __future__ import annotations

from typing import Final

from ..core.errors import ConfigurationError

__all__ = ["BOOLEAN_FIELDS", "SettingValueError", "parse_bool"]

#: The provider settings that are booleans.
BOOLEAN_FIELDS: Final = frozenset({"allow_insecure_http", "client_secret_keyring"})
_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})


class SettingValueError(ConfigurationError):
    """A setting's value cannot be read as its type; the message names it and its source."""


def parse_bool(value: object, name: str, source: str) -> bool:
    """``value`` as a boolean: ``True``/``False``, or true/false, 1/0, yes/no, on/off as text
    (any letter case, surrounding blanks ignored).

    Raises:
        SettingValueError: Anything else (a number, an empty string, another word).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    raise SettingValueError(
        f"{name} ({source}) must be true or false (or 1/0, yes/no, on/off), not {shown}"
    )
