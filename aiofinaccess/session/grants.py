"""Grants coming and going: first acquisition, revocation, logout and forgetting.

First acquisitions (password grant, the authorization-code exchange, sets the app obtained
itself) run in tasks the manager owns, like renewals, and end in the same persist-then-publish
step. Revoking, logging out and forgetting delete the set in the store and here, and leave a
bounded tombstone so later calls in this process say "revoked" rather than "no tokens".

Never imports ``api``, ``integrations``, ``cli``, ``sandbox`` or the manager module.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from ..core.errors import StoreConflictError
from ..core.renewal_step import begun, ended_by, superseded
from ..core.tokens import Secret, TokenKey, TokenSet
from ..oauth.providers import RevocationStyle
from .hub import ManagerStats
from .registry import Registry

if TYPE_CHECKING:
    from ..oauth.authorization import AuthorizationRequest
    from ..oauth.client import OAuthClient
    from ..stores.protocol import Versioned
    from .access import StoreAccess
    from .lifetime import OwnedTasks
    from .publish import Publisher

__all__ = ["Grants", "Tombstones"]

_T = TypeVar("_T")
#: Keys forgotten or revoked here, remembered so a later call says "revoked" (bounded).
_TOMBSTONES = 4096

#: Keys forgotten or revoked in this process, oldest first.
Tombstones = collections.OrderedDict[tuple[str, str | None], None]


class Grants:
    """Obtains, stores, revokes and forgets token sets for a manager.

    Args:
        registry, access, publisher, stats, owned: The manager's parts.
        oauth: Gives the :class:`OAuthClient` of a provider name.
        access_token: The manager's bearer path (a client token for finAPI's revocation).
        revoked: The manager's tombstones (shared: its bearer path reads them).
    """

    def __init__(
        self,
        *,
        registry: Registry,
        access: StoreAccess,
        publisher: Publisher,
        stats: ManagerStats,
        owned: OwnedTasks,
        oauth: Callable[[str], OAuthClient],
        access_token: Callable[[str], Awaitable[str]],
        revoked: Tombstones,
    ) -> None:
        self._registry = registry
        self._access = access
        self._store = access.store
        self._publisher = publisher
        self._stats = stats
        self._spawn = owned.spawn
        self._oauth = oauth
        self._access_token = access_token
        self._revoked = revoked

    # -- first acquisition ---------------------------------------------------------------------

    async def login_with_password(self, key: TokenKey, password: str | Secret) -> TokenSet:
        """See :meth:`SessionManager.login_with_password`."""
        oauth = self._oauth(key.provider)
        username = key.subject
        assert username is not None  # noqa: S101  (a user's key)
        return await asyncio.shield(
            self._spawn(self._acquire(key, lambda: oauth.password(username, Secret(password))))
        )

    def authorization_request(
        self,
        name: str,
        redirect_uri: str,
        *,
        scopes: tuple[str, ...] | None,
        pkce: bool,
        extra_params: Mapping[str, str] | None,
    ) -> AuthorizationRequest:
        """See :meth:`SessionManager.authorization_request`."""
        # Loaded by the authorization-code flow only, not with every manager.
        from ..oauth.authorization import build_authorization_request  # noqa: PLC0415

        registration = self._registry.registration(name)
        return build_authorization_request(
            registration.provider,
            registration.client.client_id,
            redirect_uri,
            scopes=scopes,
            pkce=pkce,
            extra_params=extra_params,
        )

    async def complete_authorization(
        self, key: TokenKey, callback: str | Mapping[str, str], request: AuthorizationRequest
    ) -> TokenSet:
        """See :meth:`SessionManager.complete_authorization`."""
        from ..oauth.authorization import parse_callback  # noqa: PLC0415  (see above)

        registration = self._registry.registration(key.provider)
        response = parse_callback(callback, request, expected_issuer=registration.provider.issuer)
        oauth = self._oauth(key.provider)
        return await asyncio.shield(
            self._spawn(
                self._acquire(
                    key,
                    lambda: oauth.authorization_code(
                        response.code, request.redirect_uri, code_verifier=request.code_verifier
                    ),
                )
            )
        )

    async def store_token_set(self, key: TokenKey, token_set: TokenSet) -> None:
        """See :meth:`SessionManager.store_token_set`."""

        async def fetched() -> TokenSet:
            return token_set

        await asyncio.shield(self._spawn(self._acquire(key, fetched, requests=0)))

    async def _acquire(
        self, key: TokenKey, fetch: Callable[[], Awaitable[TokenSet]], *, requests: int = 1
    ) -> TokenSet:
        self._stats.token_requests += requests
        # A session's first set: its lineage starts here, issued to this process's client.
        token_set = self._registry.stamped(key, begun(await fetch()))
        store_call = self._access.call
        for _attempt in range(3):
            current = await store_call(self._store.get(key))
            if current is not None and superseded(token_set, current.token_set):
                # The app's retry of a login whose first write landed (its error came after:
                # a replica that did not confirm) and was renewed since: writing it again
                # would bring back a refresh token the provider has spent.
                token_set, version = current.token_set, current.version
            else:
                try:
                    version = await store_call(
                        self._access.write(
                            key,
                            token_set,
                            expected_version=None if current is None else current.version,
                        )
                    )
                except StoreConflictError:
                    continue
            self._revoked.pop((key.provider, key.subject), None)
            self._publisher.publish(self._registry.entry(key), token_set, version)
            return token_set
        raise StoreConflictError(f"token set {key.hashed}: store kept changing while writing")

    # -- revocation ------------------------------------------------------------------------------

    async def revoke(self, key: TokenKey) -> None:
        """See :meth:`SessionManager.revoke`."""
        registration = self._registry.registration(key.provider)
        stored = await self._access.call(self._store.get(key))
        if stored is not None:
            token_set = stored.token_set
            self._refuse_other_clients(key, token_set)
            client_bearer = None
            if registration.provider.revocation_style is not RevocationStyle.RFC7009:
                client_bearer = Secret(await self._access_token(key.provider))
            if token_set.refresh_token is not None:
                await self._oauth(key.provider).revoke(
                    token_set.refresh_token, hint="refresh_token", client_bearer=client_bearer
                )
            else:
                await self._oauth(key.provider).revoke(
                    token_set.access_token, hint="access_token", client_bearer=client_bearer
                )
        await self._drop(key, stored)

    async def logout(self, key: TokenKey) -> None:
        """See :meth:`SessionManager.logout`."""
        stored = await self._access.call(self._store.get(key))
        if stored is not None:
            self._refuse_other_clients(key, stored.token_set)
        if stored is not None and stored.token_set.refresh_token is not None:
            await self._oauth(key.provider).logout(stored.token_set.refresh_token)
        await self._drop(key, stored)

    def _refuse_other_clients(self, key: TokenKey, token_set: TokenSet) -> None:
        """Never send another client's token with this client's credentials (nor delete it)."""
        error = self._registry.mismatch(key, token_set)
        if error is not None:
            raise error

    async def forget(self, key: TokenKey) -> None:
        """See :meth:`SessionManager.forget`."""
        await self._drop(key, None)

    async def _delete_ended(self, key: TokenKey, ended: Versioned) -> None:
        """Delete the stored set of the session ``ended`` belongs to, and nothing else: a
        login stored meanwhile (by any process) is a new session the app still holds."""
        store_call = self._access.call
        current: Versioned | None = ended
        for _attempt in range(3):
            if current is None or not ended_by(current.token_set, ended.token_set):
                return
            try:
                await store_call(self._store.delete(key, expected_version=current.version))
            except StoreConflictError:
                current = await store_call(self._store.get(key))  # renewed or replaced since
                continue
            return
        raise StoreConflictError(f"token set {key.hashed}: store kept changing while deleting")

    async def _drop(self, key: TokenKey, ended: Versioned | None) -> None:
        """Delete ``key`` in the store (only the session of ``ended`` when given) and here."""
        if ended is None:
            await self._access.call(self._store.delete(key))
        else:
            await self._delete_ended(key, ended)
        entry = self._registry.find(key.provider, key.subject)
        while entry is not None and entry.job is not None:
            # Another may start while one ends (the scheduler), and a set renewed that
            # nobody used goes to rest: found again each time.
            await asyncio.wait([entry.job])
            entry = self._registry.find(key.provider, key.subject)
        if entry is not None:
            entry.clear()
            self._registry.prune(entry)
        # Remembered (boundedly) so later calls here say "revoked" rather than "no tokens".
        self._revoked[key.provider, key.subject] = None
        self._revoked.move_to_end((key.provider, key.subject))
        if len(self._revoked) > _TOMBSTONES:
            self._revoked.popitem(last=False)
