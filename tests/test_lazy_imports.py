"""The import surface loads on first use and stays precisely typed.

``import aiofinaccess`` must not pay for what an app may never use (aiohttp.web, the resource
modules, the store drivers, the codecs, the CLI), and every name it exports must still reach a
mypy --strict user as the real class or function, not ``object``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from mypy import api as mypy_api

import aiofinaccess
import aiofinaccess.everifin
import aiofinaccess.finapi
from tests.support.namespaces import NAMESPACES

ROOT = Path(__file__).resolve().parents[1]


#: Modules nobody needs to hold a fresh token: none may load with the package or the token path.
HEAVY = (
    "aiohttp.web",
    "aiofinaccess.api",
    "aiofinaccess.cli",
    # The bank connections' records, registry and events: they load with ``manager.connections``
    # or a login, never with a token.
    "aiofinaccess.core.connections",
    "aiofinaccess.core.convert",
    "aiofinaccess.core.error_bodies",
    # Backoff: only a failed renewal or a retried request waits.
    "aiofinaccess.core.retry",
    "aiofinaccess.integrations.web",
    "aiofinaccess.oauth.authorization",
    # The token request and its retries: a token served from memory or the store sends none.
    "aiofinaccess.oauth.client",
    "aiofinaccess.oauth.error_bodies",
    "aiofinaccess.oauth.transport",
    "aiofinaccess.sandbox",
    "aiofinaccess.session.connection_events",
    "aiofinaccess.session.connections",
    # The event records and the subscriber adapters: a first token builds no event while nobody
    # listens (the records load with the first listener).
    "aiofinaccess.session.events",
    "aiofinaccess.session.redeem",
    "aiofinaccess.session.retrying",
    "aiofinaccess.stores.codec",
    "aiofinaccess.stores.postgres",
    "aiofinaccess.stores.redis",
    "aiofinaccess.stores.sqlite",
    "aiosqlite",
    "asyncpg",
    "cattrs",
    "redis",
    "sqlite3",
    "tenacity",
)


def loaded_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after ``statement``."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(  # noqa: S603  (our own interpreter and code)
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(json.loads(done.stdout))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules for h in HEAVY if m == h or m.startswith(h + "."))


def test_import_loads_no_optional_layer() -> None:
    """A bare import loads nothing but the package and its log hygiene."""
    modules = loaded_after("import aiofinaccess")
    assert heavy_in(modules) == []
    assert {m for m in modules if m.startswith("aiofinaccess")} == {
        "aiofinaccess",
        "aiofinaccess.core",
        "aiofinaccess.core._exports",
        "aiofinaccess.core._hygiene",
    }


def test_importing_a_namespace_loads_none_of_its_names() -> None:
    """``import aiofinaccess.finapi`` (or any other namespace) loads none of its names' modules."""
    modules = loaded_after(f"import {', '.join(ns.__name__ for ns in NAMESPACES)}")
    assert heavy_in(modules) == []
    assert {m for m in modules if m.startswith("aiofinaccess")} == {
        "aiofinaccess",
        "aiofinaccess.core",
        "aiofinaccess.core._exports",
        "aiofinaccess.core._hygiene",
        *(ns.__name__ for ns in NAMESPACES),
    }


def test_fresh_token_path_loads_no_optional_layer() -> None:
    """What holding a token needs (manager, provider, credentials, middleware) loads without
    aiohttp.web, a resource module, a store driver, a codec or the CLI."""
    modules = loaded_after(
        "from aiofinaccess import BearerAuth, ClientCredentials, Everifin, MemoryStore, "
        "SessionManager"
    )
    assert "aiofinaccess.session.manager" in modules  # the statement did load the path
    assert heavy_in(modules) == []


def test_sqlite_token_path_loads_no_converter() -> None:
    """With SQLiteStore the token path loads the store's module, and neither aiosqlite nor
    cattrs: the driver loads with the store's first connection, the codec's converter with the
    first record read or written."""
    modules = loaded_after(
        "from aiofinaccess import BearerAuth, ClientCredentials, Everifin, SessionManager, "
        "SQLiteStore"
    )
    assert "aiofinaccess.stores.sqlite" in modules
    driver = ("aiofinaccess.stores.sqlite", "aiofinaccess.stores.codec", "sqlite3")
    assert [m for m in heavy_in(modules) if not m.startswith(driver)] == []


#: A first token served from the store: a fresh interpreter restores a set another manager
#: stored, with no listener and then with one. Prints whether the event records had loaded
#: after each, and the events the listener saw.
ADOPTION = """
import asyncio, json, sys, time
from aiofinaccess import ClientCredentials, Everifin, Schedule, SessionManager, SQLiteStore
from aiofinaccess.core.tokens import Anchor, parse_token_response

PATH, PROVIDER = sys.argv[1], Everifin.at("https://auth.invalid/auth", "https://api.invalid")
BODY = {"access_token": "at", "refresh_token": "rt", "expires_in": 3600, "token_type": "Bearer"}

def manager() -> SessionManager:
    made = SessionManager(store=SQLiteStore(PATH), schedule=Schedule(enabled=False))
    made.register(PROVIDER, ClientCredentials("client", "secret"))
    return made

async def main() -> None:
    async with manager() as first:
        sent = Anchor(time.time(), time.monotonic())
        await first.store_token_set("everifin", "u", parse_token_response(BODY, sent=sent))
    loaded = []
    seen = []
    for listen in (False, True):
        async with manager() as restarted:
            if listen:
                restarted.subscribe(lambda event: seen.append(repr(event)))
            assert await restarted.access_token("everifin", "u") == "at"
        loaded.append("aiofinaccess.session.events" in sys.modules)
    print(json.dumps({"loaded": loaded, "seen": seen}))

asyncio.run(main())
"""


def test_a_first_token_from_the_store_builds_no_event_nobody_hears(tmp_path: Path) -> None:
    """Adopting a stored set loads no event record without a listener; with one, the listener
    gets the adoption's event as before."""
    done = subprocess.run(  # noqa: S603  (our own interpreter and code)
        [sys.executable, "-c", ADOPTION, str(tmp_path / "tokens.db")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["loaded"] == [False, True]
    assert len(found["seen"]) == 1
    assert found["seen"][0].startswith("Refreshed(")
    assert "grant='adopted'" in found["seen"][0]


def test_a_model_does_not_load_the_session_manager() -> None:
    """Resource modules name the manager in annotations only."""
    modules = loaded_after(
        "from aiofinaccess.everifin import BankConnect\n"
        "from aiofinaccess.finapi import FinApiData, Users, WebForms"
    )
    assert "aiofinaccess.api.everifin.bankconnect" in modules
    assert "aiofinaccess.session.manager" not in modules


def source_of(namespace: ModuleType) -> Path:
    assert namespace.__file__ is not None
    return Path(namespace.__file__)


def type_checking_imports(namespace: ModuleType) -> dict[str, tuple[str, ...]]:
    """The ``if TYPE_CHECKING:`` imports of a namespace, as ``{".module": names}``; each must
    be an explicit re-export (``import X as X``), the form mypy --strict reads as exported."""
    tree = ast.parse(source_of(namespace).read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    )
    found: dict[str, tuple[str, ...]] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom), ast.unparse(node)
        assert node.level == 1, ast.unparse(node)
        assert node.module is not None
        for alias in node.names:
            assert alias.asname == alias.name, ast.unparse(node)
        module = "." + node.module
        found[module] = found.get(module, ()) + tuple(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("namespace", NAMESPACES, ids=lambda ns: ns.__name__)
def test_lazy_table_matches_the_typed_imports(namespace: ModuleType) -> None:
    """What mypy sees and what ``__getattr__`` loads are the same names in the same modules,
    and together exactly ``__all__``."""
    homes = {module: tuple(names.split()) for module, names in namespace._HOMES.items()}
    assert type_checking_imports(namespace) == homes
    names = [name for group in homes.values() for name in group]
    assert sorted(names) == sorted(namespace.__all__)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("namespace", NAMESPACES, ids=lambda ns: ns.__name__)
def test_every_name_comes_from_its_home(namespace: ModuleType) -> None:
    """Each lazily loaded name is the very object of the module it lives in."""
    for module, names in namespace._HOMES.items():
        home = importlib.import_module(module, namespace.__package__)
        for name in names.split():
            assert getattr(namespace, name) is getattr(home, name), name


@pytest.mark.parametrize("namespace", NAMESPACES, ids=lambda ns: ns.__name__)
def test_dir_lists_every_public_name_before_first_use(namespace: ModuleType) -> None:
    """``dir()`` shows the whole surface in a fresh interpreter, loaded or not."""
    code = f"import {namespace.__name__} as ns, json; print(json.dumps(dir(ns)))"
    names = json.loads(
        subprocess.run(  # noqa: S603  (our own interpreter and code)
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout
    )
    assert set(namespace.__all__) <= set(names)


def test_unknown_name_is_an_attribute_error() -> None:
    """A misspelt name fails like on any module (and ``hasattr`` says False)."""
    with pytest.raises(AttributeError, match="SessionManger"):
        _ = aiofinaccess.SessionManger  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match=r"'aiofinaccess\.finapi' has no attribute 'Userz'"):
        _ = aiofinaccess.finapi.Userz  # type: ignore[attr-defined]
    assert not hasattr(aiofinaccess, "_HOME_OF_NOTHING")
    assert not hasattr(aiofinaccess.everifin, "FinApiData")


def test_public_names_are_precisely_typed_for_mypy_strict(tmp_path: Path) -> None:
    """mypy --strict reveals every exported name as its real class or function, not ``object``
    or ``Any``; a misspelt name is an error, not a silent ``object``."""
    exports = [(namespace, name) for namespace in NAMESPACES for name in namespace.__all__]
    header = "".join(
        f"from {namespace.__name__} import (\n"
        + "".join(f"    {name},\n" for name in namespace.__all__)
        + ")\n"
        for namespace in NAMESPACES
    )
    header += "import aiofinaccess\nimport aiofinaccess.finapi\n\n"
    first = header.count("\n") + 1
    user = tmp_path / "user_code.py"
    user.write_text(
        header
        + "".join(f"reveal_type({name})\n" for _namespace, name in exports)
        + "aiofinaccess.SessionManger\naiofinaccess.finapi.Userz\n"
    )
    out, _err, _status = mypy_api.run(
        ["--strict", "--cache-dir", str(ROOT / ".mypy_cache"), "--no-error-summary", str(user)]
    )
    revealed = {}
    errors = []
    for line in out.splitlines():
        number = int(line.split(":")[1])
        if "Revealed type is" in line:
            revealed[exports[number - first]] = line.split('"', 1)[1].rsplit('"', 1)[0]
        elif ": error:" in line:
            errors.append(line)
    assert len(revealed) == len(exports), out
    for namespace, name in exports:
        value = getattr(namespace, name)
        shown = revealed[namespace, name]
        if inspect.isclass(value):  # the constructor of the very class (generic or not)
            made = re.escape(f"-> {value.__module__}.{value.__qualname__}")
            assert re.search(made + r"(\[.*\])?$", shown), (name, shown)
        elif inspect.isfunction(value):  # its own signature
            assert shown.startswith("def ("), (name, shown)
        else:  # a constant, a type alias: typed by what it is made of
            assert "aiofinaccess." in shown, (name, shown)
            assert not shown.startswith("Any"), (name, shown)
    assert len(errors) == 2, errors
    assert "SessionManger" in errors[0]
    assert "Userz" in errors[1]
