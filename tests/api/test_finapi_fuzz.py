"""Fuzzing the finAPI data parsers: whatever finAPI sends, only typed errors come out."""

from __future__ import annotations

import contextlib
import datetime as dt
import json

from hypothesis import example, given
from hypothesis import strategies as st

from aiofinaccess import AiofinaccessError
from aiofinaccess.api.finapi.data import _transaction_page
from aiofinaccess.api.finapi.models import decode, read_finapi, read_list
from aiofinaccess.api.finapi.task_models import read_task
from aiofinaccess.connections import ConnectionState
from aiofinaccess.finapi import (
    BankConnection,
    BankConnectionInterface,
    DailyBalance,
    FinApiAccount,
    FinApiSyncCursor,
    FinApiTransaction,
    connection_state,
    outcome_of,
)
from tests.core.test_fuzz import FUZZ, bodies, json_values

MODELS = (BankConnection, BankConnectionInterface, FinApiAccount, FinApiTransaction, DailyBalance)
FIELDS = (
    "id",
    "accountId",
    "bankConnectionId",
    "amount",
    "balance",
    "date",
    "valueDate",
    "bankBookingDate",
    "importDate",
    "accountIds",
    "transactions",
    "bank",
    "paging",
    "income",
    "interfaces",
    "interface",
    "bankingInterface",
    "aisConsent",
    "status",
    "expiresAt",
    "userActionRequired",
    "lastManualUpdate",
    "lastAutoUpdate",
    "result",
    "timestamp",
    "errorType",
    "errorMessage",
)
# Values near the real ones, so the fuzzer reaches past the first type check.
near = (
    json_values
    | st.integers()
    | st.decimals(allow_nan=False, allow_infinity=False).map(float)
    | st.dates().map(str)
    | st.datetimes().map(lambda moment: moment.isoformat(sep=" "))
    | st.text(alphabet="0123456789-:T .+Z", max_size=30)
)
finapi_like = st.recursive(
    st.dictionaries(st.sampled_from(FIELDS), near, max_size=len(FIELDS)),
    lambda children: st.dictionaries(
        st.sampled_from(FIELDS), near | children | st.lists(children, max_size=3), max_size=8
    ),
    max_leaves=12,
)


@FUZZ
@given(bodies | finapi_like.map(lambda value: json.dumps(value).encode()))
def test_models_only_fail_typed(data: bytes) -> None:
    """Any body, read as any model, a list of them, or a transaction page."""
    try:
        document = decode(data, "fuzz")
    except AiofinaccessError:
        return
    for model in MODELS:
        with contextlib.suppress(AiofinaccessError):
            read_finapi(document, model, what="fuzz")
        with contextlib.suppress(AiofinaccessError):
            read_list({"items": [document]}, "items", model, what="fuzz")
    with contextlib.suppress(AiofinaccessError):
        connection = read_finapi(document, BankConnection, what="fuzz")
        # Whatever was read, its state can be judged at any moment.
        now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        assert connection_state(connection, now).state in ConnectionState
    try:
        page = _transaction_page({"transactions": [document], "paging": document})
    except AiofinaccessError:
        return
    assert isinstance(page.paging.page, int)


@FUZZ
@given(st.text(max_size=60) | st.datetimes().map(lambda m: f"{m.isoformat()}/{m.second}"))
@example("0001-01-01000000000/0")  # midnight of year 1 in German time is before it in UTC
def test_sync_cursors_from_text_only_fail_typed(text: str) -> None:
    """A stored cursor reads back or raises ValidationError."""
    try:
        cursor = FinApiSyncCursor.from_text(text)
    except AiofinaccessError:
        return
    assert FinApiSyncCursor.from_text(cursor.to_text()) == cursor


scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.lists(st.none())
statuses = st.sampled_from(["COMPLETED", "COMPLETED_WITH_ERROR", "WEB_FORM_REQUIRED", "NEW"])
web_form_like = st.fixed_dictionaries(
    {}, optional={"id": scalars, "url": scalars, "status": statuses | scalars}
)
task_like = st.fixed_dictionaries(
    {},
    optional={
        "id": scalars,
        "status": statuses | scalars,
        "type": scalars,
        "createdAt": scalars,
        "payload": scalars
        | st.fixed_dictionaries(
            {},
            optional={
                "bankConnectionId": scalars,
                "webForm": web_form_like | scalars,
                "errorCode": scalars,
            },
        ),
    },
)


@FUZZ
@given(bodies | task_like.map(lambda value: json.dumps(value).encode()))
def test_tasks_only_fail_typed(data: bytes) -> None:
    """Any body read as a task, and the task's outcome: a typed result or a typed error."""
    try:
        task = read_task(data, "fuzz")
        outcome = outcome_of(task)
    except AiofinaccessError:
        return
    assert outcome is None or outcome.task is task or outcome.task is None
