"""How durable stores turn a record into bytes and back, sealed to its place, maybe encrypted.

:class:`JsonCodec` writes the store converter's JSON (secrets revealed: the store is where they
live). :class:`FernetCodec` encrypts it with Fernet under the first of the app's keys and
decrypts with any of them (MultiFernet), so keys rotate without downtime: add the new key
first, let :meth:`FernetCodec.rotate` (or normal renewals) re-encrypt, then drop the old key.

Every record is an envelope ``{"kind", "key", "token_set"}``, and :meth:`~TokenCodec.decode`
refuses one found under another kind or key with
:class:`~aiofinaccess.core.errors.StoreError`. Under Fernet the envelope is inside the
ciphertext, so its HMAC authenticates kind and key: someone who can write the store but lacks
the key cannot copy alice's row into mallory's. (An envelope in the plaintext binds as
associated data would, and keeps the apps' Fernet keys; AES-GCM would have needed new keys
and a new format.) Records written before sealing are refused by :class:`FernetCodec` unless
``accept_unbound=True``; :func:`~aiofinaccess.stores.migrate.reseal` rewrites them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final, Literal, Protocol

from ..core.errors import ConfigurationError, StoreError
from ..core.tokens import TokenSet

__all__ = ["FernetCodec", "JsonCodec", "RecordKind", "TokenCodec"]

#: What a stored record is: a token set, or a pending authorization's opaque bytes.
RecordKind = Literal["token_set", "pending"]

_BODY: Final = "token_set"


class TokenCodec(Protocol):
    """Serialises token sets for a durable store, bound to the record they are stored as."""

    def encode(self, token_set: TokenSet, *, kind: RecordKind, key: str) -> bytes:
        """Token set -> bytes to store under ``key`` as a ``kind`` record."""
        ...

    def decode(self, data: bytes, *, kind: RecordKind, key: str) -> TokenSet:
        """Stored bytes -> token set.

        Raises:
            StoreError: Unreadable data, or a record sealed for another kind or key.
        """
        ...


def _seal(token_set: TokenSet, kind: RecordKind, key: str) -> bytes:
    # cattrs loads with the first record rather than with the store class.
    from ..core.convert import store_converter  # noqa: PLC0415

    envelope = {"kind": kind, "key": key, _BODY: store_converter.unstructure(token_set)}
    return json.dumps(envelope, separators=(",", ":")).encode()


def _open(plain: bytes, kind: RecordKind, key: str, *, accept_unbound: bool) -> TokenSet:
    try:
        document: Any = json.loads(plain)
    except (ValueError, RecursionError):
        raise StoreError("stored record is not JSON") from None
    if isinstance(document, dict) and _BODY in document and "kind" in document:
        # No key in the message: a token key names the end user.
        if document["kind"] != kind:
            raise StoreError(f"stored record is a {document['kind']!r} record, not a {kind!r} one")
        if document.get("key") != key:
            raise StoreError(f"stored {kind} record was sealed for another key: refused")
        document = document[_BODY]
    elif not accept_unbound:
        raise StoreError(
            f"stored {kind} record is not sealed to its key (written before sealed records); "
            "read it with accept_unbound=True and run aiofinaccess.stores.migrate.reseal"
        )
    from ..core.convert import store_converter  # noqa: PLC0415  (see _seal)

    try:
        return store_converter.structure(document, TokenSet)
    except Exception as exc:  # cattrs raises several types; all mean "not a token set"
        raise StoreError(f"stored token set is unreadable ({type(exc).__name__})") from None


class JsonCodec:
    """Plain JSON, sealed to its record. Anyone who can read the store can read the tokens.

    Args:
        accept_unbound: Read records written before sealing (default: yes, since without
            encryption refusing them would protect nothing).
    """

    def __init__(self, *, accept_unbound: bool = True) -> None:
        self._accept_unbound = accept_unbound

    def __repr__(self) -> str:
        return f"JsonCodec(accept_unbound={self._accept_unbound})"

    def encode(self, token_set: TokenSet, *, kind: RecordKind, key: str) -> bytes:
        """Token set -> UTF-8 JSON envelope naming ``kind`` and ``key``."""
        return _seal(token_set, kind, key)

    def decode(self, data: bytes, *, kind: RecordKind, key: str) -> TokenSet:
        """UTF-8 JSON -> token set, if it was sealed for ``kind`` and ``key``."""
        return _open(data, kind, key, accept_unbound=self._accept_unbound)


class FernetCodec:
    """JSON sealed to its record and encrypted with Fernet; ``keys[0]`` encrypts, all decrypt.

    Args:
        keys: URL-safe base64 Fernet keys (``cryptography.fernet.Fernet.generate_key()``),
            newest first. Needs the ``aiofinaccess[encryption]`` extra.
        accept_unbound: Also read records encrypted before sealing, which any row of the
            store could have been copied over. Only while migrating (see the module notes).

    Raises:
        ConfigurationError: No key, a malformed key, or ``cryptography`` missing.
    """

    def __init__(self, keys: Sequence[str | bytes], *, accept_unbound: bool = False) -> None:
        try:
            from cryptography.fernet import Fernet, MultiFernet  # noqa: PLC0415  (optional extra)
        except ImportError:  # pragma: no cover  (the test extra installs it)
            raise ConfigurationError(
                "encryption keys need the 'cryptography' package: "
                "pip install aiofinaccess[encryption]"
            ) from None
        if not keys:
            raise ConfigurationError("encryption keys must not be empty")
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except (ValueError, TypeError):
            raise ConfigurationError(
                "encryption keys must be 32-byte URL-safe base64 Fernet keys"
            ) from None
        self._accept_unbound = accept_unbound

    def __repr__(self) -> str:
        return f"FernetCodec(keys=***, accept_unbound={self._accept_unbound})"

    def encode(self, token_set: TokenSet, *, kind: RecordKind, key: str) -> bytes:
        """Encrypt the sealed envelope under the newest key."""
        return self._fernet.encrypt(_seal(token_set, kind, key))

    def decode(self, data: bytes, *, kind: RecordKind, key: str) -> TokenSet:
        """Decrypt with whichever key fits; refuse a record sealed for another kind or key."""
        return _open(self._decrypt(data), kind, key, accept_unbound=self._accept_unbound)

    def rotate(self, data: bytes) -> bytes:
        """Re-encrypt stored bytes under the newest key (the sealed envelope is kept as is)."""
        from cryptography.fernet import InvalidToken  # noqa: PLC0415

        try:
            return self._fernet.rotate(data)
        except InvalidToken:
            raise StoreError("stored record cannot be decrypted with any configured key") from None

    def _decrypt(self, data: bytes) -> bytes:
        from cryptography.fernet import InvalidToken  # noqa: PLC0415

        try:
            return self._fernet.decrypt(data)
        except InvalidToken:
            raise StoreError("stored record cannot be decrypted with any configured key") from None
