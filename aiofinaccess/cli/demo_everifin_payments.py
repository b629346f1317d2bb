"""The demo's Everifin payment steps: a BankConnect payment the user authorises on its page
and the bank books, to its final state; one whose answer the sandbox loses after creating it,
found by its ``externalId`` and never sent twice; and a Paygate payment link whose status
changes reach a webhook receiver, delivered twice and out of order, one change per event."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import aiohttp
from aiohttp import web

from ..api.everifin.paygate import Paygate
from ..api.everifin.paygate_events import PaygateEvent
from ..api.everifin.payment_models import EverifinPayment, PaymentOrder
from ..api.everifin.payments import BankConnectPayments
from ..api.money import Money
from ..api.payment_ledger import new_reference
from ..integrations.paygate_webhooks import PaygateWebhooks
from ..sandbox import Sandbox, headless_payment
from ..session.manager import SessionManager

__all__ = ["everifin_payment_steps", "paygate_steps"]

_T = TypeVar("_T")
BOB = "SK3112000000198742637541"


class Steps(Protocol):
    async def run(
        self, title: str, action: Callable[[], Awaitable[_T]], show: Callable[[_T], str]
    ) -> _T | None: ...


async def _authorise(link: str | None) -> None:
    if link is None:
        raise AssertionError("the payment has no authorization page")
    async with aiohttp.ClientSession() as browser:
        await headless_payment(browser, link)


async def everifin_payment_steps(
    manager: SessionManager, steps: Steps, sandbox: Sandbox, user: str
) -> None:
    """Run the BankConnect payment steps for ``user`` (logged in with scope ``pis``)."""
    pis = BankConnectPayments(manager)
    order = PaymentOrder(Money("12.50"), BOB, "Bob", message="demo invoice 2", variable_symbol="7")
    payment = await steps.run(
        "payment initiation (POST /v1/payments, pis)",
        lambda: pis.create_payment(user, order, reference=new_reference()),
        lambda made: f"{made.amount} {made.currency} to Bob, {made.status}, externalId set",
    )
    if payment is None:
        return

    async def authorised() -> EverifinPayment:
        await _authorise(payment.link)
        return await pis.payment(user, payment.id)

    await steps.run(
        "the user authorises it on its page (headless)",
        authorised,
        lambda p: f"payment {p.id[:12]}...: {p.status}",
    )

    async def booked() -> EverifinPayment:
        sandbox.service("everifin_payments").steer(payment.id, "book")  # the bank's part
        done = await pis.payment(user, payment.id)
        if not done.final:
            raise AssertionError(f"payment {done.id} is {done.status}")
        return done

    await steps.run(
        "the bank books it (GET /v1/payments/{id})",
        booked,
        lambda p: f"payment {p.id[:12]}...: {p.status}",
    )

    async def reconciled() -> str:
        reference = new_reference()
        sandbox.set_faults(burst=1, kinds=("drop_after_commit",), scope="api", methods=("POST",))
        try:
            made = await pis.create_payment(user, order, reference=reference)
        finally:
            sandbox.set_faults()
        created: list[Any] = sandbox.service("everifin_payments").by_reference(reference)
        if [p.id for p in created] != [made.id]:
            raise AssertionError(f"{len(created)} payments under one reference")
        return f"found by externalId, sent once ({dict(pis.reconciliations)})"

    await steps.run("payment, connection lost after commit", reconciled, lambda found: found)


async def paygate_steps(manager: SessionManager, steps: Steps, sandbox: Sandbox) -> None:
    """Run the Paygate steps: a link paid by the payer, its webhooks received once each."""
    statuses: list[str] = []

    async def on_event(event: PaygateEvent) -> None:
        statuses.append(event.status or "?")

    webhooks = PaygateWebhooks(on_event, secret=sandbox.config.paygate_webhook_secret)
    app = web.Application()
    app.add_routes([webhooks.aiohttp_route("/hooks/paygate")])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    config = sandbox.config
    config.paygate_webhook_url = f"http://{host}:{port}/hooks/paygate"
    config.paygate_webhook_hold, config.paygate_webhook_duplicates = True, 1.0
    config.paygate_webhook_reorder = True
    try:
        await _paygate(steps, sandbox, Paygate(manager), webhooks, statuses)
    finally:
        config.paygate_webhook_url = None
        await runner.cleanup()


async def _paygate(
    steps: Steps, sandbox: Sandbox, paygate: Paygate, hooks: PaygateWebhooks, statuses: list[str]
) -> None:
    order = PaymentOrder(Money("30.00"), BOB, "Demo shop", variable_symbol="2026001")
    link = await steps.run(
        "Paygate payment link (POST /api/v1/link)",
        lambda: paygate.create_link(order, reference=new_reference(), hook_data={"cart": 1}),
        lambda made: f"{made.amount} {made.currency}, {made.status}",
    )
    if link is None:
        return
    service = sandbox.service("everifin_payments")

    async def paid() -> EverifinPayment:
        await _authorise(link.link)
        service.steer(link.id, "book")
        return await paygate.payment(link.id)

    await steps.run("the payer pays it on its page; the bank books it", paid, lambda p: p.status)

    async def delivered() -> str:
        await service.hooks.deliver()
        if statuses[-1:] != ["BOOKED"]:
            raise AssertionError(f"the receiver ended at {statuses}")
        counts = hooks.log.counts
        return (
            f"{len(service.hooks.delivered)} deliveries: {counts['applied']} applied, "
            f"{counts['duplicate']} duplicates, {counts['stale']} stale -> {statuses[-1]}"
        )

    await steps.run("webhooks, each twice and out of order", delivered, lambda shown: shown)
