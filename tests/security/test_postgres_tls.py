"""Attack: a network peer answers for the PostgreSQL host, with a certificate from a trusted CA
for another name, or one no configured CA signed.

``sslmode=verify-full`` (the default for any host but a socket or loopback) must check the
certificate *and* that it names the host; asyncpg's own default (``prefer``) checks neither and
falls back to plain text. A real PostgreSQL with TLS is started with the certificates that
tests/security/test_redis_tls_hostname.py makes: one for ``redis.internal.example`` (the wrong
name for 127.0.0.1) and, as a control, one naming 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aiofinaccess import StoreError, TokenKey
from aiofinaccess.errors import ConfigurationError
from aiofinaccess.stores.postgres import PostgresStore
from tests.security.test_redis_tls_hostname import pki  # noqa: F401  (the certificates)
from tests.support.postgres_server import running_postgres

KEY = TokenKey("everifin", "alice")


async def tls_in_use(store: PostgresStore) -> object:
    pool = await store._connections.ready()
    return await pool.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")


async def test_verify_full_connects_over_tls_to_the_named_host(pki: dict[str, Path]) -> None:  # noqa: F811
    """Control: the CA given, the certificate naming 127.0.0.1: TLS, and it works."""
    with running_postgres(tls=(pki["right.pem"], pki["right.key"])) as server:
        url = server.url_for("127.0.0.1", sslmode="verify-full", sslrootcert=str(pki["ca"]))
        async with PostgresStore(url, schema="tls") as store:
            assert await store.get(KEY) is None
            assert await tls_in_use(store) is True


async def test_a_certificate_for_another_host_is_refused(pki: dict[str, Path]) -> None:  # noqa: F811
    with running_postgres(tls=(pki["wrong.pem"], pki["wrong.key"])) as server:
        url = server.url_for("127.0.0.1", sslmode="verify-full", sslrootcert=str(pki["ca"]))
        store = PostgresStore(url, schema="tls")
        with pytest.raises(StoreError, match="SSLCertVerificationError"):
            await store.get(KEY)
        await store.aclose()


async def test_a_certificate_of_an_untrusted_ca_is_refused(pki: dict[str, Path]) -> None:  # noqa: F811
    """Without ``sslrootcert`` the system's CAs decide, and none of them signed this one."""
    with running_postgres(tls=(pki["right.pem"], pki["right.key"])) as server:
        store = PostgresStore(server.url_for("127.0.0.1", sslmode="verify-full"), schema="tls")
        with pytest.raises(StoreError, match="SSLCertVerificationError"):
            await store.get(KEY)
        await store.aclose()


def test_a_remote_host_gets_verified_tls_by_default() -> None:
    """No ``sslmode``: a remote host is verify-full (system CAs, hostname checked); only a
    socket or loopback stays plain."""
    remote = PostgresStore("postgresql://app@db.example/tokens")
    assert remote._target.verified
    context = remote._target.ssl
    assert not isinstance(context, bool)
    assert context.check_hostname
    for local in (
        "postgresql://app@127.0.0.1/tokens",
        "postgresql://app@localhost/tokens",
        "postgresql://app@[::1]/tokens",
        "postgresql:///tokens?host=/run/postgresql",
    ):
        assert PostgresStore(local)._target.ssl is False


@pytest.mark.parametrize("mode", ["require", "prefer", "allow", "verify-ca", "VERIFY-CA"])
def test_modes_that_skip_a_check_are_refused(mode: str) -> None:
    with pytest.raises(ConfigurationError, match="does not verify"):
        PostgresStore(f"postgresql://app@db.example/tokens?sslmode={mode}")


def test_the_environment_does_not_turn_verification_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """libpq's PGSSLMODE is not read: the URL alone decides (asyncpg reads it otherwise)."""
    monkeypatch.setenv("PGSSLMODE", "disable")
    assert PostgresStore("postgresql://app@db.example/tokens")._target.verified
