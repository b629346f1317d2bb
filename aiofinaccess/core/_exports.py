"""Lazy public namespaces (PEP 562): a name's module is imported the first time it is read.

Each namespace declares its names once, in a table of ``{module: "Name Name ..."}`` (modules
relative to the namespace's package, as in its imports); ``__all__`` and the module's
``__getattr__`` and ``__dir__`` come from that table. The namespace's ``if TYPE_CHECKING:``
imports (what mypy sees) are checked against the table by tests/test_lazy_imports.py.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping

__all__ = ["exported", "loader"]


def _order(name: str) -> tuple[bool, bool, str]:
    # isort's order: constants, then classes, then functions.
    return (not name.isupper(), not name[0].isupper(), name)


def exported(homes: Mapping[str, str]) -> list[str]:
    """The table's names, sorted as isort sorts them."""
    return sorted((name for names in homes.values() for name in names.split()), key=_order)


def loader(
    namespace: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for the module ``namespace``, loading from ``homes``."""
    home_of = {name: module for module, names in homes.items() for name in names.split()}

    def __getattr__(name: str) -> object:
        module = home_of.get(name)
        if module is None:
            raise AttributeError(f"module {namespace!r} has no attribute {name!r}")
        here = sys.modules[namespace]
        value = getattr(importlib.import_module(module, here.__package__), name)
        setattr(here, name, value)  # the next lookup is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[namespace]), *home_of})

    return __getattr__, __dir__
