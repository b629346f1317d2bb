"""What a session manager holds in memory: registered providers and one entry per token set.

An :class:`~aiofinaccess.session.entry.Entry` is this process's view of one token set; a set
at rest (see :mod:`~aiofinaccess.session.rest`) is kept packed in its place and unpacked when
it is next wanted. The :class:`Registry` builds token keys (a client token's key names the
client, see :func:`~aiofinaccess.core.tokens.client_label`) and drops entries that hold
nothing, so probes of unknown users and forgotten users leave no trace.

This module does no I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import attrs

from ..core._record import slots_repr
from ..core.errors import ClientMismatchError, ConfigurationError, UsageError
from ..core.lifecycle import RefreshPolicy
from ..core.tokens import ClientCredentials, Secret, TokenKey, TokenSet, client_label
from ..oauth.providers import ClientAuthMethod, Provider
from .callbacks import awaiting
from .entry import Entry
from .hub import ManagerStats
from .rest import Rested, pack, unpack

__all__ = ["AsyncPasswordLookup", "Entry", "PasswordLookup", "Registration", "Registry"]

#: Given a user id, return that user's password (from the app's own vault), or ``None``;
#: a plain or an async function.
PasswordLookup = Callable[[str], "Awaitable[str | Secret | None] | str | Secret | None"]
#: A :data:`PasswordLookup` as the registry keeps it: always awaitable.
AsyncPasswordLookup = Callable[[str], Awaitable["str | Secret | None"]]

_NEG_INF = float("-inf")
_INF = float("inf")


class Registration:
    """A provider as registered: its client credentials and the app's password callback."""

    __slots__ = (  # noqa: RUF023  (shown in this order)
        "provider",
        "client",
        "password_lookup",
        "client_key",
    )

    provider: Provider
    client: ClientCredentials
    password_lookup: AsyncPasswordLookup | None
    client_key: TokenKey

    def __init__(
        self,
        provider: Provider,
        client: ClientCredentials,
        password_lookup: AsyncPasswordLookup | None,
        client_key: TokenKey,
    ) -> None:
        self.provider = provider
        self.client = client
        self.password_lookup = password_lookup
        self.client_key = client_key

    def __repr__(self) -> str:
        return slots_repr(self)


class Registry:
    """Registered providers and the entries of their token sets.

    Args:
        capacity: At most this many entries (the bounded working set), or ``None``.
        policy: Plans the entries' deadlines.
        stats: Counts the entries dropped to stay within ``capacity``.
        on_held: Called when an entry is made for the process's callers (not for the duty).
        stamps: The process stamps its uses in the store: an entry with a use not yet
            stamped is not put at rest.
    """

    def __init__(
        self,
        capacity: int | None = None,
        *,
        policy: RefreshPolicy | None = None,
        stats: ManagerStats | None = None,
        on_held: Callable[[], None] = lambda: None,
        stamps: bool = False,
    ) -> None:
        #: At most this many entries (the bounded working set), or ``None``.
        self.capacity = capacity
        self._policy = policy if policy is not None else RefreshPolicy()
        self._stats = stats if stats is not None else ManagerStats()
        self._on_held = on_held
        self._stamps = stamps
        self._registrations: dict[str, Registration] = {}
        #: Per provider name, by subject: the fresh path builds no object per call, and an
        #: entry costs no key of its own (one registration per name, so the pair is unique).
        #: A set at rest is kept packed (its ``token`` is ``None``: the fresh path passes it by).
        self.entries: dict[str, dict[str | None, Entry | Rested]] = {}

    def __len__(self) -> int:
        return sum(map(len, self.entries.values()))

    def __contains__(self, name: str) -> bool:
        return name in self._registrations

    def names(self) -> list[str]:
        """Registered provider names, in registration order."""
        return list(self._registrations)

    def add(
        self, provider: Provider, client: ClientCredentials, lookup: PasswordLookup | None
    ) -> Registration:
        """Register ``provider`` (see :meth:`SessionManager.register`).

        Raises:
            ConfigurationError: An argument is not what it must be, or the name is taken.
        """
        if not isinstance(provider, Provider):
            raise ConfigurationError("provider must be a FinApi, Everifin or Oidc preset")
        if provider.name in self._registrations:
            raise ConfigurationError(f"provider {provider.name!r} is already registered")
        if not isinstance(client, ClientCredentials):
            raise ConfigurationError("client must be ClientCredentials(client_id, client_secret)")
        if client.client_secret is None and provider.client_auth is not ClientAuthMethod.NONE:
            raise ConfigurationError(
                f"client_secret is required for provider {provider.name!r} "
                f"({provider.client_auth.value})"
            )
        if lookup is not None and not callable(lookup):
            raise ConfigurationError("password_lookup must be a function of the user id")
        key = TokenKey(provider.name, client=client_label(client))
        registration = Registration(
            provider, client, None if lookup is None else awaiting(lookup), key
        )
        self._registrations[provider.name] = registration
        self.entries[provider.name] = {}
        return registration

    def registration(self, name: str) -> Registration:
        """The registration of ``name``.

        Raises:
            UsageError: ``name`` is not registered.
        """
        try:
            return self._registrations[name]
        except KeyError:
            raise UsageError(
                f"provider {name!r} is not registered; call register() first"
            ) from None

    def client_keys(self) -> list[TokenKey]:
        """The registered clients' own keys, one per provider: what the duty may claim (user
        sets of these providers, and these client sets)."""
        return [registration.client_key for registration in self._registrations.values()]

    def serves(self, key: TokenKey) -> bool:
        """Whether this process can renew ``key``: its provider is registered and, for a
        client token, it is this process's client (never another client's credentials)."""
        registration = self._registrations.get(key.provider)
        return registration is not None and (not key.is_client or key == registration.client_key)

    def mismatch(self, key: TokenKey, token_set: TokenSet) -> ClientMismatchError | None:
        """The error to raise when ``token_set`` was issued to another client than the one
        registered for ``key``'s provider (user keys name no client, so another app sharing
        the store under the same provider name may have stored it); ``None`` when it is ours,
        unstamped (stored before sets recorded their client: whoever serves the provider's),
        or of a provider not registered here.

        Compared by client id, not secret: a rotated secret is still the same client.
        """
        registration = self._registrations.get(key.provider)
        issued_to = token_set.client_id
        if registration is None or issued_to is None:
            return None
        if issued_to == registration.client.client_id:
            return None
        return ClientMismatchError(
            key.hashed,
            provider=key.provider,
            subject=key.subject,
            issued_to=issued_to,
            client_id=registration.client.client_id,
        )

    def stamped(self, key: TokenKey, token_set: TokenSet) -> TokenSet:
        """``token_set`` marked as issued to this process's client for ``key``'s provider.

        Raises:
            ClientMismatchError: It says it was issued to another client.
        """
        error = self.mismatch(key, token_set)
        if error is not None:
            raise error
        client_id = self.registration(key.provider).client.client_id
        return (
            token_set
            if token_set.client_id == client_id
            else attrs.evolve(token_set, client_id=client_id)
        )

    def key(self, name: str, subject: str | None) -> TokenKey:
        """The token key of a user (``subject``) or of the registered client (``None``)."""
        registration = self.registration(name)
        return registration.client_key if subject is None else TokenKey(name, subject)

    def entry(self, key: TokenKey, *, for_duty: bool = False) -> Entry:
        """The entry of ``key``, created empty on first use.

        ``for_duty``: created only to renew the set for the refresh duty, which drops it
        afterwards (``on_held`` is not called).

        Raises:
            UsageError: The provider is not registered, or ``key`` is another client's token
                (entries are found by provider and subject: it would be renewed, and written
                over, with this process's credentials).
        """
        entry = self.find(key.provider, key.subject)
        if entry is not None and entry.key != key:
            raise UsageError(f"token set {key.hashed} is another client's: not renewed here")
        if entry is not None and not for_duty and entry.duty_made:
            entry.stamped = _NEG_INF  # the duty's entry, now the app's too: its uses count
        if entry is None:
            if not self.serves(key):
                self.registration(key.provider)  # names an unregistered provider
                raise UsageError(f"token set {key.hashed} is another client's: not renewed here")
            if self.capacity is not None and len(self) >= self.capacity:
                self._evict(self.capacity)
            entry = self.entries[key.provider][key.subject] = Entry(key, self._policy)
            if for_duty:
                entry.stamped = _INF
            else:
                self._on_held()
        return entry

    def _evict(self, capacity: int) -> None:
        """Drop the least recently used entries that run nothing, down to 90 % of ``capacity``.

        A tenth at a time, so the sort is paid once per ``capacity / 10`` new entries rather
        than per entry, and the fresh path (which only writes ``last_used``) stays as it is.
        """
        target = capacity - max(1, capacity // 10)
        idle = sorted((entry for entry in self if entry.job is None), key=_last_used)
        dropped = idle[: len(self) - target]
        for entry in dropped:
            del self.entries[entry.key.provider][entry.key.subject]
        self._stats.working_set_evictions += len(dropped)

    def drop(self, entry: Entry) -> None:
        """Forget ``entry`` if no renewal runs for it; it is loaded again on demand."""
        if entry.job is None:
            self._remove(entry)

    def find(self, name: str, subject: str | None) -> Entry | None:
        """The entry of ``(name, subject)`` if this process holds one (unpacked if at rest)."""
        held = self.entries.get(name)
        if held is None:
            return None
        value = held.get(subject)
        if not isinstance(value, Rested):
            return value
        entry = held[subject] = self._unpack(name, subject, value)
        return entry

    def _key(self, name: str, subject: str | None) -> TokenKey:
        return self._registrations[name].client_key if subject is None else TokenKey(name, subject)

    def _unpack(self, name: str, subject: str | None, blob: Rested) -> Entry:
        return unpack(blob, self._key(name, subject), self._policy)

    def rest(self, entry: Entry) -> None:
        """Keep ``entry``'s set packed if it is at rest (see :mod:`.rest`); a caller still
        holding ``entry`` finds its generation moved on, as after any change."""
        key = entry.key
        held = self.entries.get(key.provider)
        if held is None or held.get(key.subject) is not entry:
            return
        if key != self._key(key.provider, key.subject):
            return  # not the key unpacking would build
        blob = pack(entry, stamps=self._stamps)
        if blob is not None:
            held[key.subject] = blob
            entry.generation += 1

    def prune(self, entry: Entry) -> None:
        """Drop ``entry`` if it holds nothing and runs nothing."""
        if entry.idle:
            self._remove(entry)

    def _remove(self, entry: Entry) -> None:
        held = self.entries[entry.key.provider]
        if held.get(entry.key.subject) is entry:
            del held[entry.key.subject]

    def __iter__(self) -> Iterator[Entry]:
        """Every entry; one at rest as a copy unpacked for reading (left at rest)."""
        for name, held in list(self.entries.items()):
            for subject, value in list(held.items()):
                yield self._unpack(name, subject, value) if isinstance(value, Rested) else value

    def hot(self) -> list[Entry]:
        """The entries not at rest."""
        return [
            value
            for held in self.entries.values()
            for value in held.values()
            if isinstance(value, Entry)
        ]


def _last_used(entry: Entry) -> float:
    return entry.last_used
