"""The exactly-once rules as data: which listed payment a request made, what a failed send
means, and when "not found" becomes "not created" (the I/O around them:
tests/api/test_payment_once.py)."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest

from aiofinaccess.api.finapi.payment_ledger import FinApiReconciler, Shape, match_payment
from aiofinaccess.api.payment_ledger import (
    Ambiguous,
    Found,
    Match,
    NotFound,
    PaymentRecord,
    RecordState,
    fingerprint,
    outcome_of_failure,
    settle,
)
from aiofinaccess.core.error_bodies import OAuthErrorBody
from aiofinaccess.errors import (
    ReauthorizationRequired,
    ServerError,
    StoreError,
    TransportError,
    UnexpectedResponseError,
    UnprocessableEntityError,
    ValidationError,
)
from aiofinaccess.finapi import Payment

FINAPI = FinApiReconciler(None, None)  # type: ignore[arg-type]  (its JSON side only)
SHAPE = Shape("MONEY_TRANSFER", Decimal("12.50"), 1, account_id=7)


def paid(id: int, amount: str = "12.5", **changes: object) -> Payment:
    fields: dict[str, object] = {
        "id": id,
        "amount": Decimal(amount),
        "order_count": 1,
        "status": "OPEN",
        "type": "MONEY_TRANSFER",
        "account_id": 7,
    }
    return Payment(**(fields | changes))  # type: ignore[arg-type]


# (listed, mark, taken, rivals) -> match
CASES: list[tuple[str, list[Payment], int, set[int], list[int], Match[Payment]]] = [
    ("nothing listed", [], 10, set(), [], NotFound()),
    ("only older payments of the same shape", [paid(9), paid(10)], 10, set(), [], NotFound()),
    ("one above the mark", [paid(9), paid(11)], 10, set(), [], Found(paid(11))),
    ("12.50 equals 12.5", [paid(11, "12.50")], 10, set(), [], Found(paid(11, "12.50"))),
    ("another amount", [paid(11, "12.51")], 10, set(), [], NotFound()),
    ("another account", [paid(11, account_id=8)], 10, set(), [], NotFound()),
    ("another type", [paid(11, type="DIRECT_DEBIT")], 10, set(), [], NotFound()),
    ("two orders", [paid(11, order_count=2)], 10, set(), [], NotFound()),
    ("held by another record", [paid(11)], 10, {11}, [], NotFound()),
    ("the other is held", [paid(11), paid(12)], 10, {11}, [], Found(paid(12))),
    ("two candidates", [paid(12), paid(11)], 10, set(), [], Ambiguous((11, 12))),
    ("a rival sent before it", [paid(11)], 10, set(), [5], Ambiguous((11,))),
    ("a rival sent after it was made", [paid(11)], 10, set(), [11], Found(paid(11))),
]


@pytest.mark.parametrize(
    ("listed", "mark", "taken", "rivals", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_match_payment(
    listed: list[Payment], mark: int, taken: set[int], rivals: list[int], expected: Match[Payment]
) -> None:
    assert match_payment(SHAPE, mark, listed, taken=taken, rivals=rivals) == expected


def test_a_standalone_payment_matches_on_its_iban_and_the_execution_date() -> None:
    shape = Shape(
        "MONEY_TRANSFER", Decimal(3), 1, iban="DE89370400440532013000", execution_date="2026-12-24"
    )
    same = paid(5, "3", account_id=None, iban="DE89370400440532013000")
    dated = attrs.evolve(same, instructed_execution_date="2026-12-24")
    assert match_payment(
        shape, 0, [attrs.evolve(same, instructed_execution_date="2026-12-23")]
    ) == (NotFound())
    assert match_payment(shape, 0, [dated]) == Found(dated)
    other = attrs.evolve(dated, iban="GB82WEST12345698765432")
    assert match_payment(shape, 0, [other]) == NotFound()
    assert match_payment(shape, 0, [same]) == NotFound()  # sent with a date: finAPI keeps it


def api_error(cls: type[ServerError | UnprocessableEntityError], status: int) -> Exception:
    return cls(status, OAuthErrorBody("error"))


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (TransportError("refused", request_sent=False), (RecordState.NOT_CREATED, False)),
        (TransportError("timed out", request_sent=True), (RecordState.UNKNOWN, False)),
        (api_error(UnprocessableEntityError, 422), (RecordState.NOT_CREATED, True)),
        (api_error(ServerError, 500), (RecordState.UNKNOWN, True)),
        (api_error(ServerError, 503), (RecordState.UNKNOWN, True)),
        (api_error(ServerError, 502), (RecordState.UNKNOWN, False)),  # a gateway's
        (api_error(ServerError, 504), (RecordState.UNKNOWN, False)),
        (ValidationError("bad"), (RecordState.NOT_CREATED, False)),
        (ReauthorizationRequired("k", "invalid_grant"), (RecordState.NOT_CREATED, False)),
        (UnexpectedResponseError("201 not JSON"), (RecordState.UNKNOWN, False)),
        (RuntimeError("a bug"), (RecordState.UNKNOWN, False)),
    ],
)
def test_what_a_failed_send_means(error: Exception, outcome: tuple[RecordState, bool]) -> None:
    assert outcome_of_failure(error) == outcome


def record(**changes: object) -> PaymentRecord:
    fields: dict[str, object] = {
        "state": RecordState.UNKNOWN,
        "request": fingerprint("POST /payments/moneyTransfers", {"accountId": 7}),
        "shape": SHAPE.document(),
        "mark": 10,
        "sent_at": 1000.0,
        "owner": "a",
        "claimed_until": 1120.0,
    }
    return PaymentRecord(**(fields | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("answered", "now", "match", "state"),
    [
        (False, 1001.0, Found(paid(11)), RecordState.CREATED),
        (False, 1001.0, NotFound(), RecordState.UNKNOWN),  # may still land
        (False, 1599.0, NotFound(), RecordState.UNKNOWN),
        (False, 1600.0, NotFound(), RecordState.NOT_CREATED),  # settle_after passed
        (True, 1001.0, NotFound(), RecordState.NOT_CREATED),  # finAPI answered: done
        (True, 9999.0, Ambiguous((11, 12)), RecordState.UNKNOWN),
    ],
)
def test_settle(answered: bool, now: float, match: Match[Payment], state: RecordState) -> None:
    settled = settle(
        record(answered=answered), match, now=now, settle_after=600.0, document=FINAPI.document
    )
    assert settled.state is state
    assert (settled.payment_id == 11) is (state is RecordState.CREATED)


def test_a_record_reads_back_as_written_and_refuses_junk() -> None:
    created = record().with_payment(FINAPI.document(paid(11, "12.50")))
    again = PaymentRecord.from_bytes(created.to_bytes())
    assert again == created
    assert FINAPI.payment(again.payment or {}) == paid(11, "12.50")
    assert Shape.of(again).amount == Decimal("12.50")
    with pytest.raises(StoreError):
        PaymentRecord.from_bytes(b'{"state": "PENDING"}')
    with pytest.raises(StoreError):
        PaymentRecord.from_bytes(b"\xff")


def test_the_fingerprint_is_the_request_in_any_key_order() -> None:
    one = fingerprint("POST /x", {"a": 1, "b": [1, 2]})
    assert one == fingerprint("POST /x", {"b": [1, 2], "a": 1})
    assert one != fingerprint("POST /x", {"a": 1, "b": [2, 1]})
    assert one != fingerprint("POST /y", {"a": 1, "b": [1, 2]})
