"""``login`` started with SIGINT ignored (``trap '' INT``, a background start) still stops on
SIGINT, with its own message, instead of waiting out its timeout and reporting that (issue 24,
item 6). Only a subprocess can inherit an ignored SIGINT."""

from __future__ import annotations

import asyncio
import signal
import sys

import pytest

from aiofinaccess.cli.main import main
from aiofinaccess.sandbox import Sandbox


async def _login_then_sigint(sandbox: Sandbox, env: dict[str, str]) -> tuple[int, str]:
    """Start ``login`` with SIGINT ignored, send SIGINT once it waits; exit code, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiofinaccess",
        "login",
        "everifin",
        "--sandbox",
        sandbox.base_url,
        "--no-browser",
        "--timeout",
        "20",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(60):
            while not (await process.stdout.readline()).startswith(b"http"):
                pass
            process.send_signal(signal.SIGINT)
            _, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_sigint_stops_a_login_that_inherited_it_ignored(
    sandbox: Sandbox, env: dict[str, str]
) -> None:
    code, err = await _login_then_sigint(sandbox, env)
    assert (code, err) == (130, "aiofinaccess login everifin: interrupted\n")


async def test_a_login_run_off_the_main_thread_still_waits_and_times_out(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``main()`` called from a worker thread cannot take SIGINT; the wait is left to the
    timeout instead of failing."""
    argv = ["login", "everifin", "--sandbox", "http://127.0.0.1:1", "--no-browser"]
    assert await asyncio.to_thread(main, [*argv, "--timeout", "0.2"]) == 1
    assert capsys.readouterr().err == "aiofinaccess login everifin: no login within 0.2 s\n"
