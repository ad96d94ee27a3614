"""Both upstream transports over real TLS: certificate and host-name checks, SNI."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from llmproxy.errors import ProviderConnectionError
from llmproxy.http import HTTPClient, Timeouts, UpstreamRequest


def make_cert(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


@pytest.fixture
async def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    cert, key = make_cert(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the clients' default context trusts it
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
            await reader.readexactly(length)
            body = b'{"ok":true}'
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ctx)
    yield f"{server.sockets[0].getsockname()[1]}"
    server.close()


@pytest.mark.parametrize("transport", ["raw", "aiohttp"])
async def test_http_speaks_tls_to_a_trusted_upstream(
    tls_server: str, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMPROXY_HTTP_CLIENT", transport)
    client = HTTPClient(timeouts=Timeouts(connect=3, first_byte=3, read=3))
    try:
        reply = await client.send(UpstreamRequest("POST", f"https://localhost:{tls_server}/v1/x",
                                                  {"content-type": "application/json"}, b"{}"))  # fmt: skip
        assert reply.status == 200 and await reply.read() == b'{"ok":true}'
    finally:
        await client.close()


@pytest.mark.parametrize("transport", ["raw", "aiohttp"])
async def test_http_refuses_an_untrusted_certificate(tls_server: str, transport: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("LLMPROXY_HTTP_CLIENT", transport)
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent.pem")
    client = HTTPClient(timeouts=Timeouts(connect=3, first_byte=3, read=3))
    try:
        with pytest.raises(ProviderConnectionError):
            await client.send(UpstreamRequest("POST", f"https://localhost:{tls_server}/v1/x", {}, b"{}"))
    finally:
        await client.close()
