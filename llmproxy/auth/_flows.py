"""Login flows as plain functions, shared by ``manage.py login`` and the admin.

Device code (RFC 8628; GitHub, AWS SSO-OIDC)::

    code = DeviceCode(device_code=..., user_code="WDJB-MJHT", verification_uri=..., expires_in=900, interval=5)
    print(code.prompt())                      # open <verification_uri> and enter <user_code>
    data = await poll_device_code(code, poll)  # poll() -> (oauth error code or "", reply data)

``poll_device_code`` waits ``interval`` between polls, adds 5 s on ``slow_down`` (or
takes the interval the server sends), and raises ``AuthError`` on ``access_denied``, on
``expired_token`` or when ``expires_in`` has passed.

PKCE (RFC 7636; Claude, Google, Kiro social)::

    pkce = Pkce.new()                         # verifier, S256 challenge, state
    async with LoopbackCallback() as cb:      # http://127.0.0.1:<port>/callback
        url = authorize_url(base, client_id=..., redirect_uri=cb.redirect_uri, pkce=pkce, ...)
        params = await cb.wait(timeout=300)   # {"code": ..., "state": ...}
    code, state = split_pasted_code("CODE#STATE")   # or what a user pasted

A login (per account type, registered with ``register_login``) is a ``LoginFlow``: its
``prompt`` is shown to the user; ``complete(pasted)`` finishes it and returns the
``TokenFile`` to store (``pasted`` is the code a user pasted, None for loopback/device).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

from ..http import HTTPClient
from ..providers.base import ProviderConfig
from ._files import TokenFile
from ._http import AuthError


@dataclass(frozen=True, slots=True)
class DeviceCode:
    device_code: str
    user_code: str
    verification_uri: str
    expires_in: float = 900.0
    interval: float = 5.0
    verification_uri_complete: str | None = None

    def prompt(self) -> str:
        return f"open {self.verification_uri} and enter {self.user_code}"


Poll = Callable[[], Awaitable[tuple[str, Mapping[str, Any]]]]


async def poll_device_code(
    code: DeviceCode,
    poll: Poll,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Mapping[str, Any]:
    """Poll until the user approved; the token reply's data."""
    interval = max(0.0, code.interval)
    deadline = clock() + code.expires_in
    while True:
        await sleep(interval)
        if clock() > deadline:
            raise AuthError("the device code expired before it was approved; start the login again",
                            permanent=True, code="expired_token")  # fmt: skip
        error, data = await poll()
        if not error:
            return data
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            new = data.get("interval")
            interval = float(new) if isinstance(new, int | float) and new > interval else interval + 5.0
            continue
        if error == "access_denied":
            raise AuthError("access denied: the login was declined", permanent=True, code=error)
        if error == "expired_token":
            raise AuthError("the device code expired before it was approved; start the login again",
                            permanent=True, code=error)  # fmt: skip
        detail = data.get("error_description") or ""
        raise AuthError(f"device login failed: {error}{': ' + str(detail) if detail else ''}", permanent=True,
                        code=error)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Pkce:
    verifier: str
    challenge: str
    state: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = _b64(secrets.token_bytes(32))
        return cls(verifier, challenge_for(verifier), _b64(secrets.token_bytes(16)))


def challenge_for(verifier: str) -> str:
    """The S256 code challenge of a verifier."""
    return _b64(hashlib.sha256(verifier.encode()).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def authorize_url(base: str, *, client_id: str, redirect_uri: str, pkce: Pkce, scope: str = "",
                  extra: Mapping[str, str] | None = None) -> str:  # fmt: skip
    params = {"client_id": client_id, "response_type": "code", "redirect_uri": redirect_uri,
              "code_challenge": pkce.challenge, "code_challenge_method": "S256", "state": pkce.state}  # fmt: skip
    if scope:
        params["scope"] = scope
    params.update(extra or {})
    return f"{base}{'&' if '?' in base else '?'}{urlencode(params)}"


def split_pasted_code(text: str) -> tuple[str, str | None]:
    """``CODE#STATE`` (Claude's page), a full callback URL, or a bare code -> (code, state)."""
    text = text.strip()
    if text.startswith(("http://", "https://")):
        query = dict(parse_qsl(urlsplit(text).query))
        if "code" not in query:
            raise AuthError("the pasted URL carries no code")
        return query["code"], query.get("state")
    code, sep, state = text.partition("#")
    if not code:
        raise AuthError("nothing was pasted")
    return code, (state or None) if sep else None


class LoopbackCallback:
    """A one-shot HTTP server on 127.0.0.1 that receives the OAuth redirect."""

    def __init__(self, port: int = 0, path: str = "/callback") -> None:
        self.port = port
        self.path = path
        self._server: asyncio.Server | None = None
        self._result: asyncio.Future[dict[str, str]] | None = None

    @property
    def redirect_uri(self) -> str:
        return f"http://localhost:{self.port}{self.path}"

    async def __aenter__(self) -> LoopbackCallback:
        self._result = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def wait(self, timeout: float = 300.0) -> dict[str, str]:
        assert self._result is not None
        try:
            return await asyncio.wait_for(asyncio.shield(self._result), timeout)
        except TimeoutError:
            raise AuthError(f"no browser callback within {int(timeout)} s") from None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await reader.readline()).decode("latin-1")
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.split()
            target = urlsplit(parts[1]) if len(parts) >= 2 else urlsplit("/")
            query = dict(parse_qsl(target.query))
            ok = target.path == self.path and ("code" in query or "error" in query)
            text = "Login received; you may close this window." if ok else "Not found."
            body = f"<!doctype html><title>llmproxy</title><p>{text}</p>".encode()
            status = "200 OK" if ok else "404 Not Found"
            writer.write(f"HTTP/1.1 {status}\r\ncontent-type: text/html\r\ncontent-length: {len(body)}\r\n"
                         f"connection: close\r\n\r\n".encode() + body)  # fmt: skip
            await writer.drain()
            if ok and self._result is not None and not self._result.done():
                self._result.set_result(query)
        finally:
            writer.close()


def check_callback(params: Mapping[str, str], pkce: Pkce) -> str:
    """The code of a callback, after checking its state and error."""
    if "error" in params:
        raise AuthError(f"login refused: {params['error']} {params.get('error_description', '')}".strip(),
                        permanent=True, code=params["error"])  # fmt: skip
    if params.get("state") != pkce.state:
        raise AuthError("the callback's state does not match this login (a stale or foreign redirect)")
    return params["code"]


async def open_callback(options: LoginOptions, path: str, paste_redirect: str) -> tuple[LoopbackCallback | None, str]:
    """The loopback callback (None with ``no_browser``) and the redirect URI the authorize URL names.

    ``paste_redirect`` is the vendor page that shows the code for the user to paste back.
    """
    if options.no_browser:
        return None, paste_redirect
    callback = await LoopbackCallback(options.port, path).__aenter__()
    return callback, callback.redirect_uri


async def pkce_code(pkce: Pkce, callback: LoopbackCallback | None, pasted: str | None, *, pasted_what: str,
                    ask: str) -> str:  # fmt: skip
    """The authorization code of a PKCE login: from what the user pasted, else from the loopback.

    A pasted code that carries a state must carry this login's (``pasted_what`` names it in the
    error); with neither a paste nor a callback the user is told ``ask``.
    """
    if pasted is not None:
        code, state = split_pasted_code(pasted)
        if state is not None and state != pkce.state:
            raise AuthError(f"the pasted {pasted_what} belongs to another login (its state does not match)")
        return code
    if callback is not None:
        return check_callback(await callback.wait(), pkce)
    raise AuthError(ask)


@dataclass(frozen=True, slots=True)
class LoginOptions:
    """What the command line or the admin passes to a login."""

    name: str = "default"
    no_browser: bool = False
    method: str | None = None
    start_url: str | None = None
    #: Loopback port for PKCE callbacks (0: any free one).
    port: int = 0
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class LoginPrompt:
    """What to show: a device code (``verification_uri`` + ``user_code``) or a URL to open."""

    message: str
    verification_uri: str = ""
    user_code: str = ""
    authorize_url: str = ""
    #: True when the user must paste a code back (``complete(pasted)``).
    needs_paste: bool = False


@dataclass(slots=True)
class PkceLogin:
    """What every PKCE login holds; a subclass writes ``complete`` (its token request).

    ``callback`` is the loopback server (None when the user pastes the code back);
    ``close`` stops it.
    """

    provider: ProviderConfig
    http: HTTPClient
    pkce: Pkce
    redirect_uri: str
    prompt: LoginPrompt
    callback: LoopbackCallback | None = None

    async def close(self) -> None:
        if self.callback is not None:
            await self.callback.__aexit__(None, None, None)


class LoginFlow(Protocol):
    prompt: LoginPrompt

    async def complete(self, pasted: str | None = None) -> TokenFile: ...

    async def close(self) -> None: ...


Begin = Callable[[ProviderConfig, HTTPClient, LoginOptions], Awaitable[LoginFlow]]
#: account type -> "module:function" of its ``begin`` (kiro registers its own).
LOGINS: dict[str, str] = {
    "copilot": "llmproxy.auth.copilot:begin_login",
    "claude": "llmproxy.auth.claude:begin_login",
    "gemini": "llmproxy.auth.google:begin_login",
}


def register_login(provider_type: str, begin: Begin | str) -> None:
    LOGINS[provider_type] = begin if isinstance(begin, str) else f"{begin.__module__}:{begin.__qualname__}"


async def begin_login(provider: ProviderConfig, http: HTTPClient, options: LoginOptions) -> LoginFlow:
    """Start the login of ``provider``'s account type (``KeyError`` for a type without one)."""
    path = LOGINS[provider.type]
    module, _, attr = path.partition(":")
    begin: Begin = getattr(importlib.import_module(module), attr)
    return await begin(provider, http, options)
