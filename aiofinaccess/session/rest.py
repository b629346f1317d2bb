"""A held set at rest: one bytes object in place of an entry and its token set.

An entry that runs nothing, has nothing to report and nothing to stamp is packed into a
:class:`Rested` blob (:func:`pack`): its tokens, the set's other fields and the entry's
instants, marshalled. The registry keeps the blob where the entry was and unpacks it into a
new entry when the set is next wanted (:func:`unpack`); the fresh path reads a blob's
``token`` as ``None`` and takes the slow path, which unpacks it. The deadlines the fresh path
reads are planned again on unpacking (from the same set and policy: the same values); a
renewal planned later than that (a set read from a busy store, renewed at its youngest) keeps
its own ``stale_at``.

This module does no I/O.
"""

from __future__ import annotations

import marshal
import threading
from collections.abc import Mapping
from typing import Any, ClassVar, NoReturn

from ..core.lifecycle import RefreshPolicy, Status, plan
from ..core.tokens import REDACTED, Anchor, Secret, TokenKey, TokenSet
from .entry import Entry

__all__ = ["Rested", "pack", "unpack"]

_NEG_INF = float("-inf")
#: The names of ``extra`` fields, by shape: a blob keeps the index of its set's names and the
#: values alone (a provider sends the same few names with every set). Bounded: a set of
#: another shape keeps its names itself.
_SHAPES: list[tuple[str, ...]] = []
_SHAPE_INDEX: dict[tuple[str, ...], int] = {}
_MAX_SHAPES = 64
_NEW_SHAPE = threading.Lock()


class Rested(bytes):
    """A packed entry (it holds tokens: shown as ``Rested('***')``, never pickled)."""

    __slots__ = ()
    #: The fresh path's check: a rested set is served by the slow path, which unpacks it.
    token: ClassVar[None] = None

    def __repr__(self) -> str:
        return f"Rested({REDACTED!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a rested token set cannot be pickled")


def _at_rest(entry: Entry, stamps: bool) -> bool:
    """Nothing of the entry but its set, version and instants needs keeping."""
    token_set = entry.token_set
    return (
        token_set is not None
        and entry.status is Status.ACTIVE
        and entry.job is None
        and (entry.outcome is None or entry.outcome.done())
        and entry.failures == 0
        and not entry.in_window
        and not entry.rearm
        and entry.reauth is None
        and entry.dead_version is None
        and entry.ran_out_version is None
        and not entry.reauth_repeated
        and not entry.vanished
        and entry.retry_at == _NEG_INF
        and not entry.duty_made  # dropped after its renewal
        and not (stamps and token_set.refresh_token is not None and entry.last_used > entry.stamped)
    )


def _or_none(value: float, default: float) -> float | None:
    return None if value == default else value


def _packed_extra(
    extra: Mapping[str, Any],
) -> dict[str, Any] | tuple[int, tuple[Any, ...]] | None:
    """``extra`` as a blob keeps it: ``None``, ``(shape, values)``, or a plain dict."""
    if not extra:
        return None
    names = tuple(extra)
    shape = _SHAPE_INDEX.get(names)
    if shape is None:
        with _NEW_SHAPE:  # managers of other threads may add one at the same time
            shape = _SHAPE_INDEX.get(names)
            if shape is None and len(_SHAPES) < _MAX_SHAPES:
                _SHAPES.append(names)
                shape = _SHAPE_INDEX[names] = len(_SHAPES) - 1
    return dict(extra) if shape is None else (shape, tuple(extra.values()))


def _unpacked_extra(packed: Any) -> dict[str, Any]:
    if packed is None:
        return {}
    if isinstance(packed, dict):
        return packed
    shape, values = packed
    return dict(zip(_SHAPES[shape], values, strict=True))


def pack(entry: Entry, *, stamps: bool = False) -> Rested | None:
    """``entry`` packed, or ``None`` when it is not at rest (``stamps``: uses not yet stamped
    keep it unpacked) or holds what a blob cannot (an ``extra`` value marshal refuses)."""
    token_set = entry.token_set
    if token_set is None or not _at_rest(entry, stamps):
        return None
    deadlines = plan(token_set, entry.policy, reissued=entry.reissued)
    if deadlines.must_refresh_at != entry.usable_until or entry.stale_at < deadlines.stale_at:
        return None
    # A set read from a busy store is renewed at its youngest (publish's slack): kept apart.
    stale_at = None if entry.stale_at == deadlines.stale_at else entry.stale_at
    anchor = token_set.anchor
    refresh, id_token = token_set.refresh_token, token_set.id_token
    fields = (
        token_set.access_token.reveal(),
        None if refresh is None else refresh.reveal(),
        None if token_set.token_type == "Bearer" else token_set.token_type,
        token_set.scope,
        None if id_token is None else id_token.reveal(),
        _packed_extra(token_set.extra),
        token_set.lineage,
        token_set.client_id,
        token_set.generation,
        token_set.issued_at,
        token_set.expires_at,
        token_set.refresh_expires_at,
        None if anchor is None or anchor.wall == token_set.issued_at else anchor.wall,
        None if anchor is None else anchor.monotonic,
        entry.version,
        entry.reissued,
        _or_none(entry.last_used, _NEG_INF),
        _or_none(entry.stamped, _NEG_INF),
        _or_none(entry.renewed_at, _NEG_INF),
        entry.generation,
        stale_at,
    )
    try:
        return Rested(marshal.dumps(fields))
    except ValueError:  # an extra value of a type marshal does not know
        return None


def unpack(blob: Rested, key: TokenKey, policy: RefreshPolicy) -> Entry:
    """The entry ``blob`` was packed from (a new object, equal in every field kept)."""
    fields: tuple[Any, ...] = marshal.loads(blob)  # noqa: S302  (our own blob, never input)
    (
        access,
        refresh,
        token_type,
        scope,
        id_token,
        extra,
        lineage,
        client_id,
        set_generation,
        issued_at,
        expires_at,
        refresh_expires_at,
        wall,
        monotonic,
        version,
        reissued,
        last_used,
        stamped,
        renewed_at,
        generation,
        stale_at,
    ) = fields
    token_set = TokenSet(
        access_token=Secret(access),
        token_type="Bearer" if token_type is None else token_type,
        issued_at=issued_at,
        expires_at=expires_at,
        refresh_token=None if refresh is None else Secret(refresh),
        refresh_expires_at=refresh_expires_at,
        scope=scope,
        id_token=None if id_token is None else Secret(id_token),
        extra=_unpacked_extra(extra),
        anchor=None
        if monotonic is None
        else Anchor(issued_at if wall is None else wall, monotonic),
        lineage=lineage,
        generation=set_generation,
        client_id=client_id,
    )
    entry = Entry(key, policy)
    deadlines = plan(token_set, policy, reissued=reissued)
    entry.token_set = token_set
    entry.version = version
    entry.reissued = reissued
    entry.token = access
    entry.stale_at = deadlines.stale_at if stale_at is None else stale_at
    entry.usable_until = deadlines.must_refresh_at
    entry.last_used = _NEG_INF if last_used is None else last_used
    entry.stamped = _NEG_INF if stamped is None else stamped
    entry.renewed_at = _NEG_INF if renewed_at is None else renewed_at
    entry.generation = generation
    return entry
