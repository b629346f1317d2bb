"""How ``tokens`` commands name a stored set: the rows ``tokens list`` prints, and back.

A user's set is ``PROVIDER SUBJECT``. A client token's key names its client (``id#fingerprint``,
see :func:`~aiofinaccess.core.tokens.client_label`), which no one types: the row reads
``(client)`` while a provider has one client set in the store, and ``(client ID)`` once it has
several (the full ``id#fingerprint`` where two share an id). ``--client ID`` picks one of
those; without it, one client set is the one meant and several are an error that lists them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from ..core.tokens import TokenKey
from ..stores.protocol import TokenStore
from .config import CliError

__all__ = ["client_names", "describe", "resolve"]

#: A client set written before keys named their client.
_UNNAMED = "unnamed"


def _name(key: TokenKey, shared_ids: Counter[str]) -> str:
    if key.client is None:
        return _UNNAMED
    client_id = key.client.rpartition("#")[0] or key.client
    return key.client if shared_ids[client_id] > 1 else client_id


def client_names(keys: Iterable[TokenKey]) -> dict[TokenKey, str]:
    """Each client key's name among its provider's client keys: ``""`` when it is the only
    one, else its client id (``id#fingerprint`` when two share an id)."""
    by_provider: dict[str, list[TokenKey]] = {}
    for key in keys:
        if key.is_client:
            by_provider.setdefault(key.provider, []).append(key)
    names: dict[TokenKey, str] = {}
    for group in by_provider.values():
        ids = Counter((key.client.rpartition("#")[0] or key.client) for key in group if key.client)
        for key in group:
            names[key] = "" if len(group) == 1 else _name(key, ids)
    return names


def describe(key: TokenKey, name: str = "") -> str:
    """The set as a message names it: ``finapi u1``, ``finapi (client)``, ``finapi (client ID)``."""
    if not key.is_client:
        return f"{key.provider} {key.subject}"
    return f"{key.provider} (client {name})" if name else f"{key.provider} (client)"


def _matches(key: TokenKey, name: str, wanted: str) -> bool:
    return wanted in (name, key.client or _UNNAMED, (key.client or "").rpartition("#")[0])


async def resolve(
    store: TokenStore, provider: str, subject: str | None, client: str | None, where: str
) -> tuple[TokenKey, str]:
    """The stored key a command names, and its name in messages (``where`` is the store as
    shown to the user).

    Raises:
        CliError: A subject and ``--client`` both given; no client set (of ``client``) stored;
            several stored and none chosen (the message lists them).
    """
    if subject:
        if client is not None:
            raise CliError("give a subject or --client, not both")
        return TokenKey(provider, subject), ""
    every = client_names([key async for key in store.keys(provider) if key.is_client])
    shown = ", ".join(sorted(name or _name(key, Counter()) for key, name in every.items()))
    names = every
    if client is not None:
        names = {key: name for key, name in every.items() if _matches(key, name, client)}
        if not names:
            stored = f" (stored: {shown})" if every else ""
            raise CliError(f"no client token set of {client} for {provider} in {where}{stored}")
    if not names:
        raise CliError(f"no token set for {provider} (client) in {where}")
    if len(names) > 1:
        raise CliError(
            f"{provider} has {len(names)} client token sets in {where}: choose one with "
            f"--client ({shown})"
        )
    ((key, name),) = names.items()
    return key, name
