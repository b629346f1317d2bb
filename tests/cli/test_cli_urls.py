"""Every URL a user gives the command line is parsed into a one-line error naming its flag,
never a traceback (issue 24, item 6)."""

from __future__ import annotations

import pytest

from aiofinaccess.cli.main import main

LOGIN = ["--client-id", "x", "--no-browser", "--timeout", "0.1"]


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["login", "everifin", "--sandbox", "http://127.0.0.1:99999", *LOGIN], "--sandbox"),
        (["login", "everifin", "--idp-url", "https://example.com:99999/auth", *LOGIN],
         "--idp-url"),
        (["login", "everifin", "--idp-url", "notaurl", *LOGIN], "--idp-url"),
        (["login", "everifin", "--api-url", "http://[::1", *LOGIN], "--api-url"),
        (["login", "oidc", "--name", "corp", "--token-url", "https://example.com:99999/t",
          *LOGIN], "--token-url"),
        (["login", "oidc", "--name", "corp", "--issuer", "https://[::1/", *LOGIN], "--issuer"),
        (["login", "oidc", "--name", "corp", "--issuer", "https://example.com",
          "--authorization-url", "ftp://example.com/auth", "--token-url",
          "https://example.com/token", *LOGIN], "--authorization-url"),
        (["users", "create", "--base-url", "https://example.com:99999/", "--client-id", "x"],
         "--base-url"),
        (["tokens", "refresh", "finapi", "--sandbox", "http://127.0.0.1:99999"], "--sandbox"),
        (["tokens", "list", "--store", "redis://localhost:99999/0"], "Redis URL"),
    ],
)  # fmt: skip
def test_a_bad_url_is_one_line_naming_its_flag(
    argv: list[str], flag: str, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert flag in err
