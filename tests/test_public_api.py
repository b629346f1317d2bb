"""The import surface: the token layer and its namespaces, each name declared once, resolvable,
documented in the docstring and the reference; every error exported and drawn in the error tree;
the CLI runs."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

import aiofinaccess
import aiofinaccess.errors
import aiofinaccess.everifin
import aiofinaccess.finapi
import aiofinaccess.payments
from aiofinaccess.cli.main import main
from aiofinaccess.core import errors
from tests.support.namespaces import NAMESPACES

ROOT = Path(__file__).resolve().parents[1]
ROOT_ERROR = "AiofinaccessError"
REFERENCE = ROOT / "docs" / "reference"

EXPORTS = [(namespace, name) for namespace in NAMESPACES for name in namespace.__all__]


def export_id(export: tuple[ModuleType, str]) -> str:
    return f"{export[0].__name__}.{export[1]}"


def home_of(namespace: ModuleType, name: str) -> str:
    """The absolute name of the module ``name`` is declared to live in."""
    module = next(m for m, names in namespace._HOMES.items() if name in names.split())
    return importlib.util.resolve_name(module, namespace.__package__)


@pytest.mark.parametrize("namespace", NAMESPACES, ids=lambda ns: ns.__name__)
def test_all_is_sorted_and_importable(namespace: ModuleType) -> None:
    """Every exported name exists, and the list is sorted (constants, classes, functions)."""

    def isort_style(name: str) -> tuple[bool, bool, str]:
        return (not name.isupper(), not name[0].isupper(), name)

    assert namespace.__all__ == sorted(namespace.__all__, key=isort_style)
    for name in namespace.__all__:
        assert hasattr(namespace, name), name


def test_every_public_name_is_exported() -> None:
    """A public class or function imported into the package must be in __all__."""
    public = {
        name
        for name, value in vars(aiofinaccess).items()
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
    }
    assert public - set(aiofinaccess.__all__) == set()


def test_top_level_is_the_token_layer() -> None:
    """The token layer a newcomer holds stays small (the issue's "about 45 names": 45, and the
    first-level PaymentError the error tree puts there)."""
    assert len(aiofinaccess.__all__) <= 46


def test_each_name_is_exported_once() -> None:
    """No name, and no object, is in two namespaces, but for the error tree's root and first
    level: top-level as well as in ``aiofinaccess.errors``, the very same classes."""
    first_level = {name for name, parent in drawn_tree().items() if parent in (None, ROOT_ERROR)}
    top_errors = {
        name
        for name in aiofinaccess.__all__
        if isinstance(getattr(aiofinaccess, name), type)
        and issubclass(getattr(aiofinaccess, name), BaseException)
    }
    assert top_errors == first_level
    for name in top_errors:
        assert getattr(aiofinaccess, name) is getattr(aiofinaccess.errors, name), name
    exports = [
        (namespace, name)
        for namespace, name in EXPORTS
        if not (namespace is aiofinaccess and name in top_errors)
    ]
    names = [name for _namespace, name in exports]
    assert len(names) == len(set(names))
    objects = [id(getattr(namespace, name)) for namespace, name in exports]
    assert len(objects) == len(set(objects))


def test_provider_resources_are_in_their_namespace() -> None:
    """The token layer holds no provider's resources; each provider namespace holds only its own
    resources and the shapes of its error bodies; what both providers' payments share (money,
    client references, their timeouts) is in ``aiofinaccess.payments``, so an Everifin app
    never imports from ``aiofinaccess.finapi``."""
    for namespace, provider in (
        (aiofinaccess.finapi, "finapi"),
        (aiofinaccess.everifin, "everifin"),
    ):
        for name in namespace.__all__:
            home = home_of(namespace, name)
            assert home.startswith(f"aiofinaccess.api.{provider}.") or (
                home == "aiofinaccess.core.error_bodies" and name.endswith("ErrorBody")
            ), name
    for name in aiofinaccess.payments.__all__:
        home = home_of(aiofinaccess.payments, name)
        assert home in ("aiofinaccess.api.money", "aiofinaccess.api.payment_ledger"), name
    for name in aiofinaccess.__all__:
        home = home_of(aiofinaccess, name)
        assert not home.startswith(("aiofinaccess.api.finapi", "aiofinaccess.api.everifin")), name


@pytest.mark.parametrize("export", EXPORTS, ids=export_id)
def test_every_export_has_a_docstring(export: tuple[ModuleType, str]) -> None:
    """Each exported class and function says what it is (its own docstring, not inherited)."""
    namespace, name = export
    value = getattr(namespace, name)
    if inspect.isclass(value) or inspect.isfunction(value):
        assert (value.__doc__ or "").strip(), name


def reference_directives() -> set[str]:
    """What the reference pages document (``::: dotted.name``)."""
    return {
        directive
        for page in REFERENCE.glob("*.md")
        for directive in re.findall(r"^::: ([\w.]+)", page.read_text(), re.MULTILINE)
    }


@pytest.mark.parametrize("export", EXPORTS, ids=export_id)
def test_every_export_is_in_the_reference(export: tuple[ModuleType, str]) -> None:
    """Each name is documented in docs/reference: by its public path, or by its home module's
    page (which lists the module's ``__all__``)."""
    namespace, name = export
    directives = reference_directives()
    home = home_of(namespace, name)
    by_module = home in directives and name in getattr(importlib.import_module(home), "__all__", ())
    assert f"{namespace.__name__}.{name}" in directives or by_module, (name, home)


def error_classes() -> dict[str, type[errors.AiofinaccessError]]:
    """Every error class the library (not the CLI or the sandbox) defines, by name."""
    for module in pkgutil.walk_packages(aiofinaccess.__path__, "aiofinaccess."):
        if not module.name.startswith(
            ("aiofinaccess.cli", "aiofinaccess.sandbox", "aiofinaccess.__main__")
        ):
            importlib.import_module(module.name)
    found: dict[str, type[errors.AiofinaccessError]] = {}
    pending: list[type[errors.AiofinaccessError]] = [errors.AiofinaccessError]
    while pending:
        cls = pending.pop()
        if not cls.__module__.startswith("aiofinaccess.cli"):
            assert found.setdefault(cls.__name__, cls) is cls, cls
        pending.extend(cls.__subclasses__())
    return found


def drawn_tree() -> dict[str, str | None]:
    """The error tree in :mod:`aiofinaccess.core.errors`'s docstring, as ``{name: parent}``."""
    assert errors.__doc__ is not None
    drawing = errors.__doc__.split("\n\n")[1]  # the indented block after the summary line
    lines = drawing.splitlines()
    root = lines[0].strip()
    indent = len(lines[0]) - len(root)
    tree: dict[str, str | None] = {root: None}
    parents = [root]
    for line in lines[1:]:
        match = re.match(r"((?:│   |    )*)[├└]── (\w+)", line[indent:])
        assert match, line
        depth = len(match.group(1)) // 4 + 1
        parents[depth:] = [match.group(2)]
        tree[match.group(2)] = parents[depth - 1]
    return tree


def test_every_error_is_exported() -> None:
    """Whatever the library can raise, a caller can name: ``aiofinaccess.errors.<Error>``."""
    classes = error_classes()
    for name, cls in classes.items():
        assert getattr(aiofinaccess.errors, name, None) is cls, name
    assert {name for name in aiofinaccess.errors.__all__ if not name.endswith("ErrorBody")} == set(
        classes
    )


def test_the_error_tree_matches_the_classes() -> None:
    """The drawn tree has every error class, each under its real parent, and nothing else."""
    actual: dict[str, str | None] = {}
    for name, cls in error_classes().items():
        parent = next(
            (base for base in cls.__mro__[1:] if issubclass(base, errors.AiofinaccessError)), None
        )
        actual[name] = parent.__name__ if parent is not None else None
    assert drawn_tree() == actual


def test_the_error_reference_shows_the_tree() -> None:
    """docs/reference/errors.md renders the module whose docstring draws the tree."""
    assert "aiofinaccess.core.errors" in re.findall(
        r"^::: ([\w.]+)", (REFERENCE / "errors.md").read_text(), re.MULTILINE
    )


def test_demo_command_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's demo command path, in-process."""
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "demo: 33 steps, all steps passed" in out
    assert "FAILED" not in out
    for shown in ("ConnectionExpiring, lead 7 days", "ReconnectRequired EXPIRED, episode 1"):
        assert shown in out  # the connection steps (issue 25)
    assert "ConnectionRepaired, episode 1" in out
    assert "session_state EXPIRING" in out


def test_unknown_command_exits_non_zero() -> None:
    """argparse refuses with exit code 2."""
    with pytest.raises(SystemExit) as info:
        main(["nope"])
    assert info.value.code == 2
