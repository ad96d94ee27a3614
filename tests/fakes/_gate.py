"""The shared shape of the account fakes: a loopback server whose model routes check auth.

An ``AccountServer`` owns a ``FakeUpstream``. Its token endpoints are handlers of the
subclass; its model routes (``guard(path, check)``) first run ``check`` (a 401/400
``Reply`` when the real service would refuse, else None) and then answer with what the
test queued (``then(path, script)``, scripts as for ``FakeUpstream``) or a default.
Tokens are minted with a lifetime the test sets (``token_ttl``), so a test can make
them expire in a second and watch the proxy refresh.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from .server import FakeUpstream, Recorded, Reply, Script, Stream

Check = Callable[[Recorded], Reply | None]


def form(rec: Recorded) -> dict[str, str]:
    """A form-encoded body (the server records it as raw bytes)."""
    raw = rec.body if isinstance(rec.body, bytes) else b""
    return dict(parse_qsl(raw.decode()))


def bearer(rec: Recorded) -> str | None:
    value = rec.headers.get("authorization", "")
    return value[7:] if value.lower().startswith("bearer ") else None


class Tokens:
    """Minted tokens and when they expire; ``revoke`` kills one early."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.expiry: dict[str, float] = {}
        self.minted = 0

    def mint(self, ttl: float) -> str:
        self.minted += 1
        tok = f"{self.prefix}{self.minted}-{secrets.token_hex(6)}"
        self.expiry[tok] = time.time() + ttl
        return tok

    def valid(self, tok: str | None) -> bool:
        return tok is not None and self.expiry.get(tok, 0.0) > time.time()

    def revoke(self, tok: str) -> None:
        self.expiry[tok] = 0.0


class AccountServer:
    def __init__(self) -> None:
        self.server = FakeUpstream()
        self._then: dict[str, deque[Script]] = {}
        self._fallback: dict[str, Script] = {}

    def start(self) -> AccountServer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        self.server._loop.close()  # a fake per test module: leave no loop behind

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[Recorded]:
        return self.server.requests

    def to(self, path: str) -> list[Recorded]:
        return [r for r in self.server.requests if r.path == path]

    def route(self, path: str, handler: Callable[[Recorded], Reply | Stream]) -> None:
        self.server.default(path, handler)

    def guard(self, path: str, check: Check, default: Script) -> None:
        self._fallback[path] = default

        def answer(rec: Recorded) -> Reply | Stream:
            refused = check(rec)
            if refused is not None:
                return refused
            queued = self._then.get(path)
            script = queued.popleft() if queued else self._fallback[path]
            return script(rec) if callable(script) else script

        self.server.default(path, answer)

    def then(self, path: str, *scripts: Script) -> None:
        self._then.setdefault(path, deque()).extend(scripts)

    def reset_replies(self) -> None:
        self._then.clear()
        self.server.requests.clear()


def oauth_error(code: str, description: str, status: int = 400) -> Reply:
    return Reply({"error": code, "error_description": description}, status=status)


def json_reply(body: Any, status: int = 200) -> Reply:
    return Reply(body, status=status)
