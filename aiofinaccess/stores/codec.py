"""How durable stores turn a token set into bytes and back, optionally encrypted.

:class:`JsonCodec` writes the store converter's JSON (secrets revealed: the store is where they
live). :class:`FernetCodec` encrypts that JSON with Fernet (AES-128-CBC + HMAC-SHA256) under
the first of the app's keys and decrypts with any of them (``cryptography``'s MultiFernet), so
keys rotate without downtime: add the new key first, let :meth:`FernetCodec.rotate` (or normal
renewals) re-encrypt, then drop the old key.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol

from ..errors import ConfigurationError, StoreError
from ..tokens import TokenSet, store_converter

__all__ = ["FernetCodec", "JsonCodec", "TokenCodec"]


class TokenCodec(Protocol):
    """Serialises token sets for a durable store."""

    def encode(self, token_set: TokenSet) -> bytes:
        """Token set -> bytes to store."""
        ...

    def decode(self, data: bytes) -> TokenSet:
        """Stored bytes -> token set. Raises :class:`StoreError` for unreadable data."""
        ...


class JsonCodec:
    """Plain JSON. Anyone who can read the store can read the tokens: protect the store."""

    def encode(self, token_set: TokenSet) -> bytes:
        """Token set -> UTF-8 JSON."""
        return json.dumps(store_converter.unstructure(token_set), separators=(",", ":")).encode()

    def decode(self, data: bytes) -> TokenSet:
        """UTF-8 JSON -> token set."""
        try:
            return store_converter.structure(json.loads(data), TokenSet)
        except Exception as exc:  # cattrs raises several types; all mean "not a token set"
            raise StoreError(f"stored token set is unreadable ({type(exc).__name__})") from None


class FernetCodec:
    """JSON encrypted with Fernet; ``keys[0]`` encrypts, every key decrypts.

    Args:
        keys: URL-safe base64 Fernet keys (``cryptography.fernet.Fernet.generate_key()``),
            newest first. Needs the ``aiofinaccess[encryption]`` extra.

    Raises:
        ConfigurationError: No key, a malformed key, or ``cryptography`` missing.
    """

    def __init__(self, keys: Sequence[str | bytes]) -> None:
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
        self._json = JsonCodec()

    def __repr__(self) -> str:
        return "FernetCodec(keys=***)"

    def encode(self, token_set: TokenSet) -> bytes:
        """Encrypt under the newest key."""
        return self._fernet.encrypt(self._json.encode(token_set))

    def decode(self, data: bytes) -> TokenSet:
        """Decrypt with whichever key fits."""
        from cryptography.fernet import InvalidToken  # noqa: PLC0415

        try:
            plain = self._fernet.decrypt(data)
        except InvalidToken:
            raise StoreError(
                "stored token set cannot be decrypted with any configured key"
            ) from None
        return self._json.decode(plain)

    def rotate(self, data: bytes) -> bytes:
        """Re-encrypt stored bytes under the newest key."""
        from cryptography.fernet import InvalidToken  # noqa: PLC0415

        try:
            return self._fernet.rotate(data)
        except InvalidToken:
            raise StoreError(
                "stored token set cannot be decrypted with any configured key"
            ) from None
