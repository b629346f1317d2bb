"""The cattrs converters of token sets: one that reveals secrets (for stores) and one that
redacts them (for people, built on first use).

Apart from :mod:`~aiofinaccess.core.tokens` because building them costs more than the rest of
the token module: only a durable store's codec, or a display, pays for it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Final

import cattrs
import cattrs.gen

from .tokens import REDACTED, Secret, TokenSet

__all__ = ["display_converter", "store_converter"]


def _generation(value: object, _type: object) -> int:
    # Decides whether a process writes its own set over the stored one (Reinstate): a stored
    # record is outside data, so "7", 2.9, true or -1 are refused, not coerced by int().
    if type(value) is not int or value < 0:
        raise TypeError(f"generation must be a non-negative integer, not {type(value).__name__}")
    return value


def _lineage(value: object, _type: object) -> str | None:
    # Refused rather than str()-ed: 12345 or ["a"] would name a session that never existed.
    if value is not None and type(value) is not str:
        raise TypeError(f"lineage must be a string or null, not {type(value).__name__}")
    return value


def _client_id(value: object, _type: object) -> str | None:
    # Decides which client may renew the set: a number or an empty name is refused, not coerced.
    if value is not None and (type(value) is not str or not value):
        raise TypeError(f"client_id must be a non-empty string or null, not {type(value).__name__}")
    return value


def _make_converter(*, reveal: bool) -> cattrs.Converter:
    converter = cattrs.Converter()
    if reveal:
        converter.register_unstructure_hook(Secret, Secret.reveal)
    else:
        converter.register_unstructure_hook(Secret, lambda _secret: REDACTED)
    converter.register_structure_hook(Secret, lambda value, _type: Secret(value))
    converter.register_structure_hook_func(
        lambda type_: type_ == Mapping[str, Any],
        lambda value, _type: dict(value) if isinstance(value, Mapping) else {},
    )
    omit_anchor = cattrs.gen.override(omit=True)
    converter.register_unstructure_hook(
        TokenSet, cattrs.gen.make_dict_unstructure_fn(TokenSet, converter, anchor=omit_anchor)
    )
    converter.register_structure_hook(
        TokenSet,
        cattrs.gen.make_dict_structure_fn(
            TokenSet,
            converter,
            anchor=omit_anchor,
            lineage=cattrs.gen.override(struct_hook=_lineage),
            generation=cattrs.gen.override(struct_hook=_generation),
            client_id=cattrs.gen.override(struct_hook=_client_id),
        ),
    )
    return converter


#: Converter for persisting token sets: reveals secrets. Only stores (and the encryption layer
#: in front of them) may use it.
store_converter: Final = _make_converter(reveal=True)


@functools.cache
def display_converter() -> cattrs.Converter:
    """The converter for showing token sets to people: every secret becomes ``'***'``.

    Built on first use: nothing on the token path shows a token set.
    """
    return _make_converter(reveal=False)
