"""finAPI Access users: create, read, edit, delete, verify, password change.

Each operation is one :class:`~aiofinaccess.api.pipeline.Endpoint`, its path written once. The
pipeline picks the token the endpoint needs (the client's for creating and administering
users, the user's own for reading, editing and deleting themselves). finAPI's limits are
checked before anything is sent (:class:`~aiofinaccess.core.errors.ValidationError` names the
field); refusals come back typed, e.g. a taken user id is
:class:`~aiofinaccess.core.errors.EntityExistsError` (422 ``ENTITY_EXISTS``).

>>> users = Users(manager)  # doctest: +SKIP
>>> await users.create_and_login(NewUser(id="alice", password="s3cret-pw"))  # doctest: +SKIP
>>> (await users.get("alice")).email  # doctest: +SKIP
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

import attrs

from ...core.errors import ValidationError
from ...core.tokens import Secret
from ..json_ready import JsonReady
from ..models import read_model, to_wire
from ..pipeline import ApiClient, Endpoint, EndUser, finapi_context

if TYPE_CHECKING:
    from ...session.manager import SessionManager

__all__ = ["NewUser", "PasswordChange", "User", "UserChanges", "Users"]

_ID: Final = re.compile(r"[a-zA-Z0-9\-_.+@]{1,36}")
_MASKED_PASSWORD: Final = "XXXXX"

_CREATE = Endpoint("POST", "/users", auth="client", expect=(201,))
_GET = Endpoint("GET", "/users")
_EDIT = Endpoint("PATCH", "/users")
_DELETE = Endpoint("DELETE", "/users", expect=(200, 204))
_DELETE_UNVERIFIED = Endpoint("DELETE", "/users/{user_id}", auth="client", expect=(200, 204))
_VERIFY = Endpoint("POST", "/users/verify/{user_id}", auth="client", expect=(200, 204))
_VERIFICATION_STATUS = Endpoint("GET", "/users/verificationStatus", auth="client")
_REQUEST_PASSWORD_CHANGE = Endpoint("POST", "/users/requestPasswordChange", auth="client")
_EXECUTE_PASSWORD_CHANGE = Endpoint(
    "POST", "/users/executePasswordChange", auth="client", expect=(200, 204)
)


def _optional_secret(value: str | Secret | None) -> Secret | None:
    return None if value is None else Secret(value)


def _length(field: str, value: str | Secret | None, low: int, high: int) -> None:
    if value is None:
        return
    length = len(value.reveal() if isinstance(value, Secret) else value)
    if not low <= length <= high:
        raise ValidationError(f"{field} must be {low} to {high} characters long")


def _user_id(user_id: str) -> str:
    if not _ID.fullmatch(user_id):
        raise ValidationError("user id must be 1 to 36 characters of a-z A-Z 0-9 - _ . + @")
    return user_id


@attrs.frozen(slots=True)
class User(JsonReady):
    """A finAPI user. ``password`` is present only in the answer to :meth:`Users.create`."""

    id: str
    password: Secret | None = attrs.field(default=None, converter=_optional_secret)
    email: str | None = None
    phone: str | None = None
    is_auto_update_enabled: bool = False


@attrs.frozen(slots=True)
class NewUser:
    """What to create. Everything is optional: finAPI draws a random id and password.

    Raises:
        ValidationError: A value breaks finAPI's limits (id 1-36 of ``[a-zA-Z0-9-_.+@]``,
            password 6-128, email 1-320, phone 1-50 characters).
    """

    id: str | None = None
    password: Secret | None = attrs.field(default=None, converter=_optional_secret)
    email: str | None = None
    phone: str | None = None
    is_auto_update_enabled: bool = False

    def __attrs_post_init__(self) -> None:
        if self.id is not None:
            _user_id(self.id)
        _length("password", self.password, 6, 128)
        _length("email", self.email, 1, 320)
        _length("phone", self.phone, 1, 50)


@attrs.frozen(slots=True)
class UserChanges:
    """An edit: ``None`` leaves a field as it is, ``""`` clears email or phone."""

    email: str | None = None
    phone: str | None = None
    is_auto_update_enabled: bool | None = None

    def __attrs_post_init__(self) -> None:
        if self.email is None and self.phone is None and self.is_auto_update_enabled is None:
            raise ValidationError("an edit must change at least one field")
        if self.email:
            _length("email", self.email, 1, 320)
        if self.phone:
            _length("phone", self.phone, 1, 50)


@attrs.frozen(slots=True)
class PasswordChange:
    """A requested password change.

    ``password_change_token`` is encrypted with the client's data decryption key at finAPI
    (the sandbox leaves it plain); decrypt it before :meth:`Users.execute_password_change`.
    """

    user_id: str
    password_change_token: Secret = attrs.field(converter=Secret)
    user_email: str | None = None


@attrs.frozen(slots=True)
class _VerificationStatus:
    user_id: str
    is_user_verified: bool


class Users:
    """The finAPI users API for one registered finAPI provider.

    Args:
        manager: The session manager holding the client's and the users' tokens.
        provider: The finAPI provider's name in ``manager``.
        timeout: Default seconds per request.
    """

    def __init__(
        self, manager: SessionManager, provider: str = "finapi", *, timeout: float = 30.0
    ) -> None:
        self._manager = manager
        self._provider = provider
        self._api = ApiClient(manager, provider, context_headers=finapi_context, timeout=timeout)

    def __repr__(self) -> str:
        return f"Users(provider={self._provider!r})"

    async def create(self, user: NewUser | None = None) -> User:
        """Create a user with the client's token (201). The answer carries the password.

        Raises:
            EntityExistsError: The id is taken (ids are case-insensitive).
        """
        response = await self._api.call(_CREATE, json=to_wire(user or NewUser()))
        return read_model(response.body, User, what="create user")

    async def create_and_login(self, user: NewUser | None = None) -> User:
        """Create a user and log them in: the manager then keeps their tokens fresh."""
        created = await self.create(user)
        if created.password is None:
            raise ValidationError("finAPI returned no password for the new user")
        await self._manager.login_with_password(self._provider, created.id, created.password)
        return created

    async def get(self, user_id: str) -> User:
        """The user's own record (password masked, returned as ``None``)."""
        response = await self._api.call(_GET, subject=user_id)
        user = read_model(response.body, User, what="get user")
        if user.password is not None and user.password.reveal() == _MASKED_PASSWORD:
            user = attrs.evolve(user, password=None)
        return user

    async def edit(self, user_id: str, changes: UserChanges) -> User:
        """Change email, phone or auto-update with the user's token."""
        body = {
            key: value
            for key, value in {
                "email": changes.email,
                "phone": changes.phone,
                "isAutoUpdateEnabled": changes.is_auto_update_enabled,
            }.items()
            if value is not None
        }
        response = await self._api.call(_EDIT, subject=user_id, json=body)
        user = read_model(response.body, User, what="edit user")
        return attrs.evolve(user, password=None)

    async def delete(self, user_id: str, *, end_user: EndUser | None = None) -> None:
        """Delete the user and all their data (irreversible), then forget their tokens; their
        connections turn ``REVOKED`` in ``manager.connections``.

        Raises:
            LockedError: A bank connection of the user is busy (423).
        """
        await self._api.call(_DELETE, subject=user_id, end_user=end_user)
        await self._manager.forget(self._provider, user_id, revoked=True)

    async def delete_unverified(self, user_id: str) -> None:
        """Delete a user that was never verified, with the client's token.

        Raises:
            UnprocessableEntityError: The user is verified already.
            NotFoundError: No such user.
        """
        await self._api.call(_DELETE_UNVERIFIED, path_params={"user_id": _user_id(user_id)})

    async def verify(self, user_id: str) -> None:
        """Verify a user (needed when the client does not auto-verify users)."""
        await self._api.call(_VERIFY, path_params={"user_id": _user_id(user_id)})

    async def is_verified(self, user_id: str) -> bool:
        """Whether the user is verified."""
        response = await self._api.call(_VERIFICATION_STATUS, params={"userId": _user_id(user_id)})
        return read_model(
            response.body, _VerificationStatus, what="verification status"
        ).is_user_verified

    async def request_password_change(self, user_id: str) -> PasswordChange:
        """Start a password change; the token comes back encrypted at finAPI."""
        response = await self._api.call(
            _REQUEST_PASSWORD_CHANGE, json={"userId": _user_id(user_id)}
        )
        return read_model(response.body, PasswordChange, what="request password change")

    async def execute_password_change(
        self, user_id: str, new_password: str | Secret, password_change_token: str | Secret
    ) -> None:
        """Set the new password. finAPI revokes every token of the user; so does the manager."""
        password = Secret(new_password)
        _length("password", password, 6, 128)
        body = {
            "userId": _user_id(user_id),
            "password": password.reveal(),
            "passwordChangeToken": Secret(password_change_token).reveal(),
        }
        await self._api.call(_EXECUTE_PASSWORD_CHANGE, json=body)
        await self._manager.forget(self._provider, user_id)
