"""Kiro's own failure modes through every client: broken event-stream frames, a spent quota, a refused body.

The common cells (text, stream, tools, tool results, usage, 429/5xx, a mid-stream
exception) run for Kiro in test_matrix.py and test_matrix_errors.py; these are what
only an event-stream upstream can do to a client.
"""

from __future__ import annotations

import pytest

from tests.contract.conftest import CLIENTS, Ask, Pair
from tests.fakes import codewhisperer as cw

KIRO = pytest.mark.parametrize("pair", [f"{c}->kiro" for c in CLIENTS], indirect=True)
HELLO = cw.event("assistantResponseEvent", {"content": "Hel"})


@KIRO
@pytest.mark.parametrize("broken", [cw.corrupt, cw.truncated], ids=["crc", "truncated"])
def test_a_broken_frame_mid_stream_is_an_error_event_in_the_clients_dialect(pair: Pair, broken: object) -> None:
    assert callable(broken)
    pair.script(cw.stream([HELLO, broken(cw.event("assistantResponseEvent", {"content": "lo"}))]))
    with pytest.raises(pair.client.stream_error):
        pair.client.ask(Ask(stream=True))
    assert pair.record().status_code == 502


@KIRO
def test_a_broken_frame_in_a_whole_reply_is_the_clients_server_error(pair: Pair) -> None:
    pair.script(cw.stream([HELLO, cw.corrupt(HELLO)]))
    with pytest.raises(pair.client.server_error) as exc:
        pair.client.ask(Ask())
    assert pair.client.status(exc.value) in (502, 503)


@KIRO
def test_a_spent_monthly_quota_cools_the_credential(pair: Pair) -> None:
    pair.script(cw.error(402, "You have reached the limit.", "MONTHLY_REQUEST_COUNT"))
    for _ in range(2):
        with pytest.raises(pair.client.server_error) as exc:
            pair.client.ask(Ask())
        assert pair.client.status(exc.value) in (502, 503)
    assert len(pair.fake.requests) == 1  # the second request found the credential cooling


@KIRO
def test_a_refused_body_is_the_clients_bad_request(pair: Pair) -> None:
    pair.script(cw.error(400, "Input is too long.", "CONTENT_LENGTH_EXCEEDS_THRESHOLD"))
    with pytest.raises(Exception) as exc:  # each SDK has its own BadRequest class
        pair.client.ask(Ask())
    assert pair.client.status(exc.value) == 400
    assert "Input is too long." in str(exc.value)
