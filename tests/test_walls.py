"""The walls between the layers, read from the source (every import, also inside functions and
``if TYPE_CHECKING:``), so a module importing upwards fails here before it ships.

An AST walk rather than import-linter: the rules include an allow-list of third-party libraries
for ``core`` and the one module each optional library may live in, which import-linter's
forbidden-module contracts can only state as lists of everything else; the walk is fifty lines,
needs no new dependency and runs in milliseconds.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "aiofinaccess"

#: Layer -> the layers it may import ("" is the package's public surface, ``aiofinaccess``).
MAY_IMPORT: dict[str, frozenset[str]] = {
    "core": frozenset({"core"}),
    "oauth": frozenset({"core", "oauth"}),
    "stores": frozenset({"core", "stores"}),
    "session": frozenset({"core", "oauth", "stores", "session"}),
    "api": frozenset({"core", "oauth", "session", "api"}),
    "integrations": frozenset({"", "core", "oauth", "stores", "session", "api", "integrations"}),
    "cli": frozenset({"", "core", "oauth", "stores", "session", "api", "integrations", "cli"}),
    "sandbox": frozenset({"sandbox"}),
    # The surface itself, ``__main__`` (runs the CLI) and ``testing`` (the plugin's stable name).
    "": frozenset({"", "core", "oauth", "stores", "session", "api", "integrations", "cli"}),
}

#: The client-side modules that may start the sandbox: the demo (and its payment steps, which
#: steer the sandbox's bank), the ``aiofinaccess sandbox`` command and the pytest fixtures.
SANDBOX_GATES = frozenset(
    {
        "aiofinaccess.cli.demo",
        "aiofinaccess.cli.demo_everifin_payments",
        "aiofinaccess.cli.demo_payments",
        "aiofinaccess.cli.sandbox",
        "aiofinaccess.integrations.testing",
    }
)

#: The providers' resource packages under ``api``: neither imports the other.
PROVIDER_PACKAGES = frozenset({"aiofinaccess.api.finapi", "aiofinaccess.api.everifin"})

#: The only third-party libraries ``core`` may import (besides the standard library).
CORE_LIBRARIES = frozenset({"attrs", "cattrs"})

#: Optional libraries (extras) and the one module each may be imported in, so that
#: ``import aiofinaccess`` never needs an extra.
OPTIONAL: dict[str, frozenset[str]] = {
    "redis": frozenset({"aiofinaccess.stores.redis"}),
    "asyncpg": frozenset({"aiofinaccess.stores._pg_pool"}),
    "cryptography": frozenset({"aiofinaccess.stores.codec"}),
    "keyring": frozenset({"aiofinaccess.cli.secrets"}),
    "httpx": frozenset({"aiofinaccess.integrations.httpx"}),
    "starlette": frozenset({"aiofinaccess.integrations.starlette"}),
    "fastapi": frozenset({"aiofinaccess.integrations.starlette"}),
    "opentelemetry": frozenset({"aiofinaccess.integrations.otel"}),
    "pytest": frozenset({"aiofinaccess.integrations.testing"}),
    "pytest_asyncio": frozenset({"aiofinaccess.integrations.testing"}),
}


def layer_of(module: str) -> str:
    """``aiofinaccess.session.manager`` -> ``session``; the package's own modules -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in MAY_IMPORT else ""


def provider_package(module: str) -> str | None:
    """``aiofinaccess.api.finapi.users`` -> ``aiofinaccess.api.finapi``; else ``None``."""
    return next((p for p in PROVIDER_PACKAGES if module == p or module.startswith(p + ".")), None)


def apart(module: str, target: str) -> bool:
    """Whether ``module`` reaches into the other provider's resources."""
    home, there = provider_package(module), provider_package(target)
    return home is not None and there is not None and home != there


def imported(module: str, source: str, *, is_package: bool) -> Iterator[tuple[int, str]]:
    """Every module ``source`` imports, absolute, with its line."""
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.lineno, node.module or ""
            else:
                parent = base[: len(base) - node.level + 1]
                yield node.lineno, ".".join([*parent, *filter(None, [node.module])])


def violations(module: str, source: str, *, is_package: bool = False) -> list[str]:
    """Each import of ``module`` that crosses a wall, as ``module:line -> target (why)``."""
    found = []
    layer = layer_of(module)
    for line, target in imported(module, source, is_package=is_package):
        top = target.split(".")[0]
        where = f"{module}:{line} -> {target}"
        if top == "aiofinaccess":
            wanted = layer_of(target)
            if wanted == "sandbox" and layer != "sandbox":
                if module not in SANDBOX_GATES:
                    found.append(f"{where} (only {sorted(SANDBOX_GATES)} may start the sandbox)")
            elif wanted not in MAY_IMPORT[layer]:
                found.append(f"{where} ({layer or 'the surface'} may not import {wanted or 'it'})")
            elif apart(module, target):
                found.append(f"{where} (the providers' resources stay apart)")
        elif layer == "core" and top not in sys.stdlib_module_names | CORE_LIBRARIES:
            found.append(f"{where} (core imports only the standard library, attrs, cattrs)")
        elif top in OPTIONAL and module not in OPTIONAL[top]:
            found.append(f"{where} (optional: only in {sorted(OPTIONAL[top])})")
    return found


def package_modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def test_no_module_imports_across_a_wall() -> None:
    """The whole package keeps its walls."""
    found = [
        violation
        for module, path in package_modules()
        for violation in violations(module, path.read_text(), is_package=path.stem == "__init__")
    ]
    assert found == []


def test_every_module_is_in_a_known_layer() -> None:
    """A new subpackage must be given its wall here before it can hide from this test."""
    subpackages = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists()}
    assert subpackages
    assert subpackages <= set(MAY_IMPORT)


@pytest.mark.parametrize(
    ("module", "source", "why"),
    [
        ("aiofinaccess.core.tokens", "from ..session.manager import SessionManager", "core"),
        ("aiofinaccess.core.clock", "import aiohttp", "standard library"),
        ("aiofinaccess.core.clock", "from aiofinaccess import Secret", "core may not import it"),
        ("aiofinaccess.oauth.client", "from ..stores import TokenStore", "oauth"),
        ("aiofinaccess.stores.memory", "from ..oauth import client", "stores"),
        ("aiofinaccess.session.manager", "from ..api.finapi.users import Users", "session"),
        ("aiofinaccess.api.finapi.users", "from ...stores.sqlite import SQLiteStore", "api"),
        ("aiofinaccess.api.finapi.users", "def f():\n    from ...integrations import web", "api"),
        ("aiofinaccess.api.finapi.data", "from ..everifin import bankconnect", "stay apart"),
        ("aiofinaccess.integrations.web", "from ..cli.main import main", "integrations"),
        ("aiofinaccess.integrations.web", "from ..sandbox import run_sandbox", "sandbox"),
        ("aiofinaccess.session.manager", "import aiofinaccess.sandbox.app", "sandbox"),
        ("aiofinaccess.sandbox.app", "from ..core.tokens import Secret", "sandbox"),
        ("aiofinaccess.sandbox.app", "import aiofinaccess", "sandbox may not import it"),
        ("aiofinaccess.stores.sqlite", "import redis", "optional"),
        ("aiofinaccess.stores.postgres", "import asyncpg", "optional"),
        ("aiofinaccess.session.manager", "import httpx", "optional"),
        ("aiofinaccess.session", "from .manager import x\nfrom ..api import y", "session"),
    ],
)
def test_a_wall_crossing_is_caught(module: str, source: str, why: str) -> None:
    """Each rule can fail: an upward import in a made-up module is reported."""
    is_package = module == "aiofinaccess.session"
    found = violations(module, source, is_package=is_package)
    assert len(found) == 1, found
    assert why in found[0]


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("aiofinaccess.api.finapi.users", "from ...session.manager import SessionManager"),
        ("aiofinaccess.api.finapi.users", "from ..pipeline import ApiClient"),
        ("aiofinaccess.core.tokens", "import attrs\nimport cattrs.gen\nfrom . import errors"),
        ("aiofinaccess.integrations.testing", "from ..sandbox import run_sandbox\nimport pytest"),
        (
            "aiofinaccess.cli.demo",
            "from aiofinaccess.everifin import BankConnect\nfrom ..sandbox import x",
        ),
        ("aiofinaccess.stores.redis", "import redis.asyncio"),
        ("aiofinaccess.sandbox.app", "from aiohttp import web\nfrom .state import SandboxState"),
    ],
)
def test_an_allowed_import_passes(module: str, source: str) -> None:
    """Imports down the layers, and the gates, are not reported."""
    assert violations(module, source) == []
