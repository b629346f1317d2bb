"""``demo --help`` says what the demo does; ``sandbox --help`` shows each lifetime's and fault
option's default and the fault kinds (issue 24, item 6)."""

from __future__ import annotations

import pytest

from aiofinaccess.cli.main import main
from aiofinaccess.sandbox import FAULT_KINDS


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_demo_help_describes_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(["demo"], capsys)
    assert "embedded sandbox" in text
    assert "exit status is 1 if a step fails" in text


@pytest.mark.parametrize(
    ("option", "default"),
    [
        ("--finapi-client-ttl SECONDS", "3600"),
        ("--finapi-user-ttl SECONDS", "3600"),
        ("--keycloak-access-ttl SECONDS", "300"),
        ("--sso-idle SECONDS", "1800"),
        ("--sso-max SECONDS", "36000"),
        ("--keycloak-max-reuse N", "0"),
        ("--fault-rate RATE", "0"),
        ("--retry-after SECONDS", "1"),
        ("--latency SECONDS", "0"),
        ("--fault-scope {token,api,all}", "all"),
    ],
)
def test_sandbox_help_shows_each_default(
    option: str, default: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _help(["sandbox"], capsys)
    described = text.split(f" {option} ", 1)[1].split(" --", 1)[0]  # up to the next option
    assert f"(default: {default})" in described, described


def test_sandbox_help_lists_the_fault_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(["sandbox"], capsys)
    assert f"kinds: {', '.join(FAULT_KINDS)}" in text
    assert "(default: 500,502,503,drop,malformed,html,429)" in text
