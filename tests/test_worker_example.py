"""examples/worker.py against the sandbox: every connected user found in the shared store and
synced; a user whose grant died is named to the reconnect hook and skipped; a second round
brings only what changed."""

from __future__ import annotations

import time
from pathlib import Path

from aiofinaccess import GrantLost, SQLiteStore, TokenSet
from aiofinaccess.sandbox import Sandbox
from tests.support.examples import load_example


async def test_the_worker_syncs_every_connected_user(sandbox: Sandbox, tmp_path: Path) -> None:
    worker = load_example("worker")
    path = tmp_path / "tokens.db"
    # The web process: two users connect; a third one's session is already dead.
    async with worker.make_manager(sandbox.base_url, SQLiteStore(path)) as web:
        await worker.connect_demo_users(web, ["alice", "bob"])
        now = time.time()
        dead = TokenSet("at-dead", issued_at=now - 600, expires_at=now - 300, refresh_token="rt-x")
        await web.store_token_set("everifin", "carol", dead)
    # The worker process, on the same store.
    told: list[str | None] = []
    async with worker.make_manager(sandbox.base_url, SQLiteStore(path)) as manager:

        def reconnect(event: GrantLost) -> None:
            told.append(event.subject)

        manager.on_reauth_required(reconnect)
        cursors: dict[str, object] = {}
        first = await worker.sync_all(manager, cursors)
        assert set(first) == {"alice", "bob"}
        expected = 3 * sandbox.config.transactions_per_account  # 3 active accounts each
        assert first == {"alice": expected, "bob": expected}
        assert told == ["carol"]
        assert len(cursors) == 6
        second = await worker.sync_all(manager, cursors)
    assert second == {"alice": 0, "bob": 0}
    assert told == ["carol"]  # told once: the dead grant is refused without a new request
    assert sandbox.stats()["token_requests"]["everifin_authorization_code"] == 2
