"""Token sets, secret values, and the parsing of token-endpoint responses.

Every secret travels as a :class:`Secret`, which prints ``'***'``; only :meth:`Secret.reveal`
and the store converter (:mod:`aiofinaccess.core.convert`) let it out. A :class:`TokenSet`'s
expiry is anchored to the monotonic clock at the moment its request was sent
(:class:`Anchor`). See docs/architecture.md.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs

from ._record import Record
from ._repr import fields_repr
from .errors import ConfigurationError, TokenResponseError, UsageError

__all__ = [
    "REDACTED",
    "Anchor",
    "ClientCredentials",
    "Secret",
    "TokenKey",
    "TokenSet",
    "client_label",
    "parse_token_response",
]

REDACTED: Final = "***"


class Secret:
    """A string that refuses to print itself.

    ``repr()``, ``str()`` and f-strings all give ``'***'``; comparison is constant-time.
    Call :meth:`reveal` at the single place where the value must go on the wire.

    >>> token = Secret("eyJhbGciOi...")
    >>> f"{token}", repr(token)
    ('***', "Secret('***')")
    >>> token.reveal()
    'eyJhbGciOi...'
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        elif not isinstance(value, str):
            # The message names the type only: never the value.
            raise TypeError(f"Secret takes a str, not {type(value).__name__}")
        self._value: str = value

    def reveal(self) -> str:
        """Return the secret value itself. Use it only to put the value on the wire."""
        return self._value

    def fingerprint(self) -> str:
        """Return a short, stable SHA-256 prefix for correlating logs without the value."""
        return hashlib.sha256(self._value.encode()).hexdigest()[:12]

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return format(REDACTED, spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:
        # Pickling would copy the value into queues or caches we cannot see.
        raise TypeError("Secret values cannot be pickled; store them through a token store")


def _to_secret(value: str | Secret) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


def _to_optional_secret(value: str | Secret | None) -> Secret | None:
    return None if value is None else _to_secret(value)


# The short strings of keys and sets repeat across sets (a provider, a client, "Bearer", a
# scope, a provider's field names): each shares one copy, not the one it was decoded into.


def _shared(value: str) -> str:
    return sys.intern(value) if value.__class__ is str else value


def _shared_optional(value: str | None) -> str | None:
    return None if value is None else _shared(value)


@attrs.frozen(slots=True)
class ClientCredentials:
    """The OAuth client's identity at a provider.

    Args:
        client_id: The client id; not secret.
        client_secret: The client secret (a ``str`` is wrapped in :class:`Secret`). ``None``
            for public clients that rely on PKCE alone.
    """

    __repr__ = fields_repr

    client_id: str
    client_secret: Secret | None = attrs.field(default=None, converter=_to_optional_secret)

    def __attrs_post_init__(self) -> None:
        if not self.client_id:
            raise ConfigurationError("client_id must not be empty")


def _check_provider(_key: object, _attribute: object, provider: str) -> None:
    if not provider or ":" in provider:
        raise ValueError("a token key's provider must be a non-empty name without ':'")


def _check_subject(_key: object, _attribute: object, subject: str | None) -> None:
    if subject is not None and not isinstance(subject, str):  # 4242 and "4242": two users
        raise UsageError(
            f"a token key's subject must be a str, not {type(subject).__name__}: "
            "pass the app's user id as the same str every time"
        )
    if subject is not None and not subject:
        raise ValueError("a token key's subject must be a non-empty user id, or None")


class TokenKey(Record):
    """Names one token set: a provider and a subject.

    ``subject`` is ``None`` for the provider's *client* token (client credentials grant) and
    the end user's id otherwise. Keeping the client in its own slot means no user id, however
    it is spelled, can collide with the client token. A client token also names the client
    that holds it (``client``: its id and a fingerprint of its secret, see
    :func:`client_label`), so managers with other credentials sharing a store never take each
    other's client token.

    Raises:
        ValueError: An empty provider or one containing ``:``, or an empty subject.
        UsageError: A subject that is not a ``str`` (``4242`` and ``"4242"`` would name two).
    """

    __slots__ = ("provider", "subject", "client")  # noqa: RUF023  (shown and ordered so)
    provider: str
    subject: str | None
    client: str | None

    def __init__(
        self, provider: str, subject: str | None = None, *, client: str | None = None
    ) -> None:
        provider = _shared(provider)
        client = _shared_optional(client)
        _check_provider(self, None, provider)
        _check_subject(self, None, subject)
        object.__setattr__(self, "provider", provider)
        object.__setattr__(self, "subject", subject)
        object.__setattr__(self, "client", client)

    # Keys are dictionary keys and sorted in bulk: compared as one tuple, without the generic
    # record's field loop.
    def _key(self) -> tuple[str, str | None, str | None]:
        return (self.provider, self.subject, self.client)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not TokenKey:
            return NotImplemented
        assert isinstance(other, TokenKey)  # noqa: S101  (for mypy: the class was checked)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __lt__(self, other: TokenKey) -> bool:
        if other.__class__ is not TokenKey:
            return NotImplemented
        return self._key() < other._key()

    def __le__(self, other: TokenKey) -> bool:
        if other.__class__ is not TokenKey:
            return NotImplemented
        return self._key() <= other._key()

    def __gt__(self, other: TokenKey) -> bool:
        if other.__class__ is not TokenKey:
            return NotImplemented
        return self._key() > other._key()

    def __ge__(self, other: TokenKey) -> bool:
        if other.__class__ is not TokenKey:
            return NotImplemented
        return self._key() >= other._key()

    @property
    def is_client(self) -> bool:
        """True for the client's own token set."""
        return self.subject is None

    def __str__(self) -> str:
        if self.subject is not None:
            return f"{self.provider}:user:{self.subject}"
        return (
            f"{self.provider}:client"
            if self.client is None
            else f"{self.provider}:client:{self.client}"
        )

    @property
    def hashed(self) -> str:
        """A short hash of the key, for logs: user ids are personal data."""
        return hashlib.sha256(str(self).encode()).hexdigest()[:12]

    @classmethod
    def parse(cls, text: str) -> TokenKey:
        """Invert ``str(key)``.

        Raises:
            ValueError: ``text`` is not a token key.
        """
        provider, sep, rest = text.partition(":")
        if sep and rest == "client":
            return cls(provider)
        kind, sep2, tail = rest.partition(":")
        if sep and sep2 and tail and kind == "client":
            return cls(provider, client=tail)
        if not (sep and sep2 and kind == "user" and tail):
            raise ValueError("not a token key")
        return cls(provider, tail)


def client_label(client: ClientCredentials) -> str:
    """The client's identity as it appears in its token key: id and a secret's fingerprint.

    The fingerprint is a domain-separated SHA-256 prefix: it tells two secrets apart without
    revealing either.
    """
    secret = b"" if client.client_secret is None else client.client_secret.reveal().encode()
    digest = hashlib.sha256(b"aiofinaccess client secret\0" + secret).hexdigest()[:16]
    return f"{client.client_id}#{digest if client.client_secret is not None else 'public'}"


class Anchor(Record):
    """A wall-clock instant paired with the monotonic reading taken at the same moment."""

    __slots__ = ("wall", "monotonic")  # noqa: RUF023  (shown in this order)
    wall: float
    monotonic: float

    def __init__(self, wall: float, monotonic: float) -> None:
        object.__setattr__(self, "wall", wall)
        object.__setattr__(self, "monotonic", monotonic)

    def to_monotonic(self, wall_time: float) -> float:
        """Translate a wall-clock instant into this anchor's monotonic timeline."""
        return self.monotonic + (wall_time - self.wall)

    @classmethod
    def aged(cls, issued_at: float, age: float, monotonic: float) -> Anchor:
        """The anchor of a set issued at ``issued_at`` (on its writer's wall clock) that was
        ``age`` seconds old at the reading ``monotonic``: no other wall clock is involved, so
        the reader's may be as wrong as it likes."""
        return cls(wall=issued_at, monotonic=monotonic - age)


def _summarise_extra(extra: Mapping[str, object]) -> str:
    return "{" + ", ".join(sorted(extra)) + "}"


_NO_EXTRA: Final[Mapping[str, Any]] = MappingProxyType({})


class _Extra(dict[str, Any]):
    """``extra`` as a set keeps it: copies of the set (:meth:`TokenSet.with_anchor`) share it."""

    __slots__ = ()


def _extra(extra: Mapping[str, Any]) -> Mapping[str, Any]:
    """``extra`` with shared field names; one shared empty mapping."""
    if extra.__class__ is _Extra or extra is _NO_EXTRA:
        return extra
    if not extra:
        return _NO_EXTRA
    return _Extra({_shared(name): value for name, value in extra.items()})


@attrs.frozen(slots=True)
class TokenSet:
    """One grant's tokens, as the provider issued them.

    All instants are UNIX seconds (UTC). ``expires_at`` is ``None`` when the access token
    never expires (finAPI's ``expires_in: 0``); ``refresh_expires_at`` is ``None`` when the
    provider did not say.

    The repr shows expiry and which tokens are present, never a token.
    """

    __repr__ = fields_repr

    access_token: Secret = attrs.field(converter=_to_secret)
    token_type: str = attrs.field(default="Bearer", converter=_shared)
    issued_at: float = 0.0
    expires_at: float | None = None
    refresh_token: Secret | None = attrs.field(default=None, converter=_to_optional_secret)
    refresh_expires_at: float | None = None
    scope: str | None = attrs.field(default=None, converter=_shared_optional)
    id_token: Secret | None = attrs.field(default=None, converter=_to_optional_secret)
    extra: Mapping[str, Any] = attrs.field(
        default=_NO_EXTRA, converter=_extra, repr=_summarise_extra
    )
    #: Where ``issued_at`` sits on the monotonic clock of this process. Not persisted: a
    #: restored token set is re-anchored by its age, which a store with a clock of its own
    #: measures (see :class:`~aiofinaccess.stores.Versioned`), else on the restoring process's
    #: wall clock.
    anchor: Anchor | None = attrs.field(default=None, eq=False, repr=False)
    #: The session the set belongs to and how many renewals it is into it (persisted): what
    #: tells an older set of one session from a newer one in any process (a store that was
    #: rolled back holds an older one). See :func:`~aiofinaccess.core.renewal_step.superseded`.
    lineage: str | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)
    generation: int = attrs.field(default=0, eq=False, repr=False, kw_only=True)
    #: The OAuth client id the set was issued to (persisted; stamped by the manager): only that
    #: client may use, renew or revoke it. ``None`` in sets stored before it was recorded: they
    #: belong to whichever client serves the provider.
    client_id: str | None = attrs.field(
        default=None, converter=_shared_optional, eq=False, repr=False, kw_only=True
    )

    @property
    def has_refresh_token(self) -> bool:
        """True when the set carries a refresh token."""
        return self.refresh_token is not None

    @property
    def lifetime(self) -> float | None:
        """Seconds from issue to expiry, or ``None`` for a token that never expires."""
        return None if self.expires_at is None else self.expires_at - self.issued_at

    def expires_at_monotonic(self) -> float | None:
        """The access token's expiry on the monotonic clock, when anchored."""
        if self.expires_at is None:
            return None
        if self.anchor is None:
            return None
        return self.anchor.to_monotonic(self.expires_at)

    def refresh_expires_at_monotonic(self) -> float | None:
        """The refresh token's expiry on the monotonic clock, when known and anchored."""
        if self.refresh_expires_at is None or self.anchor is None:
            return None
        return self.anchor.to_monotonic(self.refresh_expires_at)

    def age(self, *, monotonic: float, wall: float) -> float:
        """Seconds since issue at the moment of the two clock readings given: measured on the
        monotonic clock when anchored (one clock: its wall-clock offset cancels out), else by
        the wall clock, taking ``issued_at`` as that clock's. Never negative."""
        if self.anchor is not None:
            return max(0.0, monotonic - self.anchor.to_monotonic(self.issued_at))
        return max(0.0, wall - self.issued_at)

    def with_anchor(self, anchor: Anchor) -> TokenSet:
        """Return a copy tied to ``anchor`` (used when a stored set is loaded)."""
        return attrs.evolve(self, anchor=anchor)

    def merged_after_refresh(self, previous: TokenSet) -> TokenSet:
        """Keep ``previous``'s refresh token when a refresh response carried none (RFC 6749 6)."""
        if self.refresh_token is not None or previous.refresh_token is None:
            return self
        return attrs.evolve(
            self,
            refresh_token=previous.refresh_token,
            refresh_expires_at=previous.refresh_expires_at,
        )


# ---------------------------------------------------------------------------------------------
# Parsing token responses

_KNOWN_FIELDS: Final = frozenset(
    {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_expires_in",
        "scope",
        "id_token",
    }
)


def _seconds(body: Mapping[str, Any], name: str) -> float | None:
    """Read a lifetime that servers send as int, float, numeric string, or not at all."""
    raw = body.get(name)
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise TokenResponseError(f"token response field {name} is not a number")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise TokenResponseError(f"token response field {name} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise TokenResponseError(f"token response field {name} is out of range")
    return value


def _optional_str(body: Mapping[str, Any], name: str) -> str | None:
    raw = body.get(name)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise TokenResponseError(f"token response field {name} is not a string")
    return raw


def parse_token_response(
    body: object,
    *,
    sent: Anchor,
    zero_expires_in_means_never: bool = False,
    default_expires_in: float | None = None,
) -> TokenSet:
    """Turn a token endpoint's JSON body into a :class:`TokenSet`.

    Args:
        body: The decoded JSON document.
        sent: Wall-clock and monotonic readings taken just before the request was sent;
            lifetimes count from here.
        zero_expires_in_means_never: finAPI's rule: ``expires_in: 0`` is a token that never
            expires. Elsewhere ``0`` means "already expired".
        default_expires_in: Lifetime to assume when ``expires_in`` is missing. ``None`` means
            "unknown": the token is used until a 401 says otherwise.

    Raises:
        TokenResponseError: ``body`` is not an object, has no ``access_token``, or a field has
            an impossible type. The message never contains a token.
    """
    if not isinstance(body, Mapping):
        raise TokenResponseError("token response is not a JSON object")
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise TokenResponseError("token response has no access_token")

    expires_in = _seconds(body, "expires_in")
    if expires_in is None:
        expires_in = default_expires_in
    elif expires_in == 0 and zero_expires_in_means_never:
        expires_in = None
    refresh_expires_in = _seconds(body, "refresh_expires_in")
    if refresh_expires_in == 0:
        # Keycloak sends 0 for offline tokens without a maximum lifetime: "not limited".
        refresh_expires_in = None

    refresh_token = _optional_str(body, "refresh_token")
    id_token = _optional_str(body, "id_token")
    return TokenSet(
        access_token=Secret(access_token),
        token_type=_optional_str(body, "token_type") or "Bearer",
        issued_at=sent.wall,
        expires_at=None if expires_in is None else sent.wall + expires_in,
        refresh_token=None if refresh_token is None else Secret(refresh_token),
        refresh_expires_at=(
            None
            if refresh_expires_in is None or refresh_token is None
            else sent.wall + refresh_expires_in
        ),
        scope=_optional_str(body, "scope"),
        id_token=None if id_token is None else Secret(id_token),
        extra={k: v for k, v in body.items() if k not in _KNOWN_FIELDS},
        anchor=sent,
    )
