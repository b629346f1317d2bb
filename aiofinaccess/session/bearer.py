"""The bearer path beyond the fresh-token dictionary lookup: finding or loading an entry,
refusing dead and forgotten keys, renewing on demand, after a 401, or when the app asks.

The fresh path itself (:meth:`SessionManager.access_token`'s first lines) stays in the manager:
it must be one dictionary lookup and one comparison, with no call in between.

Never imports ``api``, ``integrations``, ``cli``, ``sandbox`` or the manager module.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..core.clock import Clock
from ..core.errors import ReauthorizationRequired, TransportError
from ..core.lifecycle import Action, Status, TokenState, decide, plan, token_state
from ..core.renewal_step import spent
from ..core.tokens import TokenKey, TokenSet
from .grants import Tombstones
from .registry import Entry, Registry
from .renewal import RenewalDriver

if TYPE_CHECKING:
    from .access import StoreAccess
    from .publish import Publisher

__all__ = ["Bearer"]

_REFUSED = (Status.REAUTH_REQUIRED, Status.REVOKED)
#: Renewals one caller waits for before it gives up on a process that stalls past each
#: renewed set's usable time (a stall longer than a token's lifetime, three times over).
_ROUNDS = 3


class Bearer:
    """Serves token sets that the fresh path could not serve from memory.

    Args:
        registry, driver, access, publisher, clock: The manager's parts.
        revoked: The manager's tombstones of keys forgotten here.
    """

    def __init__(
        self,
        *,
        registry: Registry,
        driver: RenewalDriver,
        access: StoreAccess,
        publisher: Publisher,
        clock: Clock,
        revoked: Tombstones,
    ) -> None:
        self._registry = registry
        self._driver = driver
        self._access = access
        self._publisher = publisher
        self._clock = clock
        self._revoked = revoked

    async def entry(self, key: TokenKey) -> Entry:
        """The entry of ``key``, ready to serve or renew.

        A key whose grant died here, or that was forgotten here, stays refused without a
        request to the provider; but one store read tells whether another process has stored
        a new login since, which is then adopted.
        """
        entry = self._registry.find(key.provider, key.subject)
        forgotten = entry is None and (key.provider, key.subject) in self._revoked
        if not forgotten and (entry is None or entry.status not in _REFUSED):
            return entry if entry is not None else self._registry.entry(key)
        stored = await self._access.read(key)
        if stored is None or (entry is not None and stored.version == entry.dead_version):
            if entry is None:
                raise ReauthorizationRequired(
                    key.hashed, "revoked", provider=key.provider, subject=key.subject
                )
            raise self._poisoned(entry)
        self._revoked.pop((key.provider, key.subject), None)
        entry = self._registry.entry(key)
        self._publisher.publish(entry, stored.token_set, stored.version)
        return entry

    def _poisoned(self, entry: Entry) -> ReauthorizationRequired:
        key = entry.key
        if entry.status is Status.REVOKED:
            return ReauthorizationRequired(
                key.hashed, "revoked", provider=key.provider, subject=key.subject
            )
        previous = entry.reauth
        return ReauthorizationRequired(
            key.hashed,
            previous.reason if previous else "reauth_required",
            previous.cause if previous else None,
            provider=key.provider,
            subject=key.subject,
        )

    async def token_set(self, key: TokenKey) -> TokenSet:
        """A usable set of ``key``: from memory if it is still usable, else renewed first.

        Raises:
            TransportError: This process stalled past the usable time of each set renewed
                for it, :data:`_ROUNDS` times (retryable).
        """
        for _round in range(_ROUNDS):
            entry = await self.entry(key)
            now = self._clock.monotonic()
            entry.last_used = now
            deadlines = entry.deadlines
            if entry.token_set is not None and deadlines is not None:
                action = decide(deadlines, now)
                if action is Action.USE:
                    return entry.token_set
                if action is Action.USE_AND_REFRESH:
                    if entry.job is None and now >= entry.retry_at:
                        self._driver.start(entry)
                    return entry.token_set
            renewed = await asyncio.shield(self._driver.start(entry))
            # Judged again in this caller's own step, which returns it: the job judged it when
            # it resolved the outcome, but a loop that lags (a process stalled, or thousands of
            # callbacks queued before this one) may resume the caller after it expired.
            deadlines = plan(renewed, entry.policy, reissued=entry.reissued)
            if not spent(renewed, deadlines, self._clock.monotonic()):
                return renewed
        raise TransportError(
            f"no usable token for {key.hashed}: this process stalled past the usable time of "
            f"each of {_ROUNDS} renewed sets",
            request_sent=True,
        )

    async def renew_after_rejection(self, key: TokenKey, rejected: str) -> str:
        """See :meth:`SessionManager.renew_after_rejection`."""
        entry = await self.entry(key)
        if entry.token is not None and entry.token != rejected:
            return entry.token
        for _round in range(2):
            outcome = self._driver.start(entry, rejected=rejected, reason="forced")
            token = (await asyncio.shield(outcome)).access_token.reveal()
            if token != rejected:
                break
            entry = self._registry.entry(key)  # it may have gone to rest meanwhile
            # We joined a renewal that began before the rejection and got the very token the
            # API refused (finAPI reissues it): one renewal of our own.
        return token

    async def refresh(self, key: TokenKey) -> TokenSet:
        """See :meth:`SessionManager.refresh`."""
        entry = await self.entry(key)
        if entry.token_set is None and entry.job is None:
            # Take what the store holds first, without a request: the forced renewal below
            # must redeem the newest refresh token, and only once.
            stored = await self._access.read(key)
            # The entry may have left a bounded working set while we read.
            entry = self._registry.entry(key)
            if stored is not None and entry.token_set is None and entry.job is None:
                self._publisher.publish(entry, stored.token_set, stored.version)
        outcome = self._driver.start(entry, rejected=entry.token, forced=True, reason="forced")
        return await asyncio.shield(outcome)

    def state(self, key: TokenKey) -> TokenState:
        """See :meth:`SessionManager.state`."""
        entry = self._registry.find(key.provider, key.subject)
        if entry is None:
            revoked = (key.provider, key.subject) in self._revoked
            return TokenState.REVOKED if revoked else TokenState.EXPIRED
        return token_state(entry.status, entry.deadlines, self._clock.monotonic())
