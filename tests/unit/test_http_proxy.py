"""Outbound proxies: both transports, http and https upstreams, the environment and NO_PROXY.

The proxy is a small one written here (asyncio, loopback): ``CONNECT`` tunnels for
https upstreams, absolute-form requests forwarded for http ones, and it records what
it was asked so the tests can tell a proxied request from a direct one.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llmproxy._transports.proxies import ProxyResolver, mask_proxy, parse_proxy
from llmproxy.config import ConfigError, dump, loads
from llmproxy.errors import ProviderConnectionError
from llmproxy.http import HTTPClient, Timeouts, UpstreamRequest
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.providers.openai import OpenAIExecutor

from .test_http_tls import make_cert

TRANSPORTS = ["raw", "aiohttp"]
PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy", "ALL_PROXY")


async def _read_head(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        if b":" in line:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


class Proxy:
    """A forward proxy: records (method, target, proxy-authorization) for every request."""

    def __init__(self, require: str | None = None) -> None:
        self.seen: list[tuple[str, str, str | None]] = []
        self.require = require  # a Proxy-Authorization value, or None for an open proxy
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> Proxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line, headers = await _read_head(reader)
                method, target, _ = line.decode().split(" ", 2)
                auth = headers.get(b"proxy-authorization")
                self.seen.append((method, target, auth.decode() if auth else None))
                if self.require is not None and (auth or b"").decode() != self.require:
                    writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n")
                    await writer.drain()
                    return
                if method == "CONNECT":
                    host, _, port = target.rpartition(":")
                    up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
                    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    await writer.drain()
                    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                    return
                await self._forward(method, target, headers, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def _forward(self, method: str, target: str, headers: dict[bytes, bytes], reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:  # fmt: skip
        """One absolute-form request, sent on to the origin in origin form; its whole reply back."""
        assert target.startswith("http://"), target
        hostport, _, path = target[len("http://") :].partition("/")
        host, _, port = hostport.rpartition(":")
        body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        kept = b"".join(k + b": " + v + b"\r\n" for k, v in headers.items()
                        if k not in (b"proxy-authorization", b"connection"))  # fmt: skip
        up_writer.write(f"{method} /{path} HTTP/1.1\r\n".encode() + kept + b"connection: close\r\n\r\n" + body)
        await up_writer.drain()
        writer.write(await up_reader.read())
        await writer.drain()
        up_writer.close()


async def _origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An upstream that answers every request with the request line it saw."""
    try:
        while True:
            line, headers = await _read_head(reader)
            await reader.readexactly(int(headers.get(b"content-length", b"0")))
            body = line
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()
            if headers.get(b"connection") == b"close":
                break
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def http_origin() -> AsyncIterator[str]:
    server = await asyncio.start_server(_origin, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()


@pytest.fixture
async def https_origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    cert, key = make_cert(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the clients' default context trusts it
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server = await asyncio.start_server(_origin, "127.0.0.1", 0, ssl=ctx)
    yield f"https://localhost:{server.sockets[0].getsockname()[1]}"
    server.close()


def _client(monkeypatch: pytest.MonkeyPatch, transport: str) -> HTTPClient:
    monkeypatch.setenv("LLMPROXY_HTTP_CLIENT", transport)
    return HTTPClient(timeouts=Timeouts(connect=3, first_byte=3, read=3))


def _post(url: str, proxy: str | None = None) -> UpstreamRequest:
    return UpstreamRequest("POST", url, {"content-type": "application/json"}, b"{}", proxy=proxy)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_http_upstream_through_the_environments_proxy(
    transport: str, http_origin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Proxy(require="Basic " + base64.b64encode(b"me:s3cret").decode()) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://me:s3cret@"))
        client = _client(monkeypatch, transport)
        for _ in range(2):
            reply = await client.send(_post(http_origin + "/v1/chat/completions?x=1"))
            assert (reply.status, await reply.read()) == (200, b"POST /v1/chat/completions?x=1 HTTP/1.1")
        await client.close()
    # Absolute-form to the proxy, with the proxy's credentials; the origin saw origin form.
    assert proxy.seen[0][:2] == ("POST", http_origin + "/v1/chat/completions?x=1")
    assert proxy.seen[0][2] == "Basic " + base64.b64encode(b"me:s3cret").decode()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_https_upstream_through_a_connect_tunnel(
    transport: str, https_origin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Proxy(require="Basic " + base64.b64encode(b"me:s3cret").decode()) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("http://", "http://me:s3cret@"))
        client = _client(monkeypatch, transport)
        for _ in range(3):
            reply = await client.send(_post(https_origin + "/v1/messages"))
            assert (reply.status, await reply.read()) == (200, b"POST /v1/messages HTTP/1.1")
        await client.close()
    authority = https_origin[len("https://") :]
    assert proxy.seen and all(seen[:2] == ("CONNECT", authority) for seen in proxy.seen)
    if transport == "raw":
        assert len(proxy.seen) == 1  # one tunnel, kept alive and reused


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_no_proxy_bypasses_the_environments_proxy(
    transport: str, https_origin: str, http_origin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "example.org, localhost,127.0.0.0/8")
        client = _client(monkeypatch, transport)
        for url in (https_origin + "/a", http_origin + "/b"):
            reply = await client.send(_post(url))
            assert reply.status == 200
            await reply.read()
        await client.close()
    assert proxy.seen == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_providers_own_proxy_wins_over_the_environment(
    transport: str, https_origin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Proxy() as own, Proxy() as env:
        monkeypatch.setenv("HTTPS_PROXY", env.url)
        monkeypatch.setenv("NO_PROXY", "localhost")  # the environment's exceptions do not bind it
        client = _client(monkeypatch, transport)
        reply = await client.send(_post(https_origin + "/v1/messages", proxy=own.url))
        assert (reply.status, await reply.read()) == (200, b"POST /v1/messages HTTP/1.1")
        await client.close()
    assert [s[0] for s in own.seen] == ["CONNECT"] and env.seen == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_proxy_that_refuses_the_tunnel_is_a_connection_error(
    transport: str, https_origin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Proxy(require="Basic nope") as proxy:
        client = _client(monkeypatch, transport)
        with pytest.raises(ProviderConnectionError):
            await client.send(_post(https_origin + "/v1/messages", proxy=proxy.url))
        await client.close()
    assert proxy.seen[0][0] == "CONNECT"


def test_no_proxy_matching() -> None:
    r = ProxyResolver({"https_proxy": "http://p:1", "NO_PROXY": "example.com,.internal,10.0.0.0/8,svc:8443,::1"})
    assert r.resolve(True, "api.openai.com", 443) == parse_proxy("http://p:1")
    for host, port in (("example.com", 443), ("api.example.com", 443), ("x.internal", 443), ("10.1.2.3", 443),
                       ("svc", 8443), ("::1", 443)):  # fmt: skip
        assert r.resolve(True, host, port) is None, host
    assert r.resolve(True, "svc", 443) is not None  # the exception names another port
    assert r.resolve(True, "notexample.com", 443) is not None
    assert r.resolve(False, "api.openai.com", 80) is None  # no HTTP_PROXY: plain http goes direct
    assert ProxyResolver({"HTTPS_PROXY": "http://p:1", "no_proxy": "*"}).resolve(True, "a.b", 443) is None
    # The lower-case spelling wins, as in curl and urllib.
    both = ProxyResolver({"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2"})
    assert both.resolve(True, "a.b", 443) == parse_proxy("http://lower:2")


def test_proxy_urls_are_checked_and_masked() -> None:
    p = parse_proxy("http://me:p%40ss@proxy.corp:3128")
    assert (p.host, p.port, p.login, p.password) == ("proxy.corp", 3128, "me", "p@ss")
    assert p.authorization == "Basic " + base64.b64encode(b"me:p@ss").decode()
    assert parse_proxy("proxy.corp:8080").url == "http://proxy.corp:8080"
    with pytest.raises(ValueError, match="only http://"):
        parse_proxy("socks5://proxy.corp:1080")
    assert mask_proxy("http://me:p%40ss@proxy.corp:3128") == "http://me:<redacted>@proxy.corp:3128"
    assert mask_proxy("http://proxy.corp:3128") == "http://proxy.corp:3128"
    # An unusable proxy in the environment is ignored (with a warning), not fatal.
    assert ProxyResolver({"HTTPS_PROXY": "socks5://x:1"}).resolve(True, "a.b", 443) is None


CONFIG = """
providers:
  openai-main:
    type: openai
    proxy: http://me:pw@proxy.corp:3128
    credentials: [{name: k, api_key: sk-test}]
    models: [{name: gpt-x}]
"""


def test_the_config_carries_a_providers_proxy_to_its_requests() -> None:
    config = loads(CONFIG)
    spec = config.providers["openai-main"]
    assert spec.proxy == "http://me:pw@proxy.corp:3128"
    assert "proxy: http://me:<redacted>@proxy.corp:3128" in dump(config)
    assert "proxy: http://me:pw@proxy.corp:3128" in dump(config, with_secrets=True)
    executor = OpenAIExecutor(ProviderConfig(name="openai-main", type="openai", proxy=spec.proxy))
    req = executor.build(Credential("k", "openai-main", api_key="sk-test"), {"model": "gpt-x"}, model="gpt-x",
                         stream=False)  # fmt: skip
    assert req.proxy == "http://me:pw@proxy.corp:3128"
    with pytest.raises(ConfigError) as err:
        loads(CONFIG.replace("http://me:pw@proxy.corp:3128", "socks5://me:pw@proxy.corp:1080"))
    assert "providers.openai-main.proxy" in str(err.value) and "pw" not in str(err.value)
