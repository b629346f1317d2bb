"""No secret in the repr or str of any attrs class of the SDK's oauth, session, core, stores and
integrations packages.

Every field that can hold a secret (a :class:`Secret`, a :class:`TokenSet`, an OAuth
``state``, a PKCE verifier, a ``nonce``, or a URL whose query carries them) is filled with a
canary, every other field with ``None``, and the object's repr and str must not show it.
A new attrs class with such a field is covered automatically; a field that looks secret but is
not must be named in ``NOT_SECRET`` with the reason.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from yarl import URL

from aiofinaccess import ClientCredentials, Secret, TokenSet

CANARY = "c4n4ry-s3cret"
# Names of fields that carry a front-channel secret as plain text, or a URL that can.
SECRET_NAMES = frozenset({"state", "nonce", "code", "code_verifier", "verifier", "url", "token"})
SECRET_TYPES = ("Secret", "TokenSet", "ClientCredentials")
NOT_SECRET = {
    # A connection's state (ACTIVE, EXPIRING, ...: a ConnectionState), not an OAuth ``state``.
    ("aiofinaccess.api.everifin.session_state", "SessionStatus", "state"),
    ("aiofinaccess.api.finapi.consent", "ConnectionStatus", "state"),
    ("aiofinaccess.core.connections", "Notice", "state"),
    ("aiofinaccess.session.connection_events", "ReconnectRequired", "state"),
    ("aiofinaccess.session.connection_events", "ConnectionInfo", "state"),
    # A configured endpoint (token, revocation, API); its parameters go in ``query``, whose
    # repr shows names only.
    ("aiofinaccess.oauth.transport", "HttpRequest", "url"),
    # Seconds one token exchange may take, not a token.
    ("aiofinaccess.core.settings", "Timeouts", "token"),
    # Error codes a server sent ("ENTITY_NOT_FOUND"), not authorization codes.
    ("aiofinaccess.core.error_bodies", "FinApiErrorDetail", "code"),
    ("aiofinaccess.core.error_bodies", "EverifinErrorDetail", "code"),
    ("aiofinaccess.core.error_bodies", "WebFormErrorBody", "code"),
}
PACKAGES = ("oauth", "session", "core", "stores", "integrations")


def _attrs_classes() -> Iterator[type[Any]]:
    for name in PACKAGES:
        package = importlib.import_module(f"aiofinaccess.{name}")
        modules = [package.__name__]
        modules += [
            f"{package.__name__}.{info.name}" for info in pkgutil.iter_modules(package.__path__)
        ]
        for module_name in modules:
            module = importlib.import_module(module_name)
            for obj in vars(module).values():
                if inspect.isclass(obj) and attrs.has(obj) and obj.__module__ == module.__name__:
                    yield obj


def _secret_fields() -> list[tuple[type[Any], attrs.Attribute[Any]]]:
    found = []
    for cls in _attrs_classes():
        for field in attrs.fields(cls):
            typed = str(field.type)
            looks_secret = field.name in SECRET_NAMES or any(t in typed for t in SECRET_TYPES)
            if looks_secret and (cls.__module__, cls.__name__, field.name) not in NOT_SECRET:
                found.append((cls, field))
    return found


def _canary(field: attrs.Attribute[Any]) -> Any:
    typed = str(field.type)
    if "TokenSet" in typed:
        return TokenSet(
            access_token=Secret(CANARY), refresh_token=Secret(CANARY), id_token=Secret(CANARY)
        )
    if "ClientCredentials" in typed:
        return ClientCredentials("client-id", Secret(CANARY))
    if "Secret" in typed:
        return Secret(CANARY)
    if field.name == "url":
        url = f"https://idp.example/auth?state={CANARY}&nonce={CANARY}&code_verifier={CANARY}"
        return URL(url) if "URL" in typed else url
    return CANARY


def _harmless(field: attrs.Attribute[Any]) -> Any:
    """The field's default, else ``None``: a field's own repr function may need its type."""
    if field.name == "url":
        return "https://idp.example/auth"
    default = field.default
    if isinstance(default, attrs.Factory):
        return None if default.takes_self else default.factory()
    return None if default is attrs.NOTHING else default


def _instance(cls: type[Any], target: attrs.Attribute[Any]) -> Any:
    """``cls`` with ``target`` holding a canary and every other field harmless.

    Built without ``__init__`` (validators and converters would refuse ``None``): the repr
    reads the fields, whatever they hold.
    """
    instance = object.__new__(cls)
    for field in attrs.fields(cls):
        value = _canary(field) if field is target else _harmless(field)
        object.__setattr__(instance, field.name, value)
    return instance


def test_the_survey_finds_the_front_channel_classes() -> None:
    """A guard on the survey itself: it must see the fields this test exists for."""
    names = {(cls.__name__, field.name) for cls, field in _secret_fields()}
    assert {
        ("AuthorizationRequest", "url"),
        ("AuthorizationRequest", "state"),
        ("AuthorizationRequest", "code_verifier"),
        ("AuthorizationResponse", "code"),
        ("AuthorizationResponse", "state"),
        ("TokenSet", "access_token"),
        ("ClientCredentials", "client_secret"),
    } <= names


@pytest.mark.parametrize(
    ("cls", "field"),
    _secret_fields(),
    ids=lambda value: value.__name__ if inspect.isclass(value) else value.name,
)
def test_no_secret_in_repr_or_str(cls: type[Any], field: attrs.Attribute[Any]) -> None:
    instance = _instance(cls, field)
    for shown in (repr(instance), str(instance)):
        assert CANARY not in shown, f"{cls.__name__}.{field.name} shows a secret: {shown}"
