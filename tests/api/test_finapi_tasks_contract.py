"""Contract: connection updates and consent state, as the SDK sends and reads them and as the
sandbox answers, validate against finAPI's specs.

Every exchange of the journey below (background update tasks, the deprecated update form, the
bank connections with their interfaces in v1 mode) is recorded by the sandbox and validated
with openapi-core: the task operations against tests/specs/finapi-webform2-tasks.yaml, the bank
connections against tests/specs/finapi-access-v1-data.yaml with the interface's consent and
updates checked field by field. The task callbacks' bodies are validated against the spec's
``TaskCallback``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import pytest
from openapi_core import OpenAPI
from openapi_schema_validator import OAS30Validator

from aiofinaccess import SessionManager
from aiofinaccess.api.finapi.webform import AccountType
from aiofinaccess.api.pipeline import EndUser
from aiofinaccess.core.errors import LockedError, NotFoundError
from aiofinaccess.finapi import (
    BackgroundUpdate,
    ConnectionUpdates,
    FinApiData,
    TaskCallbacks,
    UpdateCompleted,
    UpdateFailed,
    WebFormRequired,
)
from aiofinaccess.sandbox import Sandbox, SandboxConfig
from aiofinaccess.sandbox.state import Exchange
from tests.api.test_finapi_tasks import Hooks, hooks  # noqa: F401  (the fixture)
from tests.support.contract import access_spec, spec_document, validate_exchange
from tests.support.finapi_journey import import_connection, press, update_form

pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")

USER = "contract-tasks"
TASKS_DOCUMENT = spec_document("finapi-webform2-tasks.yaml")
TASKS = OpenAPI.from_dict(TASKS_DOCUMENT)
FAST = {"poll_interval": 0.01, "timeout": 10.0}


ACCESS = access_spec()


def validate(exchange: Exchange, *, request_too: bool = True) -> None:
    if exchange.path.startswith("/api/v1"):
        validate_exchange(ACCESS, "https://sandbox.finapi.io", exchange, request_too=request_too)
    else:
        host = "https://webform-sandbox.finapi.io"
        validate_exchange(TASKS, host, exchange, request_too=request_too)


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(finapi_version="v1", record_requests=True)


async def test_every_update_exchange_validates(
    sandbox: Sandbox, sandbox_manager: SessionManager, unused_tcp_port: int
) -> None:
    """201, 200, 400, 401, 404 and 423 of the task operations, the update form's 201, and
    the bank connections with their interfaces before and after the consent ends."""
    connection_id = await import_connection(sandbox_manager, USER)
    updates = ConnectionUpdates(sandbox_manager)
    data = FinApiData(sandbox_manager)
    steer = sandbox.service("tasks").steer
    await data.bank_connection(USER, connection_id)
    everything = BackgroundUpdate(
        connection_id,
        import_new_accounts=True,
        account_types=tuple(AccountType),
        skip_positions_download=False,
        load_owner_data=False,
        manage_saved_settings=("CREDENTIALS", "DEFAULT_TWO_STEP_PROCEDURE"),
        # https, as the spec demands; nothing listens there (callbacks are best effort).
        callbacks=TaskCallbacks(
            f"https://127.0.0.1:{unused_tcp_port}/done", f"https://127.0.0.1:{unused_tcp_port}/wf"
        ),
        profile_id="a2c9fc3b-1777-403c-8b2f-1ce4d90157a2",
        redirect_url="https://shop.example.com/back",
    )
    end_user = EndUser(ip_address="203.0.113.5", user_agent="Mozilla/5.0", device_os="iOS 18")
    done = await updates.update(USER, everything, end_user=end_user, **FAST)
    assert isinstance(done, UpdateCompleted)
    steer(connection_id, consent_expires_in=0)
    await data.bank_connection(USER, connection_id)  # userActionRequired, consent past its end
    needs_user = await updates.update(USER, BackgroundUpdate(connection_id), **FAST)
    assert isinstance(needs_user, WebFormRequired)
    assert needs_user.task is not None
    await press(needs_user)
    await updates.wait(USER, needs_user.task.id, through_web_form=True, **FAST)
    steer(connection_id, next_task="error")
    failed = await updates.update(USER, BackgroundUpdate(connection_id), **FAST)
    assert isinstance(failed, UpdateFailed)
    await data.bank_connections(USER)  # a failed last manual update, with its error
    sandbox.config.finapi_task_seconds = 60.0
    await updates.start(USER, BackgroundUpdate(connection_id))
    for error, call in (
        (LockedError, updates.start(USER, BackgroundUpdate(connection_id))),
        (NotFoundError, updates.start(USER, BackgroundUpdate(4242))),
        (NotFoundError, updates.get(USER, "00000000-0000-0000-0000-000000000000")),
    ):
        with pytest.raises(error):
            await call
    await update_form(sandbox_manager, USER, connection_id)
    async with aiohttp.ClientSession() as http:
        token = await sandbox_manager.access_token("finapi", USER)
        base = sandbox.base_url + "/api/tasks"
        for body, headers, status in (
            ({"bankConnectionId": "one", "userMetadata": {"ipAddress": 1}}, True, 400),
            ({"bankConnectionId": connection_id}, False, 401),
        ):
            auth = {"Authorization": f"Bearer {token}"} if headers else {}
            async with http.post(base + "/backgroundUpdate", json=body, headers=auth) as response:
                assert response.status == status
        async with http.get(base + "/" + "0" * 36) as response:
            assert response.status == 401
    refused = [e for e in sandbox.state.journal if e.status == 400]
    assert {e["field"] for e in json.loads(refused[0].response_body)["errors"]} >= {
        "bankConnectionId",
        "userMetadata.ipAddress",
    }
    seen = set()
    for exchange in sandbox.state.journal:
        if exchange.path.startswith(
            ("/api/tasks", "/api/v1/bankConnections", "/api/webForms/bankConnectionUpdate")
        ):
            validate(exchange, request_too=exchange.status not in (400, 401))
            path = re.sub(r"/([0-9a-f-]{36}|\d+)$", "/{id}", exchange.path)
            seen.add((exchange.method, path, exchange.status))
    assert seen >= {
        ("POST", "/api/tasks/backgroundUpdate", 201),
        ("POST", "/api/tasks/backgroundUpdate", 400),
        ("POST", "/api/tasks/backgroundUpdate", 401),
        ("POST", "/api/tasks/backgroundUpdate", 404),
        ("POST", "/api/tasks/backgroundUpdate", 423),
        ("GET", "/api/tasks/{id}", 200),
        ("GET", "/api/tasks/{id}", 401),
        ("GET", "/api/tasks/{id}", 404),
        ("POST", "/api/webForms/bankConnectionUpdate", 201),
        ("GET", "/api/v1/bankConnections/{id}", 200),
        ("GET", "/api/v1/bankConnections", 200),
    }
    metadata = next(e for e in sandbox.state.journal if b"userMetadata" in e.body)
    assert b'"deviceOs": "iOS 18"' in metadata.body


async def test_task_callbacks_validate(
    sandbox: Sandbox,
    sandbox_manager: SessionManager,
    hooks: Hooks,  # noqa: F811
) -> None:
    """Both callbacks' bodies are the spec's ``TaskCallback``."""
    connection_id = await import_connection(sandbox_manager, USER)
    sandbox.service("tasks").steer(connection_id, user_action_required=True)
    callbacks = TaskCallbacks(f"{hooks.url}/finalised", f"{hooks.url}/web-form")
    outcome = await ConnectionUpdates(sandbox_manager).update(
        USER, BackgroundUpdate(connection_id, callbacks=callbacks), **FAST
    )
    assert isinstance(outcome, WebFormRequired)
    await press(outcome, "abort")
    schema: dict[str, Any] = {
        "$ref": "#/components/schemas/TaskCallback",
        "components": TASKS_DOCUMENT["components"],
    }
    assert [name for name, _ in hooks.received] == ["web-form", "finalised"]
    for _, body in hooks.received:
        OAS30Validator(schema).validate(body)
    assert hooks.received[1][1]["status"] == "COMPLETED_WITH_ERROR"
