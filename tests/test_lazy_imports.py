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

import pytest
from mypy import api as mypy_api

import aiofinaccess

ROOT = Path(__file__).resolve().parents[1]
INIT = ROOT / "aiofinaccess" / "__init__.py"

#: Modules nobody needs to hold a fresh token: none may load with the package or the token path.
HEAVY = (
    "aiohttp.web",
    "aiofinaccess.api",
    "aiofinaccess.cli",
    "aiofinaccess.integrations.web",
    "aiofinaccess.sandbox",
    "aiofinaccess.stores.codec",
    "aiofinaccess.stores.redis",
    "aiofinaccess.stores.sqlite",
    "aiosqlite",
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
        "aiofinaccess.core._hygiene",
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


def test_a_model_does_not_load_the_session_manager() -> None:
    """Resource modules name the manager in annotations only."""
    modules = loaded_after("from aiofinaccess import BankConnect, FinApiData, Users, WebForms")
    assert "aiofinaccess.api.bankconnect" in modules
    assert "aiofinaccess.session.manager" not in modules


def type_checking_imports() -> dict[str, tuple[str, ...]]:
    """The ``if TYPE_CHECKING:`` imports of the package, as ``{".module": names}``."""
    tree = ast.parse(INIT.read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    )
    return {
        "." + node.module: tuple(alias.name for alias in node.names)
        for node in block.body
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }


def test_lazy_table_matches_the_typed_imports() -> None:
    """What mypy sees and what ``__getattr__`` loads are the same names in the same modules,
    and together exactly ``__all__``."""
    homes = {module: tuple(names.split()) for module, names in aiofinaccess._HOMES.items()}
    assert type_checking_imports() == homes
    names = [name for group in homes.values() for name in group]
    assert sorted(names) == sorted(aiofinaccess.__all__)
    assert len(names) == len(set(names))


def test_every_name_comes_from_its_home() -> None:
    """Each lazily loaded name is the very object of the module it lives in."""
    for module, names in aiofinaccess._HOMES.items():
        home = importlib.import_module(module, "aiofinaccess")
        for name in names.split():
            assert getattr(aiofinaccess, name) is getattr(home, name), name


def test_dir_lists_every_public_name_before_first_use() -> None:
    """``dir()`` shows the whole surface in a fresh interpreter, loaded or not."""
    names = json.loads(
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import aiofinaccess, json; print(json.dumps(dir(aiofinaccess)))",
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
    )
    assert set(aiofinaccess.__all__) <= set(names)


def test_unknown_name_is_an_attribute_error() -> None:
    """A misspelt name fails like on any module (and ``hasattr`` says False)."""
    with pytest.raises(AttributeError, match="SessionManger"):
        _ = aiofinaccess.SessionManger  # type: ignore[attr-defined]
    assert not hasattr(aiofinaccess, "_HOME_OF_NOTHING")


def test_public_names_are_precisely_typed_for_mypy_strict(tmp_path: Path) -> None:
    """mypy --strict reveals every exported name as its real class or function, not ``object``
    or ``Any``; a misspelt name is an error, not a silent ``object``."""
    names = aiofinaccess.__all__
    user = tmp_path / "user_code.py"
    user.write_text(
        "from aiofinaccess import (\n"
        + "".join(f"    {name},\n" for name in names)
        + ")\nimport aiofinaccess\n\n"
        + "".join(f"reveal_type({name})\n" for name in names)
        + "aiofinaccess.SessionManger\n"
    )
    out, _err, _status = mypy_api.run(
        ["--strict", "--cache-dir", str(ROOT / ".mypy_cache"), "--no-error-summary", str(user)]
    )
    revealed = {}
    errors = []
    for line in out.splitlines():
        number = int(line.split(":")[1])
        if "Revealed type is" in line:
            revealed[names[number - len(names) - 5]] = line.split('"', 1)[1].rsplit('"', 1)[0]
        elif ": error:" in line:
            errors.append(line)
    assert len(revealed) == len(names), out
    for name in names:
        value = getattr(aiofinaccess, name)
        shown = revealed[name]
        if inspect.isclass(value):  # the constructor of the very class (generic or not)
            made = re.escape(f"-> {value.__module__}.{value.__qualname__}")
            assert re.search(made + r"(\[.*\])?$", shown), (name, shown)
        else:  # a function, a constant, a type alias: typed by what it is made of
            assert "aiofinaccess." in shown, (name, shown)
            assert not shown.startswith("Any"), (name, shown)
    assert len(errors) == 1, errors
    assert "SessionManger" in errors[0]
