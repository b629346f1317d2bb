"""Models that leave the SDK as JSON: what a web app returns to its own clients.

``to_dict()`` gives plain JSON values under the SDK's field names: dates and times in ISO 8601,
amounts as decimal strings (a float would round them), nested models and lists likewise; secrets
and the provider's ``raw`` fields are left out. FastAPI returns such a model as it is: without a
response model through ``jsonable_encoder`` (which turns an iterable of pairs into a dict), and
with the model as the route's return type through the pydantic schema hook below.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import attrs

from ..core.tokens import Secret

__all__ = ["JsonReady", "plain"]

_LEFT_OUT = frozenset({"raw"})  # the provider's own fields: on the model, not in its JSON


class JsonReady:
    """Mixin for the attrs models the resources return."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """The model as plain JSON values (see the module docstring)."""
        return {
            field.name: plain(value)
            for field in attrs.fields(type(self))  # type: ignore[arg-type]  # an attrs model's
            if field.name not in _LEFT_OUT
            and not isinstance(value := getattr(self, field.name), Secret)
        }

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """``dict(model) == model.to_dict()``: how ``jsonable_encoder`` reads an unknown type."""
        return iter(self.to_dict().items())

    @classmethod
    def __get_pydantic_core_schema__(cls, _source: Any, _handler: Any) -> Any:
        """The model as a FastAPI return type: accepted as it is, serialized by ``to_dict``."""
        from pydantic_core import core_schema  # noqa: PLC0415  (only pydantic calls this)

        return core_schema.is_instance_schema(
            cls,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda model: model.to_dict()
            ),
        )


def plain(value: Any) -> Any:
    """``value`` as JSON values: ISO dates, decimal strings, lists, string-keyed dicts."""
    if isinstance(value, JsonReady):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    return _scalar(value)


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return _scalar(value.value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):  # datetimes too
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} has no JSON form")
