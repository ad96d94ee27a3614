"""A stream that fails mid-way, passthrough or translated: the client reads the gateway's message.

Section 11: the upstream's own text of a server-side failure (overloaded, internal error)
does not reach the client; the dialect's error event carries llmproxy's message, and the
frames before the failure still arrive.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.contract.conftest import PAIRS, Pair
from tests.contract.test_matrix_raw import raw_request, sse

pytestmark = pytest.mark.parametrize("pair", PAIRS, indirect=True)
UPSTREAM_TEXT = "overloaded"  # what every fake dialect's broken stream says (Anthropic: "Overloaded")


def test_a_mid_stream_upstream_error_shows_the_gateways_message(pair: Pair) -> None:
    pair.script(pair.upstream.broken_stream())
    path, body, headers = raw_request(pair.client.name, pair.model, pair.client.key)
    with httpx.stream("POST", pair.live.url + path, json=body, headers=headers, timeout=10) as r:
        assert r.status_code == 200
        raw = r.read()
    text = raw.decode()
    frames = sse(raw)
    errors = [(e, d) for e, d in frames if e in ("error", "response.failed") or '"error":{' in d.replace(" ", "")]
    assert len(errors) == 1, text  # exactly one error event, the gateway's
    assert frames.index(errors[0]) == len([f for f in frames if f[1] != "[DONE]"]) - 1, text  # it ends the stream
    data = json.loads(errors[0][1])
    err = data["response"]["error"] if data.get("type") == "response.failed" else data["error"]
    assert pair.model in err["message"], text  # llmproxy's message names the public model...
    assert UPSTREAM_TEXT not in err["message"].lower(), text  # ...and not the upstream's account
    if pair.client.name == pair.upstream.name:  # passthrough: the frames before the failure went out as they were
        assert "Hel" in text, text
