"""Attack: a network peer answers for the Redis host with a valid certificate for another name.

``rediss://`` must verify the certificate *and* that it names the host connected to. redis-py
5.x defaulted ``ssl_check_hostname`` to False (``redis>=5.0`` allows it), so any certificate
from a trusted CA, issued for any name, was accepted: the whole token store to whoever holds
one. A real ``redis-server`` with TLS is started with certificates made here by
``cryptography``: one for ``redis.internal.example`` (the wrong name for 127.0.0.1) and, as a
control proving the CA is trusted, one naming 127.0.0.1. They carry the key identifiers that
Python 3.13's default ``VERIFY_X509_STRICT`` asks for, so each is refused for its name only.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aiofinaccess import StoreError, TokenKey
from aiofinaccess.errors import ConfigurationError
from aiofinaccess.stores.redis import RedisStore
from tests.support.redis_server import running_redis

KEY = TokenKey("everifin", "alice")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, and server certificates it signed for a wrong name and for 127.0.0.1."""
    out = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("aiofinaccess test CA"))
        .issuer_name(_name("aiofinaccess test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (out / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    names: dict[str, x509.GeneralName] = {
        "wrong": x509.DNSName("redis.internal.example"),
        "right": x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    }
    for label, san in names.items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"redis {label}"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        (out / f"{label}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (out / f"{label}.key").write_bytes(_pem_key(key))
        (out / f"{label}.key").chmod(0o600)
    return {"ca": out / "ca.pem", **{p.stem + p.suffix: p for p in out.iterdir()}}


async def test_rediss_refuses_a_certificate_for_another_host(pki: dict[str, Path]) -> None:
    """A CA-signed certificate naming another host does not get the token store."""
    tls = (pki["wrong.pem"], pki["wrong.key"], pki["ca"])
    async with running_redis(tls=tls) as url:
        store = RedisStore(f"{url}?ssl_ca_certs={pki['ca']}")
        try:
            with pytest.raises(StoreError):
                await store.get(KEY)
        finally:
            await store.aclose()


async def test_rediss_accepts_the_certificate_for_its_host(pki: dict[str, Path]) -> None:
    """Control: the same CA and server, with a certificate naming 127.0.0.1, connect fine."""
    tls = (pki["right.pem"], pki["right.key"], pki["ca"])
    async with running_redis(tls=tls) as url:
        store = RedisStore(f"{url}?ssl_ca_certs={pki['ca']}")
        try:
            assert await store.get(KEY) is None
        finally:
            await store.aclose()


def test_rediss_checks_hostname_whatever_the_redis_py_default() -> None:
    """The store asks for the hostname check itself (redis-py 5.x defaulted it off)."""
    store = RedisStore("rediss://redis.example:6380/0")
    kwargs = store._client.connection_pool.connection_kwargs
    assert kwargs.get("ssl_check_hostname") is True
    assert kwargs.get("ssl_cert_reqs", "required") == "required"


@pytest.mark.parametrize(
    "query", ["ssl_check_hostname=false", "ssl_cert_reqs=none", "ssl_cert_reqs=optional"]
)
def test_rediss_url_cannot_switch_verification_off(query: str) -> None:
    """A URL option that turns certificate or name checks off is refused, not obeyed."""
    with pytest.raises(ConfigurationError, match="verification"):
        RedisStore(f"rediss://redis.example:6380/0?{query}")


#: Each option twice: redis-py obeys the first value (checks off), a last-value check saw "on".
REPEATED = (
    "ssl_check_hostname=false&ssl_check_hostname=true&ssl_cert_reqs=none&ssl_cert_reqs=required"
)


async def test_repeated_url_options_cannot_switch_verification_off(pki: dict[str, Path]) -> None:
    """Against a real TLS server whose certificate names another host: a URL repeating its TLS
    options is refused before connecting (redis-py reads the first value of each)."""
    tls = (pki["wrong.pem"], pki["wrong.key"], pki["ca"])
    async with running_redis(tls=tls) as url:
        attack = f"{url}?ssl_ca_certs={pki['ca']}&{REPEATED}"
        refused: ConfigurationError | None = None
        try:
            store = RedisStore(attack)
        except ConfigurationError as exc:
            refused = exc
        else:
            try:
                found = await store.get(KEY)
            finally:
                await store.aclose()
            pytest.fail(f"connected to a server whose certificate names another host ({found!r})")
        assert "more than once" in str(refused)


@pytest.mark.parametrize(
    "query",
    [
        "ssl_check_hostname=true&ssl_check_hostname=true",
        "ssl_cert_reqs=required&SSL_CERT_REQS=required",
        "ssl_ca_certs=/a.pem&ssl_ca_certs=/b.pem",
        "ssl_check_hostname=0",
        "ssl_check_hostname=F",
        "ssl_check_hostname=maybe",
        "ssl_cert_reqs=Optional",
        "ssl_cert_reqs=none",
    ],
)
@pytest.mark.parametrize("scheme", ["rediss", "rediss+cluster"])
def test_rediss_url_tls_options_are_checked_value_by_value(scheme: str, query: str) -> None:
    """A repeated TLS option (in any letter case) or a value that is not plainly "verify" is
    refused, on single-node and cluster URLs alike."""
    with pytest.raises(ConfigurationError, match=r"more than once|verification"):
        RedisStore(f"{scheme}://redis.example:6380/0?{query}")
