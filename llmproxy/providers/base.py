"""What every upstream executor does: build the HTTP request, classify failures.

An executor is a small object per provider: it knows the endpoint, the headers and
auth for a credential, and which dialect the upstream speaks. The gateway owns I/O
(the shared ``HTTPClient``) and the codecs own translation, so an executor stays a
few dozen lines.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol

from .. import formats, upstream
from .._json import dumps, loads
from ..errors import InvalidRequest, ProviderError, ProviderHTTPError
from ..http import HTTPClient, Timeouts, UpstreamRequest
from ..model import Message, Request, TextPart


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """A provider's settings; an executor given one without a name or type takes its own type's."""

    name: str = ""
    type: str = ""
    base_url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    priority: int = 0
    weight: int = 1
    cooldown: float = 60.0
    rpm: int | None = None
    tpm: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Outbound proxy for this provider's calls (``http://[user:pass@]host:port``); empty:
    #: the environment's ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``.
    proxy: str = ""


@dataclass(frozen=True, slots=True)
class Credential:
    """One way to authenticate against a provider (an API key or OAuth tokens)."""

    name: str
    provider: str
    api_key: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    expires_at: float | None = None
    weight: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None

    @property
    def secret(self) -> str:
        return self.access_token or self.api_key or ""


class StreamFilter(Protocol):
    """Bytes in, bytes out, holding back an incomplete line until the next chunk."""

    def feed(self, chunk: bytes) -> bytes: ...

    def close(self) -> bytes: ...


class Executor:
    """Base executor. Subclasses set ``dialect`` and ``default_base_url`` and ``build``."""

    #: The wire dialect the upstream speaks (a name in ``llmproxy.formats.CODECS``);
    #: an instance may override it from its provider options.
    dialect: str = "openai_chat"
    default_base_url: ClassVar[str] = ""
    #: Client headers worth forwarding because they change meaning (lower-case).
    forward_headers: ClassVar[tuple[str, ...]] = ()
    #: The provider type an executor made without a provider stands for.
    type_name: ClassVar[str] = ""
    #: Model families this type serves (lower-case name prefixes); empty: any name.
    model_prefixes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, provider: ProviderConfig | None = None) -> None:
        default = self.type_name or type(self).__name__.lower()
        if provider is None:
            provider = ProviderConfig(name=default, type=self.type_name)
        elif not provider.name or not provider.type:
            provider = replace(provider, name=provider.name or default, type=provider.type or self.type_name)
        self.provider = provider

    @property
    def name(self) -> str:
        """The provider's name (the type's own name for an executor made without one)."""
        return self.provider.name

    def supports_model(self, model: str) -> bool:
        """Whether this type can serve ``model``: by its model families; an open server takes any name."""
        return bool(model) and (not self.model_prefixes or model.lower().startswith(self.model_prefixes))

    @property
    def base_url(self) -> str:
        return (self.provider.base_url or self.default_base_url).rstrip("/")

    def build(
        self,
        credential: Credential,
        body: dict[str, Any],
        *,
        model: str,
        stream: bool,
        client_headers: Mapping[str, str] | None = None,
        endpoint: str = "chat",
    ) -> UpstreamRequest:
        raise NotImplementedError

    def upstream_request(
        self, url: str, headers: dict[str, str], body: dict[str, Any], stream: bool, method: str = "POST"
    ) -> UpstreamRequest:
        """The request ``build`` returns: the JSON body, through the provider's proxy if it has one."""
        return UpstreamRequest(method, url, headers, json_body(body), stream, self.provider.proxy or None)

    def dialect_for(self, model: str, credential: Credential) -> str:
        """The dialect of one call: ``dialect``, unless a model speaks another (Copilot's Responses-only ones)."""
        return self.dialect

    def carries_cache_control(self, model: str) -> bool:
        """Whether this upstream takes Anthropic's ``cache_control`` on OpenAI Chat content parts
        for ``model`` (OpenRouter and Copilot do for Claude models); elsewhere it is dropped."""
        return False

    def unwrap_body(self, raw: bytes) -> bytes:
        """A reply body in the executor's dialect (an upstream that wraps replies unwraps them here)."""
        return raw

    def stream_unwrapper(self) -> StreamFilter | None:
        """A filter turning the upstream's stream bytes into the dialect's own, or None."""
        return None

    def token_refused(self, err: ProviderHTTPError) -> bool:
        """Whether the upstream refused the credential's token (worth one refresh and retry)."""
        return err.upstream_status == 401

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        """An upstream error status -> the error the gateway acts on (retry, cooldown)."""
        message = _error_message(body) or f"upstream answered HTTP {status}"
        return ProviderHTTPError(
            f"{self.provider.name}: {message}",
            upstream_status=status,
            provider=self.provider.name,
            retry_after=retry_after(headers),
        )

    def extra_headers(self, client_headers: Mapping[str, str] | None) -> dict[str, str]:
        out = dict(self.provider.headers)
        if client_headers:
            for name in self.forward_headers:
                if name in client_headers:
                    out[name] = client_headers[name]
        return out

    async def execute(
        self, credential: Credential, body: dict[str, Any], *, http: HTTPClient | None = None
    ) -> dict[str, Any]:
        """One non-streaming call, for library users: provider body in, provider JSON out."""
        client = http or HTTPClient()
        try:
            req = self.build(credential, body, model=str(body.get("model", "")), stream=False)
            reply = await upstream.send(client, self, req)
            return upstream.json_object(self.unwrap_body(await reply.read()))
        finally:
            if http is None:
                await client.close()

    async def execute_stream(
        self, credential: Credential, body: dict[str, Any], *, http: HTTPClient | None = None
    ) -> AsyncIterator[bytes]:
        """One streamed call: the provider's own stream bytes, for ``Translator.translate_stream``.

        An error status raises the executor's ``ProviderError`` before the first chunk.
        """
        client = http or HTTPClient()
        try:
            req = self.build(credential, body, model=str(body.get("model", "")), stream=True)
            reply = await upstream.send(client, self, req)
            unwrap = self.stream_unwrapper()
            try:
                async for chunk in reply.iter_chunks():
                    out = unwrap.feed(chunk) if unwrap is not None else chunk
                    if out:
                        yield out
                tail = unwrap.close() if unwrap is not None else b""
                if tail:
                    yield tail
            finally:
                reply.close()
        finally:
            if http is None:
                await client.close()

    def health_request(self, credential: Credential) -> UpstreamRequest | None:
        """A provider's own cheap probe, where the models list is not one (None: use that)."""
        return None

    def models_probe(self, credential: Credential, model: str = "") -> UpstreamRequest | None:
        """The cheapest request that proves ``credential``: the models list (a GET, no tokens)."""
        own = self.health_request(credential)
        if own is not None:
            return own
        try:
            built = self.build(credential, {}, model=model, stream=False, endpoint="models")
        except (KeyError, ValueError, NotImplementedError):
            return None
        headers = {k: v for k, v in built.headers.items() if k.lower() != "content-type"}
        return replace(built, method="GET", body=None, headers=headers)

    def completion_probe(self, credential: Credential, model: str) -> UpstreamRequest:
        """A one-token completion of ``model``, in the executor's dialect."""
        req = Request(model=model, messages=[Message("user", [TextPart("ping")])], max_tokens=1)
        body = formats.get(self.dialect).encode_request(req)
        return self.build(credential, body, model=model, stream=False)

    async def health_check(
        self, credential: Credential, *, model: str = "", http: HTTPClient | None = None, timeout: float = 10.0
    ) -> None:
        """Return when ``credential`` is accepted; raise the provider's error when it is not.

        Reachable and authenticated is healthy: a 429 (limits are the cooldowns' business)
        and a 400/422 to the probe pass; a 401, 403 or 5xx raises ``ProviderHTTPError``.
        """
        client = http or HTTPClient()
        timeouts = Timeouts(connect=timeout, first_byte=timeout, read=timeout)
        try:
            req = self.models_probe(credential, model)
            status, body = await upstream.fetch(client, req, timeouts=timeouts) if req is not None else (0, b"")
            if (req is None or status in (404, 405)) and model:
                status, body = await upstream.fetch(client, self.completion_probe(credential, model), timeouts=timeouts)
            if status >= 400 and status not in (400, 422, 429):
                raise upstream.failure(self, status, {}, body)
        finally:
            if http is None:
                await client.close()


def json_body(body: dict[str, Any]) -> bytes:
    """The upstream request's JSON; a value JSON cannot carry to it (an integer past 64 bits) is the client's 400."""
    try:
        return dumps(body)
    except TypeError as exc:
        raise InvalidRequest(f"request holds a value that cannot be sent upstream: {exc}") from None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``Retry-After`` (seconds or an HTTP date) or ``retry-after-ms``."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_message(body: bytes) -> str | None:
    try:
        data = loads(body)
    except ValueError:
        text = body[:200].decode("utf-8", "replace").strip()
        return text or None
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return None
    err = data.get("error")
    if isinstance(err, dict):
        msg = err.get("message")
        return str(msg) if msg else None
    if isinstance(err, str):
        return err
    msg = data.get("message")
    return str(msg) if isinstance(msg, str) else None
