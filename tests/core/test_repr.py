"""The shared ``__repr__`` prints what attrs' generated one would."""

from __future__ import annotations

import attrs

from aiofinaccess.core._repr import fields_repr
from aiofinaccess.core.tokens import TokenKey, TokenSet


@attrs.frozen
class _Generated:
    name: str
    hidden: str = attrs.field(default="h", repr=False)
    summary: dict[str, int] = attrs.field(factory=dict, repr=lambda value: f"<{len(value)}>")
    plain: float | None = None


@attrs.frozen
class _Shared:
    __repr__ = fields_repr

    name: str
    hidden: str = attrs.field(default="h", repr=False)
    summary: dict[str, int] = attrs.field(factory=dict, repr=lambda value: f"<{len(value)}>")
    plain: float | None = None


def test_it_prints_what_attrs_prints() -> None:
    generated = repr(_Generated("a'b", summary={"x": 1}, plain=1.5))
    assert repr(_Shared("a'b", summary={"x": 1}, plain=1.5)) == generated.replace(
        "_Generated", "_Shared"
    )
    assert generated == '_Generated(name="a\'b", summary=<1>, plain=1.5)'


def test_the_token_layer_uses_it_and_hides_secrets() -> None:
    assert TokenSet.__repr__ is fields_repr
    token_set = TokenSet("access-secret", refresh_token="refresh-secret", extra={"k": 1})
    shown = repr(token_set)
    assert "secret" not in shown
    assert shown.startswith("TokenSet(access_token=Secret('***'), token_type='Bearer'")
    assert repr(TokenKey("p", "u")) == "TokenKey(provider='p', subject='u', client=None)"
