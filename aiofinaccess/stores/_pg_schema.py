"""The SQL of :class:`~aiofinaccess.stores.postgres.PostgresStore`: its migrations and every
statement it runs, each one statement (its own transaction), written once per schema.

* **Clock.** Every time the store judges is the database's: ``clock_timestamp()`` in epoch
  seconds (:data:`NOW`). Ages, claims, pending records' expiry; due times that a writer sends
  from a clock further than :data:`DUE_TOLERANCE` off move by the difference, as Redis's do.
* **Token sets** carry ``written`` (the database's clock) and ``age`` (the writer's age of the
  set then, with the write's ``transit``, also kept apart), so a reader counts the age on the
  database's clock, never its own.
* **Last use** is ``used_at`` on the database's clock, from the writer's age of the use; only
  a stamp writes it (a put leaves it), and a stamp makes an unscheduled set due at once.
* **Changes** are ``pg_notify`` calls in the statement that writes: sent only if it commits.
* **Leases** are rows ``(key, holder)`` with ``holder = owner:beat:ttl_ms``, judged on the
  waiters' monotonic clocks as the Redis lease is (:mod:`._pg_lease`).
* **Migrations** run in order under a transaction-scoped advisory lock, each once; the schema's
  version is a row of ``schema_version``. A database newer than this code is refused.
"""

from __future__ import annotations

import re
from typing import Final

from ._sql_payments import POSTGRES_TABLE

__all__ = ["DUE_TOLERANCE", "MIGRATIONS", "NOW", "SCHEMA_NAME", "Statements"]

#: Schema names this store accepts: plain lower-case identifiers, quoted in every statement.
SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,39}")
#: The database's clock in epoch seconds.
NOW: Final = "extract(epoch from clock_timestamp())::float8"
#: Due times of a writer further off the database's clock move by the distance.
DUE_TOLERANCE: Final = 1.0

#: Each migration's statements, in order; ``{s}`` is the quoted schema.
MIGRATIONS: Final = (
    """
    CREATE TABLE {s}.token_sets (
        key text PRIMARY KEY, provider text NOT NULL, version bigint NOT NULL,
        data bytea NOT NULL, written float8 NOT NULL, age float8 NOT NULL, due_at float8
    );
    CREATE INDEX token_sets_provider ON {s}.token_sets (provider, key);
    CREATE INDEX token_sets_due ON {s}.token_sets (due_at) WHERE due_at IS NOT NULL;
    CREATE INDEX token_sets_provider_due ON {s}.token_sets (provider, due_at)
        WHERE due_at IS NOT NULL;
    CREATE TABLE {s}.leases (key text PRIMARY KEY, holder text NOT NULL);
    CREATE TABLE {s}.pending_authorizations (
        state text PRIMARY KEY, data bytea NOT NULL, expires_at float8 NOT NULL
    );
    CREATE INDEX pending_authorizations_expiry ON {s}.pending_authorizations (expires_at);
    """,
    POSTGRES_TABLE,
    # Connection records and the notices' outbox (:mod:`._pg_connections`).
    """
    CREATE TABLE {s}.connection_records (
        name text PRIMARY KEY, version bigint NOT NULL, data bytea NOT NULL
    );
    CREATE TABLE {s}.connection_notices (id text PRIMARY KEY, data bytea NOT NULL, due_at float8);
    CREATE INDEX connection_notices_due ON {s}.connection_notices (due_at)
        WHERE due_at IS NOT NULL;
    """,
    # The last use (the database's clock; NULL: never stamped), written by mark_used only.
    """
    ALTER TABLE {s}.token_sets ADD COLUMN used_at float8;
    """,
    # Update budgets (:mod:`._pg_connections`) and when each notice was finished (pruning).
    """
    CREATE TABLE {s}.update_budgets (name text PRIMARY KEY, taken float8[] NOT NULL);
    ALTER TABLE {s}.connection_notices ADD COLUMN finished_at float8;
    CREATE INDEX connection_notices_finished ON {s}.connection_notices (finished_at)
        WHERE finished_at IS NOT NULL;
    """,
    # The part of a set's age that was its write's transit (see _TRANSIT; 0 before this).
    """
    ALTER TABLE {s}.token_sets ADD COLUMN transit float8 NOT NULL DEFAULT 0;
    """,
)

# A due time ($due) from a writer whose wall clock read $wall moves by the writer's distance
# from the database's clock when that exceeds the tolerance ($tolerance).
_MOVED: Final = (
    "{due}::float8 + CASE WHEN abs(t.now - {wall}::float8) > {tolerance}::float8"
    " THEN t.now - {wall}::float8 ELSE 0 END"
)
# The distance from a writer's clock to the database's when within the tolerance: the
# statement's transit (a lock, a busy server), by which the set was older when the write ran
# and which is added to its age; kept apart too, since it may as well be the writer's clock
# running behind (Versioned.transit). Beyond it the clocks disagree and only _MOVED applies.
_TRANSIT: Final = (
    "CASE WHEN t.now - {wall}::float8 > 0 AND t.now - {wall}::float8 <= {tolerance}::float8"
    " THEN t.now - {wall}::float8 ELSE 0 END"
)
# Our own client keys, or no client key at all: what a claimant holding $own can renew.
_RENEWABLE: Final = "(left(key, length(provider) + 7) <> provider || ':client' OR key = ANY({own}))"


class Statements:
    """Every statement, for one schema (``schema`` must match :data:`SCHEMA_NAME`)."""

    def __init__(self, schema: str) -> None:
        s = f'"{schema}"'
        sets, leases, pending = f"{s}.token_sets", f"{s}.leases", f"{s}.pending_authorizations"
        now = f"WITH t AS (SELECT {NOW} AS now)"
        self.schema = s
        #: The advisory lock migrations hold (a 64-bit hash of the schema's name).
        self.lock = f"SELECT pg_advisory_xact_lock(hashtextextended('aiofinaccess:{schema}', 0))"
        self.create_schema = f"CREATE SCHEMA IF NOT EXISTS {s}"
        self.create_version = (
            f"CREATE TABLE IF NOT EXISTS {s}.schema_version"
            " (one int PRIMARY KEY CHECK (one = 1), version int NOT NULL)"
        )
        self.has_version = f"SELECT to_regclass('{s}.schema_version')"
        self.get_version = f"SELECT version FROM {s}.schema_version"
        self.set_version = (
            f"INSERT INTO {s}.schema_version VALUES (1, $1)"
            " ON CONFLICT (one) DO UPDATE SET version = excluded.version"
        )
        self.migrations = [step.format(s=s) for step in MIGRATIONS]

        # -- token sets: $1 key; reads answer version, data, the age on the db's clock and the
        # part of it that was the write's transit.
        age = "greatest(0, t.now - written) + age, transit"
        self.get = f"{now} SELECT version, data, {age} FROM {sets}, t WHERE key = $1"
        self.get_many = (
            f"{now} SELECT key, version, data, {age} FROM {sets}, t WHERE key = ANY($1::text[])"
        )
        self.exists = f"SELECT 1 FROM {sets} WHERE key = $1"
        # $1 key, $2 provider, $3 version, $4 data, $5 age, $6 due, $7 wall, $8 tolerance,
        # $9 channel, $10 payload ('' = none); $11 the expected version (update only).
        moved = _MOVED.format(due="$6", wall="$7", tolerance="$8")
        transit = _TRANSIT.format(wall="$7", tolerance="$8")
        aged = f"$5::float8 + {transit}"
        notify = "SELECT CASE WHEN $10::text <> '' THEN pg_notify($9::text, $10::text) END FROM w"
        columns = "key, provider, version, data, written, age, transit, due_at"
        self.insert = (
            f"{now}, w AS (INSERT INTO {sets} ({columns})"
            f" SELECT $1::text, $2::text, $3::bigint, $4::bytea, t.now, {aged}, {transit},"
            f" {moved} FROM t ON CONFLICT (key) DO NOTHING RETURNING 1) {notify}"
        )
        self.update = (
            f"{now}, w AS (UPDATE {sets} SET version = $3::bigint, data = $4::bytea,"
            f" written = t.now, age = {aged}, transit = {transit}, due_at = {moved} FROM t"
            f" WHERE key = $1::text AND provider = $2::text AND version = $11::bigint"
            f" RETURNING 1) {notify}"
        )
        # $1 key, $2 expected version (NULL = any), $3 channel, $4 payload.
        self.delete = (
            f"WITH w AS (DELETE FROM {sets} WHERE key = $1::text"
            " AND version = coalesce($2::bigint, version) RETURNING 1)"
            " SELECT CASE WHEN $4::text <> '' THEN pg_notify($3::text, $4::text) END FROM w"
        )
        # Keyset pages: $1 the last key seen ('' first), $2 the page size, $3 the provider.
        self.keys = f"SELECT key FROM {sets} WHERE key > $1 ORDER BY key LIMIT $2"
        self.provider_keys = (
            f"SELECT key FROM {sets} WHERE provider = $3 AND key > $1 ORDER BY key LIMIT $2"
        )

        # -- refresh duty: $1 providers, $2 our client keys, $3 limit, $4 claim_for.
        renewable = _RENEWABLE.format(own="$2::text[]")
        self.claim = (
            f"{now}, due AS (SELECT key FROM {sets} WHERE provider = ANY($1::text[])"
            f" AND due_at <= (SELECT now FROM t) AND {renewable}"
            " ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED)"
            f" UPDATE {sets} AS s SET due_at = t.now + $4::float8 FROM due, t"
            " WHERE s.key = due.key RETURNING s.key, s.provider"
        )
        self.unschedule = f"UPDATE {sets} SET due_at = NULL WHERE key = ANY($1::text[])"
        # $1 key, $2 due (NULL = none), $3 expected version (NULL = any), $4 wall, $5 tolerance.
        self.reschedule = (
            f"{now} UPDATE {sets} SET due_at = {_MOVED.format(due='$2', wall='$4', tolerance='$5')}"
            " FROM t WHERE key = $1::text AND version = coalesce($3::bigint, version)"
        )
        self.next_due = (
            f"SELECT due_at FROM {sets} WHERE due_at IS NOT NULL ORDER BY due_at LIMIT 1"
        )
        # One index probe per provider ($1), skipping other clients' client sets ($2: ours).
        self.next_due_in_scope = (
            "SELECT min(d) FROM unnest($1::text[]) AS p(name) CROSS JOIN LATERAL"
            f" (SELECT due_at AS d FROM {sets} WHERE provider = p.name AND due_at IS NOT NULL"
            f" AND {renewable} ORDER BY due_at LIMIT 1) AS x"
        )
        self.due_count = f"SELECT count(*) FROM {sets} WHERE due_at <= $1::float8"
        # -- last use: $1 keys, $2 each use's age (stamp); $1 keys (read).
        self.mark_used = (
            f"{now}, u AS (SELECT * FROM unnest($1::text[], $2::float8[]) AS u(key, age))"
            f" UPDATE {sets} AS s SET used_at = greatest(s.used_at, t.now - u.age),"
            " due_at = coalesce(s.due_at, t.now) FROM t, u WHERE s.key = u.key"
        )
        self.idle_for = (
            # greatest() skips a NULL: never stamped must stay NULL.
            f"{now} SELECT key, CASE WHEN used_at IS NOT NULL THEN greatest(0, t.now - used_at)"
            f" END FROM {sets}, t"
            " WHERE key = ANY($1::text[])"
        )

        # -- pending authorizations: $1 state, $2 data, $3 ttl.
        self.put_pending = (
            f"INSERT INTO {pending} (state, data, expires_at) VALUES ($1, $2, {NOW} + $3::float8)"
            " ON CONFLICT (state) DO UPDATE SET data = excluded.data,"
            " expires_at = excluded.expires_at"
        )
        self.prune_pending = f"DELETE FROM {pending} WHERE expires_at <= {NOW}"
        self.get_pending = f"SELECT data FROM {pending} WHERE state = $1 AND expires_at > {NOW}"
        self.take_pending = (
            f"DELETE FROM {pending} WHERE state = $1 RETURNING data, expires_at > {NOW}"
        )

        # -- leases: $1 key, $2 our holder value, $3 the value seen stand its ttl ('' = none).
        # Answers (true, ours) when taken, else (false, the holder) or no row (it just went).
        self.take_lease = (
            f"WITH taken AS (INSERT INTO {leases} (key, holder) VALUES ($1::text, $2::text)"
            f" ON CONFLICT (key) DO UPDATE SET holder = excluded.holder"
            f" WHERE {leases}.holder = $3::text RETURNING holder)"
            " SELECT true, holder FROM taken UNION ALL"
            f" SELECT false, holder FROM {leases} WHERE key = $1::text"
            " AND NOT EXISTS (SELECT 1 FROM taken)"
        )
        # $1 key, $2 owner, $3 new beat, $4 ttl ms: keeps the larger ttl, never shortens.
        self.extend_lease = (
            f"UPDATE {leases} SET holder = $2::text || ':' || $3::text || ':'"
            " || greatest(split_part(holder, ':', 3)::bigint, $4::bigint)::text"
            " WHERE key = $1::text AND split_part(holder, ':', 1) = $2::text"
        )
        self.release_lease = (
            f"DELETE FROM {leases} WHERE key = $1::text AND split_part(holder, ':', 1) = $2::text"
        )
