"""Streams end cleanly: a client that goes away cancels the upstream and is still recorded."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from proxy.models import UsageRecord
from tests import factories
from tests.fakes import FakeUpstream
from tests.fakes import openai as up

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_cancels_the_upstream_when_the_client_disconnects(live: Any, fake: FakeUpstream) -> None:
    factories.provider("up", fake.url + "/v1")
    _, key = factories.api_key(factories.user())
    live.reload()
    fake.queue("/v1/chat/completions", up.stream([f"w{i} " for i in range(40)], delay=0.1))
    body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "long story"}]}
    with httpx.stream("POST", live.url + "/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {key}"}, timeout=10) as r:  # fmt: skip
        assert r.status_code == 200
        rid = r.headers["x-request-id"]
        for seen, _ in enumerate(r.iter_bytes(), start=1):
            if seen >= 3:
                break
    deadline = time.monotonic() + 5
    while fake.last().outcome != "aborted" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.last().outcome == "aborted"
    live.flush_usage()
    rec = UsageRecord.objects.get(request_id=rid)
    assert (rec.status_code, rec.error_type, rec.stream) == (499, "client_disconnected", True)


def test_a_client_that_leaves_after_the_whole_reply_is_recorded_as_served(live: Any, fake: FakeUpstream) -> None:
    """The SDKs close the connection once they have read ``[DONE]``; an upstream that has not
    closed its side yet is then cancelled, but the client got everything: 200, not 499."""
    factories.provider("up", fake.url + "/v1")
    _, key = factories.api_key(factories.user())
    live.reload()
    script = up.stream(["Hel", "lo"])
    script.stall_after = len(script.frames)  # after [DONE] the upstream keeps its connection open
    script.frames.append(b"")
    fake.queue("/v1/chat/completions", script)
    body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    got = b""
    with httpx.stream("POST", live.url + "/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {key}"}, timeout=10) as r:  # fmt: skip
        rid = r.headers["x-request-id"]
        for chunk in r.iter_bytes():
            got += chunk
            if got.endswith(b"data: [DONE]\n\n"):
                break
    assert b'"Hel"' in got and b'"lo"' in got
    deadline = time.monotonic() + 5
    while fake.last().outcome != "aborted" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.last().outcome == "aborted"  # the gateway let go of the stalled upstream
    live.flush_usage()
    rec = UsageRecord.objects.get(request_id=rid)
    assert (rec.status_code, rec.error_type, rec.completion_tokens) == (200, "", 5)


def test_it_ends_a_stream_cut_by_the_upstream_with_an_error_event(live: Any, fake: FakeUpstream) -> None:
    factories.provider("up", fake.url + "/v1")
    _, key = factories.api_key(factories.user())
    live.reload()
    fake.queue("/v1/chat/completions", up.stream(["a", "b", "c", "d", "e"], cut_after=3, delay=0.05))
    body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    r = httpx.post(live.url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 200
    assert b'data: {"error":' in r.content and r.content.endswith(b"data: [DONE]\n\n")
    live.flush_usage()
    rec = UsageRecord.objects.get(request_id=r.headers["x-request-id"])
    assert rec.status_code == 502 and rec.error_type == "upstream_unreachable"
