"""One ``__repr__`` for the attrs classes a first token loads.

attrs compiles a ``__repr__`` for every class it builds, the largest part of building one. A
class that assigns ``__repr__ = fields_repr`` in its body gets none compiled (attrs leaves a
method the class defines itself) and prints exactly what attrs' would: ``Name(field=value,
...)``, honouring ``attrs.field(repr=False)`` and ``repr=callable``.
"""

from __future__ import annotations

import attrs

__all__ = ["fields_repr"]


def fields_repr(self: attrs.AttrsInstance) -> str:
    """``self`` as attrs would show it."""
    cls = type(self)
    shown = []
    for field in attrs.fields(cls):
        if field.repr is False:
            continue
        value = getattr(self, field.name, attrs.NOTHING)
        text = field.repr(value) if callable(field.repr) else repr(value)
        shown.append(f"{field.name}={text}")
    return f"{cls.__qualname__.rsplit('>.', 1)[-1]}({', '.join(shown)})"
