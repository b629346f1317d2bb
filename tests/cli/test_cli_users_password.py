"""``users create`` never creates a finAPI user whose generated password would be lost: without
``--show-password`` or ``--password-stdin`` it is refused before any request (issue 24, item 6).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from aiofinaccess.cli.main import main
from aiofinaccess.sandbox import Sandbox


async def test_a_password_that_would_be_lost_is_refused_before_the_request(
    sandbox: Sandbox, env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--store", str(tmp_path / "tokens.db"), "--sandbox", sandbox.base_url]
    create = ["users", "create", "--user-id", "dave", *flags]
    assert await asyncio.to_thread(main, [*create, "--login"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "aiofinaccess users create: finAPI would generate the password and it would be lost: "
        "pass --show-password to print it, or choose it with --password-stdin"
    ]
    assert sandbox.stats()["token_requests"] == {}  # nothing was sent
    # dave was not created: the same id is free for a run that keeps the password.
    assert await asyncio.to_thread(main, [*create, "--show-password"]) == 0
    out = capsys.readouterr().out
    assert "created finAPI user dave" in out
    assert "  password: " in out
