"""Plain immutable records for the small data classes a first token loads.

attrs compiles methods for every class it builds, most of the cost of importing a module of
small classes. A :class:`Record` subclass names its storage in ``__slots__`` and sets it in its
own ``__init__`` with :func:`object.__setattr__`; it is immutable, equal to a record of the same
class with equal fields (and hashed accordingly), shown as ``Name(field=value, ...)``, and
copied and pickled field by field. Its fields are its slots, or ``_fields`` where some slots
are derived from the others (compared and shown through the fields they come from).
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any, ClassVar, NoReturn

__all__ = ["Record", "slots_repr"]


class Record:
    """Immutable, compared and hashed by class and fields, shown as attrs shows a class."""

    __slots__: tuple[str, ...] = ()
    _fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls) -> None:
        if "_fields" not in cls.__dict__:
            cls._fields = cls.__slots__

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record) or type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({shown})"

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}")

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)


def slots_repr(state: object, hidden: Container[str] = ()) -> str:
    """``Name(field=value, ...)`` over the slots of a plain mutable class, but ``hidden``."""
    cls = type(state)
    names: tuple[str, ...] = cls.__slots__  # type: ignore[attr-defined]
    shown = ", ".join(f"{name}={getattr(state, name)!r}" for name in names if name not in hidden)
    return f"{cls.__name__}({shown})"
