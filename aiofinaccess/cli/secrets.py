"""Where the command line finds a client secret: never in the remembered settings.

In order: ``client_secret`` (a flag, ``AIOFINACCESS_<NAME>_CLIENT_SECRET`` or the config
file); ``client_secret_file`` (a path whose first line is the secret, e.g. a mounted
Kubernetes or Docker secret); the system keyring when ``client_secret_keyring`` is true
(service ``aiofinaccess``, user name = the provider's name; ``pip install keyring``, and
``aiofinaccess config set-secret NAME`` stores one there). The sandbox's public test client
needs none of these.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from ..core.errors import AiofinaccessError
from ..core.tokens import Secret
from .booleans import parse_bool
from .files import UntrustedFileError, read_bounded
from .origins import origin

__all__ = [
    "KEYRING_SERVICE",
    "SecretSourceError",
    "client_secret",
    "client_secret_flag",
    "secret_source",
    "store_secret",
]

KEYRING_SERVICE: Final = "aiofinaccess"
#: A client secret file longer than this is not a secret file.
_SECRET_LIMIT: Final = 4096


class SecretSourceError(AiofinaccessError):
    """A configured secret source cannot be read; the message names it."""


def _enabled(value: Any) -> bool:
    return parse_bool(value, "client_secret_keyring", "settings")


def _keyring() -> Any:
    try:
        import keyring  # noqa: PLC0415  (optional: only when asked for)
    except ImportError:
        raise SecretSourceError(
            "client_secret_keyring is set but the keyring package is not installed "
            "(pip install keyring)"
        ) from None
    return keyring


def secret_source(values: Mapping[str, Any]) -> str | None:
    """Which source would give the secret (``None``: none is configured)."""
    if values.get("client_secret") not in (None, ""):
        return "client_secret"
    if values.get("client_secret_file") not in (None, ""):
        return "client_secret_file"
    if _enabled(values.get("client_secret_keyring", False)):
        return "keyring"
    return None


def client_secret(
    name: str, values: Mapping[str, Any], sources: Mapping[str, str] | None = None
) -> Secret | None:
    """The secret of provider ``name`` from the first configured source, or ``None``; a
    message names the file's setting by its source in ``sources``.

    Raises:
        SecretSourceError: The file cannot be read or is empty; the keyring has no entry.
    """
    source = secret_source(values)
    if source == "client_secret":
        return Secret(str(values["client_secret"]))
    if source == "client_secret_file":
        path = Path(str(values["client_secret_file"])).expanduser()
        setting = origin(name, "client_secret_file", sources or {})
        try:
            text = read_bounded(path, setting, limit=_SECRET_LIMIT)
            first = text.decode("utf-8").splitlines()[:1]
        except UntrustedFileError as exc:
            raise SecretSourceError(str(exc)) from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise SecretSourceError(f"{setting} {path}: {reason}") from None
        if not first or not first[0].strip():
            raise SecretSourceError(f"{setting} {path} is empty")
        return Secret(first[0].strip())
    if source == "keyring":
        stored = _keyring().get_password(KEYRING_SERVICE, name)
        if not stored:
            raise SecretSourceError(
                f"the keyring has no secret for {name} (aiofinaccess config set-secret {name})"
            )
        return Secret(stored)
    return None


def store_secret(name: str, secret: Secret) -> None:
    """Put ``secret`` into the system keyring for provider ``name``."""
    _keyring().set_password(KEYRING_SERVICE, name, secret.reveal())


def client_secret_flag(value: str | None, file: str | None) -> str | None:
    """The client secret given on the command line: ``--client-secret-file PATH``,
    ``--client-secret -`` (stdin), or ``--client-secret VALUE`` with a warning.

    Any local user can read a process's command line (``ps``, ``/proc/PID/cmdline``), and
    shells keep it in their history; a file, stdin or ``AIOFINACCESS_<NAME>_CLIENT_SECRET``
    keep the secret out of both.

    Raises:
        SecretSourceError: Both flags given, the file unreadable, or the secret empty.
    """
    if value is not None and file is not None:
        raise SecretSourceError("give --client-secret or --client-secret-file, not both")
    if file is not None:
        try:
            data = read_bounded(Path(file), "--client-secret-file", limit=_SECRET_LIMIT)
            secret = data.decode("utf-8").rstrip("\r\n")
        except UntrustedFileError as exc:
            raise SecretSourceError(str(exc)) from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise SecretSourceError(f"cannot read --client-secret-file {file}: {reason}") from None
    elif value == "-":
        secret = sys.stdin.readline().rstrip("\r\n")
    elif value is not None:
        sys.stderr.write(
            "aiofinaccess: warning: --client-secret on the command line is visible to other "
            "local users (ps, /proc); use --client-secret-file PATH, --client-secret - "
            "(stdin) or AIOFINACCESS_<NAME>_CLIENT_SECRET\n"
        )
        secret = value
    else:
        return None
    if not secret:
        raise SecretSourceError("the client secret is empty (a public client passes none at all)")
    return secret
