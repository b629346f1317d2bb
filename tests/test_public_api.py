"""The import surface: __all__ is sorted, complete and importable; the CLI runs."""

from __future__ import annotations

import inspect

import pytest

import aiofinaccess
from aiofinaccess.cli.main import main


def test_all_is_sorted_and_importable() -> None:
    """Every exported name exists, and the list is kept sorted (constants, classes, functions)."""

    def isort_style(name: str) -> tuple[bool, bool, str]:
        return (not name.isupper(), not name[0].isupper(), name)

    assert aiofinaccess.__all__ == sorted(aiofinaccess.__all__, key=isort_style)
    for name in aiofinaccess.__all__:
        assert hasattr(aiofinaccess, name), name


def test_every_public_name_is_exported() -> None:
    """A public class or function imported into the package must be in __all__."""
    public = {
        name
        for name, value in vars(aiofinaccess).items()
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
    }
    assert public - set(aiofinaccess.__all__) == set()


def test_public_api_is_documented() -> None:
    """Every exported class and function has a docstring."""
    missing = [
        name
        for name in aiofinaccess.__all__
        if (
            inspect.isclass(getattr(aiofinaccess, name))
            or inspect.isfunction(getattr(aiofinaccess, name))
        )
        and not inspect.getdoc(getattr(aiofinaccess, name))
    ]
    assert missing == []


def test_finapi_data_names_are_exported() -> None:
    """The finAPI data module's public names (issue 17), added deliberately."""
    assert {
        "AccountFilters",
        "BankConnection",
        "DailyBalance",
        "DailyBalances",
        "FinApiAccount",
        "FinApiBank",
        "FinApiData",
        "FinApiDataRoutes",
        "FinApiSyncCursor",
        "FinApiTransaction",
        "FinApiTransactionSync",
        "IncrementalSync",
        "Paging",
        "TransactionFilters",
        "TransactionPage",
    } <= set(aiofinaccess.__all__)
    assert aiofinaccess.FinApiData.__module__ == "aiofinaccess.api.finapi_data"


def test_demo_command_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's demo command path, in-process."""
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "all steps passed" in out
    assert "FAILED" not in out


def test_unknown_command_exits_non_zero() -> None:
    """argparse refuses with exit code 2."""
    with pytest.raises(SystemExit) as info:
        main(["nope"])
    assert info.value.code == 2


def test_refresh_duty_is_exported() -> None:
    """The store side of the refresh duty (issue 16), added deliberately."""
    from aiofinaccess.stores import RefreshDuty  # noqa: PLC0415

    assert aiofinaccess.RefreshDuty is RefreshDuty
    assert "RefreshDuty" in aiofinaccess.__all__
