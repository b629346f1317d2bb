"""A keyring backend for the CLI tests: a JSON file named by ``AIOFINACCESS_TEST_KEYRING``.

Selected with ``PYTHON_KEYRING_BACKEND=tests.support.keyring_backend.FileKeyring``, so the CLI goes
through the real ``keyring`` package without touching the machine's own keyring.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend


class FileKeyring(KeyringBackend):
    """Passwords in a JSON file: ``{"service/user": password}``."""

    priority = 1  # type: ignore[assignment]  # keyring declares it a classproperty

    def _load(self) -> tuple[Path, dict[str, str]]:
        path = Path(os.environ["AIOFINACCESS_TEST_KEYRING"])
        return path, json.loads(path.read_text()) if path.exists() else {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._load()[1].get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        path, data = self._load()
        data[f"{service}/{username}"] = password
        path.write_text(json.dumps(data))

    def delete_password(self, service: str, username: str) -> None:
        path, data = self._load()
        data.pop(f"{service}/{username}", None)
        path.write_text(json.dumps(data))
