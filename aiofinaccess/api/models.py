"""The converter between the providers' camelCase JSON and the SDK's attrs models.

Models are attrs classes with snake_case fields; this converter renames them to camelCase on
the wire, leaves out fields still at their default (request bodies send only what was set),
reveals :class:`~aiofinaccess.core.tokens.Secret` values only here (passwords and password-change
tokens must reach the provider), and ignores unknown response fields, so a provider adding one
does not break a client. A response that cannot be read raises
:class:`~aiofinaccess.core.errors.UnexpectedResponseError`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final, TypeVar

import attrs
import cattrs
import cattrs.gen

from ..core._json import parse_json
from ..core.errors import UnexpectedResponseError
from ..core.tokens import Secret

__all__ = ["api_converter", "camel", "format_instant", "read_model", "to_wire"]

_T = TypeVar("_T")


def camel(name: str) -> str:
    """``is_auto_update_enabled`` -> ``isAutoUpdateEnabled``."""
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def _renames(cls: type) -> dict[str, Any]:
    return {
        field.name: cattrs.gen.override(rename=camel(field.name)) for field in attrs.fields(cls)
    }


def _instant(value: Any, _type: Any) -> dt.datetime:
    """ISO 8601 with ``Z`` or an offset; a naive value is taken as UTC."""
    moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def format_instant(moment: dt.datetime) -> str:
    """``YYYY-MM-DDTHH:mm:ss.SSSZ`` in UTC, the form Everifin's filters take."""
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_unstructure_hook(Secret, Secret.reveal)
    converter.register_structure_hook(Secret, lambda value, _type: Secret(value))
    converter.register_structure_hook(dt.datetime, _instant)
    converter.register_unstructure_hook(dt.datetime, format_instant)
    converter.register_structure_hook(dt.date, lambda value, _type: dt.date.fromisoformat(value))
    converter.register_unstructure_hook(dt.date, dt.date.isoformat)
    # Amounts are money: go through their decimal text, never through binary floats.
    converter.register_structure_hook(Decimal, lambda value, _type: Decimal(str(value)))
    converter.register_unstructure_hook(Decimal, str)

    def unstructure_factory(cls: type) -> Callable[[Any], dict[str, Any]]:
        return cattrs.gen.make_dict_unstructure_fn(
            cls, converter, _cattrs_omit_if_default=True, **_renames(cls)
        )

    def structure_factory(cls: type) -> Callable[[Any, Any], Any]:
        return cattrs.gen.make_dict_structure_fn(cls, converter, **_renames(cls))

    converter.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    converter.register_structure_hook_factory(attrs.has, structure_factory)
    return converter


#: The wire converter for resource models.
api_converter: Final = _make_converter()


def to_wire(model: object) -> Any:
    """A model as the provider's JSON (camelCase, defaults left out, secrets revealed)."""
    return api_converter.unstructure(model)


def read_model(data: bytes | Any, cls: type[_T], *, what: str) -> _T:
    """Read a response body (bytes or decoded JSON) into ``cls``.

    Raises:
        UnexpectedResponseError: Not JSON, or not the shape of ``cls``.
    """
    try:
        document = parse_json(data) if isinstance(data, bytes | bytearray) else data
        return api_converter.structure(document, cls)
    except Exception as exc:  # json and cattrs raise several types; all mean "unreadable"
        raise UnexpectedResponseError(
            f"{what}: unexpected response ({type(exc).__name__})"
        ) from None
