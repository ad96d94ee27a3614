"""Upstreams that quote the secrets they were sent: nothing of them reaches a log, a response or a record.

Every configured secret (provider keys, a credential's token, a secret header, the client
key, the encryption key, Django's secret key) is echoed by the fake upstream in its error
text, as real ones do ("Incorrect API key provided: sk-...abcd"), on every upstream
dialect, streamed and not, as a whole error and mid-stream, passthrough and translated.
Everything the live app's log handlers wrote (root, django, uvicorn, llmproxy, at DEBUG),
every response body and every usage record is then searched for each secret and each of
its 8-character fragments. (A real Celery worker's lines: tests/integration.)
"""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.conf import settings

from proxy.models import Credential, UsageRecord
from tests import factories
from tests.fakes import FakeUpstream
from tests.fakes.matrix import UPSTREAMS
from tests.fakes.server import Recorded, Reply, Stream

pytestmark = pytest.mark.django_db(transaction=True)
DIALECTS = list(UPSTREAMS)  # chat, responses, anthropic, gemini


def _secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(30)


def _error_body(dialect: str, status: int, message: str) -> dict[str, Any]:
    if dialect == "anthropic":
        return {"type": "error", "error": {"type": "authentication_error", "message": message}}
    if dialect == "gemini":
        return {"error": {"code": status, "message": message, "status": "UNAUTHENTICATED"}}
    return {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key", "param": None}}


class Echo:
    """The fake upstream's answer: an error (whole or mid-stream) that quotes every secret."""

    def __init__(self, message: str) -> None:
        self.message, self.status, self.mid_stream = message, 401, False

    def __call__(self, rec: Recorded) -> Reply | Stream:
        dialect = next(d for d in DIALECTS if f"/{d}" in rec.path)
        if self.mid_stream:
            frames = UPSTREAMS[dialect].broken_stream().frames
            return Stream([f.replace(b"upstream overloaded", self.message.encode())
                           .replace(b"Overloaded", self.message.encode()) for f in frames])  # fmt: skip
        return Reply(_error_body(dialect, self.status, self.message), status=self.status)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """What every handler of the process writes, at DEBUG (pytest's own capture aside)."""
    out = io.StringIO()
    root = logging.getLogger()
    loggers = [root] + [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    swapped: list[tuple[logging.StreamHandler[Any], Any]] = []
    for lg in loggers:
        for h in lg.handlers:
            if isinstance(h, logging.StreamHandler) and type(h).__module__.split(".")[0] != "_pytest":
                swapped.append((h, h.setStream(out)))
    assert swapped, "no log handler to capture"
    levels = {name: logging.getLogger(name).level for name in ("", "llmproxy.requests", "uvicorn", "django")}
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield out
    for h, stream in swapped:
        h.setStream(stream)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _request(client: str, model: str, key: str, stream: bool) -> tuple[str, dict[str, Any], dict[str, str]]:
    user = {"role": "user", "content": "hi"}
    if client == "chat":
        return "/v1/chat/completions", {"model": model, "messages": [user], "stream": stream}, {
            "authorization": f"Bearer {key}"}  # fmt: skip
    if client == "responses":
        return "/v1/responses", {"model": model, "input": "hi", "stream": stream, "store": False}, {
            "authorization": f"Bearer {key}"}  # fmt: skip
    if client == "anthropic":
        return "/v1/messages", {"model": model, "max_tokens": 16, "messages": [user], "stream": stream}, {
            "x-api-key": key, "anthropic-version": "2023-06-01"}  # fmt: skip
    verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"/v1beta/models/{model}:{verb}", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, {
        "x-goog-api-key": key}  # fmt: skip


def test_no_configured_secret_reaches_logs_responses_or_records(
    live: Any, fake: FakeUpstream, captured: io.StringIO
) -> None:
    configured: list[str] = []
    for dialect in DIALECTS:
        up = UPSTREAMS[dialect]
        key = _secret("sk-proj-")
        p = factories.provider(f"up-{dialect}", fake.url + up.suffix + f"/{dialect}", type=up.type, api_key=key,
                               models=[{"name": f"m-{dialect}", "upstream": "up-model"}])  # fmt: skip
        header = _secret("hdr-")
        p.headers = {"X-Upstream-Token": header}
        p.save()
        token = _secret("tok-")
        Credential.objects.create(provider=p, name="token", access_token=token)
        configured += [key, header, token]
    key_row, client_key = factories.api_key(factories.user())
    assert client_key.startswith(key_row.prefix) and len(key_row.prefix) <= 12
    configured += [client_key, *settings.LLMPROXY_ENCRYPTION_KEYS, settings.SECRET_KEY]
    live.reload()
    echo = Echo("Incorrect API key provided: " + " / ".join(configured) + ". Find your key at ...")
    fake.default("*", echo)
    bodies: list[str] = []
    with httpx.Client(base_url=live.url, timeout=20) as c:
        for dialect in DIALECTS:
            for client in {dialect, "chat"}:  # passthrough, and translated to OpenAI Chat
                for status, stream, mid in [(401, False, False), (500, False, False), (400, False, False),
                                            (401, True, False), (429, True, False), (200, True, True)]:  # fmt: skip
                    echo.status, echo.mid_stream = status, mid
                    live.engine.gateway.router.clear()  # no cooldown skips the upstream
                    path, body, headers = _request(client, f"m-{dialect}", client_key, stream)
                    r = c.post(path, json=body, headers=headers)
                    assert r.status_code != 200 or mid, (client, dialect, status, r.text)
                    bodies.append(f"{r.headers}\n{r.text}")
    live.flush_usage()
    records = [str(row) for row in UsageRecord.objects.values()]
    assert len(records) == len(bodies)
    logs = captured.getvalue()
    assert "attempt on up-" in logs  # the failures were logged (and the request log is on at DEBUG)
    assert any("[redacted]" in b for b in bodies)  # a client error's upstream text was relayed, scrubbed
    everything = {"logs": logs, "responses": "\n".join(bodies), "usage records": "\n".join(records)}
    # Every 8-character fragment, but those inside the client key's public prefix (``key_prefix``,
    # the key's shown name in records and the admin: the fixed "sk-llmp-" and 4 characters).
    fragments = {s[i : i + 8]: s[:12] + "..." for s in configured for i in range(len(s) - 7)}
    for i in range(len(key_row.prefix) - 7):
        fragments.pop(key_row.prefix[i : i + 8], None)
    leaks = [(where, of, frag) for frag, of in fragments.items() for where, text in everything.items() if frag in text]
    assert leaks == []
