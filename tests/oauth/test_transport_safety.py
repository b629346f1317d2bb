"""Transport safety: TLS is verified by default, plain HTTP only on loopback, bodies bounded."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aiofinaccess import ClientCredentials, Oidc, Schedule, SessionManager, TransportError
from aiofinaccess.errors import ConfigurationError


def _self_signed(directory: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[str]:
    served = 0

    async def token(request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        return web.json_response({"access_token": "AT", "expires_in": 60})

    app = web.Application()
    app.router.add_post("/token", token)
    server = TestServer(app, host="127.0.0.1", ssl=_self_signed(tmp_path))
    await server.start_server()
    yield f"https://127.0.0.1:{server.port}"
    await server.close()
    assert served == 0, "the client talked to a server whose certificate it cannot verify"


async def test_tls_is_verified_by_default(tls_server: str) -> None:
    """A self-signed certificate is refused; the error says so and is not retried."""
    async with SessionManager(schedule=Schedule(enabled=False)) as manager:
        manager.register(
            Oidc.endpoints(name="tls", token_url=tls_server + "/token"), ClientCredentials("c", "s")
        )
        with pytest.raises(TransportError, match="certificate") as info:
            await manager.access_token("tls")
    assert info.value.request_sent is False
    assert info.value.retryable is False


@pytest.mark.parametrize(
    "url", ["http://10.0.0.5/token", "http://idp.example.com/token", "http://[2001:db8::1]/token"]
)
def test_plain_http_is_refused_off_loopback(url: str) -> None:
    """Only loopback may use plain HTTP, unless the app opts in by name."""
    with pytest.raises(ConfigurationError, match="plain http"):
        Oidc.endpoints(name="x", token_url=url)
    assert (
        Oidc.endpoints(name="x", token_url=url, allow_insecure_http=True).token_url.scheme == "http"
    )
