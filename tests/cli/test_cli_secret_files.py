"""A client secret file is read without waiting on a FIFO and without slurping a huge file
(left open by issue 22's review: ``client_secret_file`` was a plain ``read_text()``)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aiofinaccess.cli.secrets import SecretSourceError, client_secret, client_secret_flag


def _within(seconds: float, call: Callable[[], object]) -> BaseException | object:
    """Run ``call`` in a thread; what it returned or raised, or TimeoutError if it hung."""
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return outcome[0] if outcome else TimeoutError(f"still waiting after {seconds} s")


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "secret.fifo"
    os.mkfifo(path)
    yield path
    # Unblock a reader left waiting by a regression, so the thread ends.
    with contextlib.suppress(OSError):
        descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(descriptor)


@pytest.mark.parametrize(
    "read",
    [
        lambda path: client_secret("everifin", {"client_secret_file": str(path)}),
        lambda path: client_secret_flag(None, str(path)),
    ],
    ids=["client_secret_file", "--client-secret-file"],
)
def test_a_fifo_is_refused_at_once(fifo: Path, read: Callable[[Path], object]) -> None:
    outcome = _within(5.0, lambda: read(fifo))
    assert isinstance(outcome, SecretSourceError), outcome
    assert "regular file" in str(outcome)


@pytest.mark.parametrize(
    "read",
    [
        lambda path: client_secret("everifin", {"client_secret_file": str(path)}),
        lambda path: client_secret_flag(None, str(path)),
    ],
    ids=["client_secret_file", "--client-secret-file"],
)
def test_a_huge_file_is_refused(tmp_path: Path, read: Callable[[Path], object]) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"s" * 100_000)
    with pytest.raises(SecretSourceError, match="longer than"):
        read(path)


def test_a_mounted_secret_through_a_link_still_reads(tmp_path: Path) -> None:
    """Kubernetes mounts secrets as links into a timestamped directory: followed."""
    target = tmp_path / "..data"
    target.mkdir()
    (target / "secret").write_text("s3cret\n")
    link = tmp_path / "secret"
    link.symlink_to(target / "secret")
    found = client_secret("everifin", {"client_secret_file": str(link)})
    assert found is not None
    assert found.reveal() == "s3cret"
