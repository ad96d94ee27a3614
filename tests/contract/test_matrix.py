"""Issue #3's contract matrix: every official SDK against every upstream dialect, live.

Each test runs once per (client, upstream) pair: the SDK (strict validation) talks to the
real ASGI app, which talks to a fake upstream speaking the upstream's real protocol. The
tests assert what the client got in its own dialect and what the upstream received in its.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.contract.conftest import ACCOUNT_PAIRS, CALLS, PAIRS, PNG, RESULTS, SCHEMA, SYSTEM, Ask, Pair
from tests.fakes.matrix import Turn

ALL = pytest.mark.parametrize("pair", PAIRS, indirect=True)
#: The core of the matrix (text, stream, tools, tool results, usage) also through the account providers.
WITH_ACCOUNTS = pytest.mark.parametrize("pair", PAIRS + ACCOUNT_PAIRS, indirect=True)
# A Responses upstream sends reasoning text only when asked for a summary. An Anthropic client's
# enabled thinking asks for one; a Chat client's reasoning_effort does not (real OpenAI Chat shows
# no reasoning either), so that one pair shows none.
SHOWN_THINKING = [p for p in PAIRS if p != "chat->responses"]
WEATHER = [("get_weather", {"city": "Paris"})]
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])


@WITH_ACCOUNTS
@STREAM
def test_it_answers_text_and_records_the_upstreams_usage(pair: Pair, stream: bool) -> None:
    turn = Turn(["Hel", "lo"], prompt=31, completion=17)
    pair.script(pair.upstream.reply(turn, stream))
    got = pair.client.ask(Ask(stream=stream))
    prompt, completion = pair.upstream.usage(turn)  # Kiro's are estimated: its stream has no token counts
    assert (got.text, got.finish, got.calls, got.usage) == ("Hello", "stop", [], (prompt, completion))
    assert got.model == pair.model
    sent = pair.sent()
    on_wire = stream if pair.upstream.stream_on_wire else None
    assert (sent.model, sent.stream, sent.system) == (pair.upstream.model, on_wire, SYSTEM)
    rec = pair.record()
    assert (rec.model, rec.provider, rec.status_code, rec.stream) == (
        pair.model,
        "up-" + pair.upstream.name,
        200,
        stream,
    )
    assert (rec.prompt_tokens, rec.completion_tokens) == (prompt, completion)
    assert float(rec.cost_usd) == pytest.approx((prompt * 1 + completion * 2) / 1e6)


@WITH_ACCOUNTS
@STREAM
def test_it_relays_a_single_tool_call(pair: Pair, stream: bool) -> None:
    pair.script(pair.upstream.reply(Turn([], calls=WEATHER), stream))
    got = pair.client.ask(Ask("Weather in Paris?", stream=stream, tools=True))
    assert (got.calls, got.finish, got.text) == (WEATHER, "tool_calls", "")
    pair.client.check_ids(got.call_ids)
    assert pair.sent().tools == ["get_weather", "get_time"]


@ALL
@STREAM
def test_it_relays_parallel_tool_calls_in_order(pair: Pair, stream: bool) -> None:
    pair.script(pair.upstream.reply(Turn(["Checking."], calls=CALLS), stream))
    got = pair.client.ask(Ask("Weather and time in Paris?", stream=stream, tools=True))
    assert (got.text, got.calls, got.finish) == ("Checking.", CALLS, "tool_calls")
    pair.client.check_ids(got.call_ids)


@WITH_ACCOUNTS
@pytest.mark.parametrize(("stream", "reverse"), [(False, False), (True, False), (False, True)],
                         ids=["whole", "stream", "reversed"])  # fmt: skip
def test_it_sends_tool_results_back_in_the_upstreams_dialect(pair: Pair, stream: bool, reverse: bool) -> None:
    pair.script(pair.upstream.reply(Turn(["It is 20C at 10:00."]), stream))
    got = pair.client.ask(Ask("Weather and time in Paris?", stream=stream, history=True, reverse=reverse))
    assert (got.text, got.finish) == ("It is 20C at 10:00.", "stop")
    history = pair.sent().history
    assert [h[0] for h in history] == ["call", "call", "result", "result"]
    calls, results = history[:2], history[2:]
    assert [(name, args) for _, _, name, args in calls] == CALLS
    if pair.upstream.type == "gemini" and pair.client.name != "gemini":  # translated into the calls' order
        assert [r[2] for r in results] == ["get_weather", "get_time"]
    elif reverse:  # kept in the order the client sent them: pairing is by id (or, Gemini to Gemini, by name)
        results = results[::-1]
    for (_, call_id, name, _), (_, result_id, result_name, content), text in zip(calls, results, RESULTS, strict=True):
        assert result_id == call_id  # None == None for Gemini without native ids
        assert result_name in (None, name)
        assert text in json.dumps(content)
    if pair.upstream.type != "gemini":
        assert all(call_id for _, call_id, _, _ in calls) and calls[0][1] != calls[1][1]


@ALL
def test_it_passes_a_base64_image_to_the_upstream(pair: Pair) -> None:
    pair.script(pair.upstream.reply(Turn(["A dot."]), False))
    got = pair.client.ask(Ask("What is this?", image=True))
    assert got.text == "A dot."
    assert pair.sent().images == [("image/png", base64.b64decode(PNG))]


@pytest.mark.parametrize("pair", SHOWN_THINKING, indirect=True)
def test_it_streams_reasoning_with_the_answer(pair: Pair) -> None:
    turn = Turn(["Hi", "!"], thinking=["Let me ", "think."], completion=17, reasoning_tokens=5)
    pair.script(pair.upstream.reply(turn, True))
    got = pair.client.ask(Ask(stream=True, reasoning=True))
    assert (got.thinking, got.text, got.finish, got.usage) == ("Let me think.", "Hi!", "stop", (31, 17))
    assert pair.sent().reasoning


@ALL
def test_it_maps_a_json_schema_request(pair: Pair) -> None:
    pair.script(pair.upstream.reply(Turn(['{"answer": "42"}']), False))
    got = pair.client.ask(Ask("Answer in JSON.", schema=True))
    assert json.loads(got.text) == {"answer": "42"}
    schema = pair.sent().schema
    assert schema is not None
    assert (schema["properties"], schema["required"]) == (SCHEMA["properties"], SCHEMA["required"])


@ALL
@STREAM
def test_it_maps_max_tokens_to_the_clients_length_finish(pair: Pair, stream: bool) -> None:
    pair.script(pair.upstream.reply(Turn(["Once upon"], finish="length", completion=5), stream))
    got = pair.client.ask(Ask("Tell a story.", stream=stream, max_tokens=5))
    assert (got.text, got.finish, got.usage) == ("Once upon", "length", (31, 5))
    assert pair.sent().max_tokens == 5
