"""Failed client-key attempts throttled per address: the live LLM endpoints and the management API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from django.test.client import Client

from llmproxy.throttle import ClientSettings
from proxy.api import throttle
from tests import factories
from tests.fakes import FakeUpstream
from tests.fakes import openai as up

pytestmark = pytest.mark.django_db(transaction=True)
CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}


def test_the_live_endpoints_throttle_an_address_and_ignore_untrusted_forwarded_for(
    live: Any, fake: FakeUpstream, site_config_file: Path
) -> None:
    site_config_file.write_text("clients: {max_key_failures: 2, key_failure_window: 60s}\n")
    factories.provider("up", fake.url + "/v1")
    _, key = factories.api_key(factories.user())
    live.reload()
    live.engine.gateway.router.store.reset()
    with httpx.Client(base_url=live.url, timeout=10) as c:
        bad = {"authorization": "Bearer sk-llmp-wrong"}
        # A client may not pick its own address: X-Forwarded-For is ignored from an untrusted peer.
        statuses = [c.post("/v1/chat/completions", json=CHAT, headers={**bad, "x-forwarded-for": f"10.0.0.{i}"})
                    .status_code for i in range(3)]  # fmt: skip
        assert statuses == [401, 401, 429]
        r = c.post("/v1/messages", json={**CHAT, "max_tokens": 5}, headers={"x-api-key": "nope"})
        assert r.status_code == 429 and r.json()["type"] == "error" and int(r.headers["retry-after"]) == 30
        for path in ("/v1/models", "/v1beta/models"):
            r = c.get(path, headers=bad)
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        r = c.post("/v1/messages/count_tokens", json=CHAT, headers={"x-api-key": "nope"})
        assert r.status_code == 429 and "retry-after" in r.headers
        r = c.post("/v1/embeddings", json={"model": "gpt-test", "input": "x"}, headers=bad)
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_key_failures"
        fake.queue("/v1/chat/completions", up.completion("hello"))
        ok = c.post("/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"})
        assert ok.status_code == 200  # a valid key from a throttled address is served


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(
    live: Any, fake: FakeUpstream, site_config_file: Path
) -> None:
    site_config_file.write_text("clients: {max_key_failures: 1, trusted_proxies: [127.0.0.1]}\n")
    live.reload()
    live.engine.gateway.router.store.reset()
    assert live.engine.gateway.runtime.clients.trusted_proxies == ("127.0.0.1",)
    with httpx.Client(base_url=live.url, timeout=10) as c:

        def attempt(forwarded: str) -> int:
            headers = {"authorization": "Bearer wrong", "x-forwarded-for": forwarded}
            return c.post("/v1/chat/completions", json=CHAT, headers=headers).status_code

        assert [attempt("198.51.100.1"), attempt("198.51.100.1")] == [401, 429]
        assert attempt("198.51.100.2") == 401  # another client behind the same proxy
        assert attempt("6.6.6.6, 198.51.100.1") == 429  # what the client wrote itself (left) does not count


def test_the_management_api_throttles_wrong_bearer_keys_per_address(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = ClientSettings(max_key_failures=3, key_failure_window=60)
    monkeypatch.setattr(throttle, "client_settings", lambda: conf)
    admin = factories.user("root", staff=True)
    _, key = factories.api_key(admin, admin=True)
    client = Client()
    statuses = [client.get("/api/v1/users", HTTP_AUTHORIZATION="Bearer sk-llmp-guess").status_code
                for _ in range(conf.max_key_failures + 1)]  # fmt: skip
    assert statuses == [401] * conf.max_key_failures + [429]
    r = client.get("/api/v1/users", HTTP_AUTHORIZATION="Bearer sk-llmp-guess")
    assert r.status_code == 429 and 1 <= int(r["Retry-After"]) <= conf.key_failure_window
    assert "failed API key attempts" in r.json()["detail"]
    assert client.get("/api/v1/users", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
