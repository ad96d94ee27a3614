"""The raw HTTP/1.1 upstream client against scripted loopback servers."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from llmproxy.errors import ProviderConnectionError, ProviderProtocolError, ProviderTimeout
from llmproxy.http import HTTPClient, Timeouts, UpstreamRequest

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


class Server:
    """A loopback server; ``handler(reader, writer, n)`` answers the n-th request of a connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/chat/completions"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        n = 0
        try:
            while True:
                self.requests.append(await read_request(reader))
                await self.handler(reader, writer, n)
                n += 1
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def reply(body: bytes, *, status: int = 200, headers: str = "") -> bytes:
    return f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n{headers}\r\n".encode() + body


@pytest.fixture
async def client() -> AsyncIterator[HTTPClient]:
    c = HTTPClient(timeouts=Timeouts(connect=2, first_byte=2, read=2))
    yield c
    await c.close()


def post(
    url: str, body: bytes = b'{"a":1}', *, stream: bool = False, headers: dict[str, str] | None = None
) -> UpstreamRequest:
    return UpstreamRequest("POST", url, headers or {"content-type": "application/json"}, body, stream)


async def test_http_reuses_one_connection_for_sequential_requests(client: HTTPClient) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(reply(b'{"n":%d}' % n, headers="x-upstream: yes\r\n"))

    async with Server(handler) as srv:
        for i in range(3):
            res = await client.send(post(srv.url))
            assert (res.status, await res.read()) == (200, b'{"n":%d}' % i)
            assert res.headers["X-Upstream"] == "yes" and res.headers.get("x-upstream") == "yes"
    assert srv.connections == 1
    head, body = srv.requests[0]
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n") and body == b'{"a":1}'
    assert b"content-length: 7\r\n" in head and b"content-type: application/json\r\n" in head


async def test_http_streams_chunked_bodies_as_they_arrive(client: HTTPClient) -> None:
    release = asyncio.Event()

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\ndata: \r\n")
        await w.drain()
        await release.wait()
        w.write(b"3\r\nabc\r\n0\r\n\r\n")

    async with Server(handler) as srv:
        res = await client.send(post(srv.url, stream=True))
        chunks = res.iter_chunks()
        assert await chunks.__anext__() == b"data: "
        release.set()
        assert [c async for c in chunks] == [b"abc"]


async def test_http_decompresses_gzip(client: HTTPClient) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(reply(gzip.compress(b'{"ok":true}'), headers="content-encoding: gzip\r\n"))

    async with Server(handler) as srv:
        res = await client.send(post(srv.url))
        assert await res.read() == b'{"ok":true}'
    assert b"accept-encoding: gzip, deflate" in srv.requests[0][0]


async def test_http_reads_a_body_delimited_by_the_close(client: HTTPClient) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await w.drain()
        w.close()

    async with Server(handler) as srv:
        res = await client.send(post(srv.url))
        assert await res.read() == b"all of it"


async def test_http_retries_once_when_a_kept_alive_connection_was_closed(client: HTTPClient) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(reply(b"ok"))
        await w.drain()
        w.close()  # keep-alive promised, then dropped: the next request must go on a new connection

    async with Server(handler) as srv:
        assert await (await client.send(post(srv.url))).read() == b"ok"
        await asyncio.sleep(0.05)
        assert await (await client.send(post(srv.url))).read() == b"ok"
    assert srv.connections == 2


async def test_http_times_out_waiting_for_the_head() -> None:
    client = HTTPClient(timeouts=Timeouts(connect=0.2, first_byte=0.2, read=0.2))

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await asyncio.sleep(5)

    async with Server(handler) as srv:
        with pytest.raises(ProviderTimeout):
            await client.send(post(srv.url))
    await client.close()


async def test_http_times_out_when_a_stream_goes_silent() -> None:
    client = HTTPClient(timeouts=Timeouts(connect=1, first_byte=1, read=0.2))

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n")
        await w.drain()
        await asyncio.sleep(5)

    async with Server(handler) as srv:
        res = await client.send(post(srv.url, stream=True))
        chunks = res.iter_chunks()
        assert await chunks.__anext__() == b"hi"
        with pytest.raises(ProviderTimeout):
            await chunks.__anext__()
    await client.close()


async def test_http_reports_a_reply_cut_mid_body(client: HTTPClient) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")
        await w.drain()
        w.close()

    async with Server(handler) as srv:
        res = await client.send(post(srv.url))
        with pytest.raises(ProviderConnectionError):
            await res.read()


async def test_http_rejects_malformed_replies(client: HTTPClient) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"NOT HTTP AT ALL\r\n\r\n")

    async with Server(handler) as srv:
        with pytest.raises(ProviderProtocolError):
            await client.send(post(srv.url))


async def test_http_refuses_header_injection(client: HTTPClient) -> None:
    with pytest.raises(ProviderProtocolError):
        await client.send(post("http://127.0.0.1:9/x", headers={"x-evil": "a\r\nx-injected: 1"}))


async def test_http_skips_interim_responses(client: HTTPClient) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 100 Continue\r\n\r\n" + reply(b"final", status=201))

    async with Server(handler) as srv:
        res = await client.send(post(srv.url))
        assert (res.status, await res.read()) == (201, b"final")


async def test_http_closing_an_unfinished_stream_drops_its_connection(client: HTTPClient) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n")
        if len(srv.requests) > 1:  # the first reply never ends
            w.write(b"0\r\n\r\n")

    srv = Server(handler)
    async with srv:
        res = await client.send(post(srv.url, stream=True))
        assert await res.iter_chunks().__anext__() == b"hi"
        res.close()
        res2 = await client.send(post(srv.url, stream=True))
        assert [c async for c in res2.iter_chunks()] == [b"hi"]
    assert srv.connections == 2


async def test_http_refused_connection_is_a_connection_error(client: HTTPClient) -> None:
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    with pytest.raises(ProviderConnectionError):
        await client.send(post(f"http://127.0.0.1:{port}/v1"))


def _self_signed(tmp_path: Any) -> tuple[str, str]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return str(cert_file), str(key_file)


async def test_http_speaks_tls_and_verifies_the_certificate(tmp_path: Any) -> None:
    import ssl

    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await read_request(reader)
                writer.write(reply(b"secret"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            writer.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    url = f"https://localhost:{srv.sockets[0].getsockname()[1]}/v1/messages"
    strict = HTTPClient(timeouts=Timeouts(connect=2, first_byte=2, read=2))
    with pytest.raises(ProviderConnectionError):  # self-signed: the default context refuses it
        await strict.send(post(url))
    await strict.close()
    trusting = HTTPClient(timeouts=Timeouts(connect=2, first_byte=2, read=2))
    assert trusting._raw is not None
    trusting._raw._ssl = ssl.create_default_context(cafile=cert)
    for _ in range(2):
        res = await trusting.send(post(url))
        assert (res.status, await res.read()) == (200, b"secret")
    await trusting.close()
    srv.close()


async def test_http_caps_and_ages_idle_connections(client: HTTPClient, monkeypatch: pytest.MonkeyPatch) -> None:
    import llmproxy._transports.raw as http

    gate = asyncio.Event()

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await gate.wait()
        w.write(reply(b"ok"))

    monkeypatch.setattr(http, "_MAX_IDLE", 2)
    async with Server(handler) as srv:
        pending = [asyncio.ensure_future(client.send(post(srv.url))) for _ in range(3)]
        await asyncio.sleep(0.1)
        gate.set()
        for res in await asyncio.gather(*pending):
            assert await res.read() == b"ok"
        assert client._raw is not None
        (idle,) = client._raw.idle.values()
        assert srv.connections == 3 and len(idle) == 2  # the third release retired the oldest
        monkeypatch.setattr(http, "_IDLE_SECONDS", 0.0)
        assert await (await client.send(post(srv.url))).read() == b"ok"
        assert srv.connections == 4  # every idle one had aged out: a fresh connection
