"""Updating a finAPI bank connection: Web Form 2.0's background update task.

:meth:`ConnectionUpdates.update` starts ``POST /api/tasks/backgroundUpdate`` (the Web Form 2.0
spec's way; the update form ``POST /api/webForms/bankConnectionUpdate`` is deprecated there and
stays an option: ``UpdateRoutes(via="web_form")``), then polls ``GET /api/tasks/{id}`` until the
task ends or needs the user, and returns one of three outcomes:

* :class:`UpdateCompleted`: finAPI updated the connection in the background;
* :class:`UpdateFailed`: the task ended ``COMPLETED_WITH_ERROR`` (``error_code`` says why);
* :class:`WebFormRequired`: the bank wants the user (an ended consent, a new SCA): send them to
  ``url``; the task goes on once they finish the form (``wait(..., through_web_form=True)``).

:func:`outcome_of` is the pure reading of one task (``None`` while it runs); finAPI may add
statuses, which read as still running. Task callbacks (``finalised``, ``webFormRequired``) are
requested with :class:`TaskCallbacks`; their body is a ``TaskCallback`` (``taskId``, ``status``,
``webForm``): read the task with :meth:`ConnectionUpdates.get` rather than trusting it.

**PSD2's budget.** An update without the user present (no ``end_user``, or one without an IP
address: the ``PSU-IP-Address`` finAPI forwards is what tells a bank the user is there) takes
one of the connection's unattended updates from ``manager.connections`` before it is sent
(four per 24 hours for the fleet by default); a fifth raises
:class:`~aiofinaccess.core.errors.UpdateBudgetExhausted` and sends nothing. An address no user
can have (not an IP address, unspecified, multicast) is refused when the ``EndUser`` is made,
so it never passes for a present user.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import attrs

from ..pipeline import Endpoint, EndUser
from .host import poll_until, web_form_client
from .task_models import (
    BackgroundUpdate,
    Task,
    UpdateOutcome,
    WebFormInfo,
    WebFormRequired,
    outcome_of,
    read_task,
)
from .webform import _read_form

if TYPE_CHECKING:
    from ...session.manager import SessionManager

__all__ = ["ConnectionUpdates", "UpdateRoutes"]


@attrs.frozen(slots=True)
class UpdateRoutes:
    """Where the update operations live, relative to the provider's ``web_form_url``.

    Attributes:
        via: ``"task"`` (the background update, the default) or ``"web_form"`` (the deprecated
            update form: every update goes through the user).
    """

    background_update: Endpoint = Endpoint("POST", "/api/tasks/backgroundUpdate", expect=(201,))
    task: Endpoint = Endpoint("GET", "/api/tasks/{task_id}")
    update_web_form: Endpoint = Endpoint(
        "POST", "/api/webForms/bankConnectionUpdate", expect=(201,)
    )
    via: Literal["task", "web_form"] = "task"


def _present(end_user: EndUser | None) -> bool:
    """Whether ``end_user`` says the user is there: it carries their address (checked to be
    one a user can have when the :class:`EndUser` was made)."""
    return end_user is not None and end_user.ip_address is not None


class ConnectionUpdates:
    """Updates of the bank connections of one finAPI provider's users (user tokens).

    Args:
        manager: Holds each user's finAPI tokens.
        provider: A registered finAPI provider with a ``web_form_url``.
        routes: Paths, and ``via`` (task or the deprecated form).
        timeout: Seconds per request.

    Raises:
        ConfigurationError: The provider has no Web Form host.
    """

    def __init__(
        self,
        manager: SessionManager,
        provider: str = "finapi",
        *,
        routes: UpdateRoutes | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.routes = routes or UpdateRoutes()
        self._clock = manager.clock
        self._manager = manager
        self._provider = provider
        self._api = web_form_client(manager, provider, timeout)

    def __repr__(self) -> str:
        return f"ConnectionUpdates({self._api!r}, via={self.routes.via!r})"

    async def start(
        self, user: str, update: BackgroundUpdate, *, end_user: EndUser | None = None
    ) -> Task:
        """Start a background update task (``NOT_YET_STARTED``).

        Args:
            user: The finAPI user whose token to use.
            update: What to update.
            end_user: The present user (sent as ``userMetadata``; all three fields needed).
                Without it, the update takes one of the connection's unattended updates.

        Raises:
            UpdateBudgetExhausted: No unattended update left for now; nothing was sent.
            NotFoundError: No such connection or profile.
            LockedError: The connection is being imported or updated (423).
            UnprocessableEntityError: ``BANK_NOT_SUPPORTED``, ``MANDATOR_MISCONFIGURATION``.
        """
        body = update.as_body(end_user)  # a refused body takes no slot
        await self._unattended(user, update, end_user)
        response = await self._api.call(self.routes.background_update, subject=user, json=body)
        return read_task(response.body, "background update")

    async def _unattended(
        self, user: str, update: BackgroundUpdate, end_user: EndUser | None
    ) -> None:
        """Take a slot of the connection's budget unless the user is present."""
        if not _present(end_user):
            connection = str(update.bank_connection_id)
            # Taken before the send and never given back, whatever the call's fate: a timeout
            # or a 5xx may follow an update that reached the bank, and PSD2 counts accesses;
            # a slot handed back after one could let a fifth access through.
            await self._manager.connections.take_unattended_update(self._provider, user, connection)

    async def get(self, user: str, task_id: str) -> Task:
        """The task ``task_id`` of ``user``, as it stands.

        Raises:
            NotFoundError: No such task for this user.
        """
        response = await self._api.call(
            self.routes.task, subject=user, path_params={"task_id": task_id}
        )
        return read_task(response.body, "task")

    async def wait(
        self,
        user: str,
        task_id: str,
        *,
        through_web_form: bool = False,
        poll_interval: float = 1.0,
        timeout: float = 1200.0,
    ) -> UpdateOutcome:
        """Poll :meth:`get` (on the manager's clock) until the task has an outcome.

        Args:
            through_web_form: Keep polling past ``WEB_FORM_REQUIRED`` until the task is final
                (after sending the user to the form).
            poll_interval: Seconds between polls (finAPI asks for at most one a second).
            timeout: Seconds to wait in all.

        Raises:
            TimeoutError: No outcome within ``timeout``.
            ValidationError: ``poll_interval`` is not positive.
        """

        def done(task: Task) -> bool:
            outcome = outcome_of(task)
            return outcome is not None and not (
                through_web_form and isinstance(outcome, WebFormRequired)
            )

        task = await poll_until(
            lambda: self.get(user, task_id),
            done,
            self._clock,
            poll_interval=poll_interval,
            timeout=timeout,
            late=lambda task: f"task {task_id} has no outcome after {timeout:g} s ({task.status})",
        )
        outcome = outcome_of(task)
        assert outcome is not None  # noqa: S101  (done said so)
        return outcome

    async def update(
        self,
        user: str,
        update: BackgroundUpdate,
        *,
        end_user: EndUser | None = None,
        poll_interval: float = 1.0,
        timeout: float = 1200.0,
    ) -> UpdateOutcome:
        """Update a connection: start the task and wait for its outcome (a
        :class:`WebFormRequired` as soon as the bank wants the user).

        With ``UpdateRoutes(via="web_form")``, create the deprecated update form instead and
        return it as :class:`WebFormRequired` (``task`` ``None``). Either way, without the user
        present (``end_user`` with an IP address, sent as ``PSU-*`` headers to the form) the
        update takes one of the connection's unattended updates first.

        Raises:
            UpdateBudgetExhausted: No unattended update left for now; nothing was sent.
        """
        if self.routes.via == "web_form":
            body = update.as_form_body()
            await self._unattended(user, update, end_user)
            response = await self._api.call(
                self.routes.update_web_form, subject=user, json=body, end_user=end_user
            )
            form = _read_form(response.body, "update web form")
            info = WebFormInfo(form.id, form.url, form.status)
            return WebFormRequired(update.bank_connection_id, info)
        task = await self.start(user, update, end_user=end_user)
        return await self.wait(user, task.id, poll_interval=poll_interval, timeout=timeout)
