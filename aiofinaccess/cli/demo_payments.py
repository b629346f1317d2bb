"""The demo's finAPI payment steps: a payment form the end user authorises (headless) and the
bank books, to its final state; then a money transfer whose answer the sandbox loses after
creating it, found by reconciliation and never sent twice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import aiohttp

from ..api.finapi.payment_forms import PaymentForms
from ..api.finapi.payment_models import Payment, Transfer
from ..api.finapi.payments import FinApiPayments
from ..api.finapi.webform import WebForm, WebForms
from ..api.money import Money
from ..api.payment_ledger import new_reference
from ..sandbox import Sandbox, headless_web_form
from ..session.manager import SessionManager

__all__ = ["finish_form", "payment_steps"]

_T = TypeVar("_T")
BOB = "DE89370400440532013000"


async def finish_form(forms: WebForms, user: str, created: WebForm) -> WebForm:
    """The end user completes ``created`` (its page, headless); the form once finished."""
    async with aiohttp.ClientSession() as browser:
        await headless_web_form(browser, created.url)
    return await forms.wait_until_finished(user, created.id, poll_interval=0.1, timeout=5)


class Steps(Protocol):
    async def run(
        self, title: str, action: Callable[[], Awaitable[_T]], show: Callable[[_T], str]
    ) -> _T | None: ...


async def payment_steps(
    manager: SessionManager, steps: Steps, sandbox: Sandbox, user: str, account_id: int
) -> None:
    """Run the payment steps for ``user`` paying from ``account_id``."""
    forms, payments = WebForms(manager), FinApiPayments(manager)
    order = [Transfer(Money("12.50"), "Bob", BOB, purpose="demo invoice 1")]
    form = await steps.run(
        "payment form (POST .../paymentWithAccountId)",
        lambda: PaymentForms(manager).payment_with_account(
            user, account_id, order, reference=new_reference()
        ),
        lambda created: f"12.50 EUR to Bob, form {created.id[:8]}...",
    )
    if form is None:
        return

    done = await steps.run(
        "the end user authorises it (headless form)",
        lambda: finish_form(forms, user, form),
        lambda f: f"{f.status}, payment {f.payload.payment_id}",
    )
    if done is None or done.payload.payment_id is None:
        return
    payment_id = done.payload.payment_id

    async def booked() -> Payment:
        sandbox.service("payments").steer(payment_id, "book")  # the bank's part
        (payment,) = await payments.payments(user, ids=[payment_id])
        if not payment.final:
            raise AssertionError(f"payment {payment.id} is {payment.status}")
        return payment

    await steps.run(
        "the bank books it (GET /api/v2/payments)",
        booked,
        lambda p: f"payment {p.id}: {p.status} {p.amount} EUR",
    )
    await steps.run(
        "money transfer, answer lost after commit",
        lambda: _reconciled(sandbox, payments, user, account_id),
        lambda found: found,
    )


async def _reconciled(
    sandbox: Sandbox, payments: FinApiPayments, user: str, account_id: int
) -> str:
    reference = new_reference()
    order = [Transfer(Money("3.00"), "Bob", BOB)]
    sandbox.set_faults(burst=1, kinds=("500_after_commit",), scope="api", methods=("POST",))
    try:
        made = await payments.create_money_transfer(
            user, order, reference=reference, account_id=account_id
        )
    finally:
        sandbox.set_faults()
    created: list[Any] = sandbox.service("payments").by_reference(reference)
    if [p.id for p in created] != [made.id]:
        raise AssertionError(f"{len(created)} payments under one reference")
    return f"payment {made.id} found by listing, sent once ({dict(payments.reconciliations)})"
