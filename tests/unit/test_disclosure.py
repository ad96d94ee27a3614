"""What reaches the client of an upstream failure (INTERFACE.md section 11), end to end.

Upstreams quote the key they were sent; the client sees their text only for its own
errors (upstream 400/404/413/422), scrubbed. Otherwise it sees llmproxy's message: the
public model and the kind of failure. The usage event keeps the detail for staff.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator

import pytest

from llmproxy.gateway import Call, Gateway, Reply, StreamReply
from llmproxy.http import HTTPClient, Timeouts
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.routing import Router
from llmproxy.runtime import Route, Runtime
from llmproxy.runtime import RoutingSettings as Routing
from llmproxy.scrub import REDACTED
from llmproxy.state import MemoryStateStore
from llmproxy.usage import UsageEvent
from tests.fakes import FakeUpstream, Stream
from tests.fakes import Reply as FakeReply
from tests.fakes import anthropic as fa
from tests.fakes import gemini as fg
from tests.fakes import openai as up
from tests.fakes import responses as fr

KEY = "sk-proj-Zq8LmN4vX2pR7tY9wK3sB6"
FAST = Routing(backoff_base=0.001, backoff_max=0.002, strategy="fill-first", max_attempts=2)
LEAKS = ("acct-main", "cred-one", "cred-two", KEY[:8], KEY[-8:], "Incorrect API key", "overloaded")


def runtime(fake: FakeUpstream, *, kind: str = "openai-compatible", creds: int = 1, attempts: int = 2) -> Runtime:
    base = f"{fake.url}/v1" if kind == "openai-compatible" else fake.url
    provider = ProviderConfig(name="acct-main", type=kind, base_url=base)
    names = ("cred-one", "cred-two")[:creds]
    credentials = tuple(Credential(n, "acct-main", api_key=KEY + n[-3:]) for n in names)
    routing = dataclasses.replace(FAST, max_attempts=attempts)
    return Runtime.build(
        routes=[Route("public-model", "up-model", provider, credentials)], routing=routing, require_keys=False
    )


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    http = HTTPClient(timeouts=Timeouts(connect=1.0, first_byte=0.5, read=0.5))
    events: list[UsageEvent] = []
    g = Gateway(http=http, router=Router(MemoryStateStore()), usage_sink=events.append)
    g.events = events  # type: ignore[attr-defined]
    yield g
    await http.close()


def last_event(gw: Gateway) -> UsageEvent:
    return gw.events[-1]  # type: ignore[attr-defined,no-any-return]


async def ask(gw: Gateway, ingress: str = "openai_chat", stream: bool = False) -> Reply | StreamReply:
    body: dict[str, object] = {"model": "public-model", "messages": [{"role": "user", "content": "hi"}],
                               "stream": stream, "max_tokens": 10}  # fmt: skip
    return await gw.handle(Call(ingress, json.dumps(body).encode()))


async def body_of(reply: Reply | StreamReply) -> str:
    if isinstance(reply, Reply):
        return reply.body.decode()
    return b"".join([c async for c in reply.chunks]).decode()


def quoting_the_key(status: int) -> FakeReply:
    return up.error(status, f"Incorrect API key provided: {KEY[:3]}...{KEY[-12:]}; account acct-main")


@pytest.mark.parametrize(
    ("status", "client_status", "kind"),
    [(401, 502, "refused the gateway's credentials"), (403, 502, "refused the gateway's credentials"),
     (429, 429, "rate limit"), (500, 502, "failed"), (503, 503, "failed")],
)  # fmt: skip
async def test_the_gateways_own_troubles_get_its_own_message(
    gw: Gateway, fake: FakeUpstream, status: int, client_status: int, kind: str
) -> None:
    gw.swap(runtime(fake, creds=2, attempts=1))  # out of attempts with a candidate left: the failure's own answer
    fake.default("/v1/chat/completions", quoting_the_key(status))
    r = await ask(gw)
    text = await body_of(r)
    assert r.status == client_status
    message = json.loads(text)["error"]["message"]
    assert "'public-model'" in message and kind in message
    assert not [leak for leak in LEAKS if leak in text]
    ev = last_event(gw)
    assert ev.error_detail.startswith(f"acct-main/cred-one HTTP {status}")
    assert "Incorrect API key provided" in ev.error_detail and KEY[-12:] not in ev.error_detail
    assert REDACTED in ev.error_detail


@pytest.mark.parametrize("status", [400, 404, 413, 422])
async def test_the_clients_own_errors_keep_the_upstream_text_scrubbed(
    gw: Gateway, fake: FakeUpstream, status: int
) -> None:
    gw.swap(runtime(fake, creds=2, attempts=1))  # a 404 fails over; with no attempt left it is the answer
    fake.default("/v1/chat/completions", up.error(status, f"messages[0]: bad role (you sent key {KEY}one)"))
    r = await ask(gw)
    message = json.loads(await body_of(r))["error"]["message"]
    assert r.status == (400 if status == 422 else status)
    assert message == f"messages[0]: bad role (you sent key {REDACTED})"  # no provider name in front either


async def test_every_upstream_failing_says_so_without_the_last_error(gw: Gateway, fake: FakeUpstream) -> None:
    gw.swap(runtime(fake, creds=2))
    fake.default("/v1/chat/completions", quoting_the_key(401))
    first = await ask(gw)
    again = await ask(gw)  # both credentials cool now: no upstream is left
    for r in (first, again):
        text = await body_of(r)
        assert r.status in (502, 503) and not [leak for leak in LEAKS if leak in text]
    detail = last_event(gw).error_detail or gw.events[-2].error_detail  # type: ignore[attr-defined]
    assert "acct-main/cred-" in detail


async def test_a_timeout_names_only_the_model(gw: Gateway, fake: FakeUpstream) -> None:
    gw.swap(runtime(fake, creds=2, attempts=1))
    fake.default("/v1/chat/completions", FakeReply({}, delay=2.0))
    r = await ask(gw)
    message = json.loads(await body_of(r))["error"]["message"]
    assert r.status == 504 and message == "model 'public-model': the upstream did not answer in time"
    assert last_event(gw).error_detail.startswith("acct-main/cred-one upstream_timeout")


async def test_a_mid_stream_failure_event_is_the_gateways_message(gw: Gateway, fake: FakeUpstream) -> None:
    gw.swap(runtime(fake))
    fake.default("/v1/chat/completions", up.stream(["Hel", "lo", "x"], cut_after=2))
    text = await body_of(await ask(gw, "anthropic", stream=True))
    assert "event: error" in text and "'public-model': the upstream could not be reached" in text
    assert not [leak for leak in LEAKS if leak in text]
    assert "upstream_unreachable" in last_event(gw).error_detail


async def test_a_passthrough_error_event_becomes_the_gateways(gw: Gateway, fake: FakeUpstream) -> None:
    """Same dialect, body untouched, but a server-side failure still reads as llmproxy's (section 11)."""
    gw.swap(runtime(fake, kind="claude"))
    leak = f"overloaded for key {KEY}one"
    frames = [*fa.frames("Hi", model="up-model", end=False)[:3], fa.error_event(message=leak)]
    fake.default("/v1/messages", Stream(frames))
    text = await body_of(await ask(gw, "anthropic", stream=True))
    assert "event: error" in text and KEY[:8] not in text and KEY[-8:] not in text
    assert "'public-model': the upstream failed" in text and "overloaded for key" not in text
    assert text.count("event: error") == 1 and text.startswith("event: message_start")  # what came before stays
    assert "overloaded_error" in last_event(gw).error_detail


def gemini_array(frames: list[bytes]) -> Stream:
    return Stream(frames, headers={"content-type": "application/json"})


async def ask_gemini_array(gw: Gateway) -> list[dict[str, object]]:
    """A Gemini client's :streamGenerateContent without ``alt=sse``: the reply is one JSON array."""
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    r = await gw.handle(Call("gemini", json.dumps(body).encode(), model="public-model", stream=True, sse=False))
    text = await body_of(r)
    assert r.status == 200 and not [leak for leak in LEAKS if leak in text], text
    items = json.loads(text)  # whole elements only: the array is valid JSON whatever the upstream did
    assert isinstance(items, list)
    return items


@pytest.mark.parametrize("split", [0, 9, 40])
async def test_a_passthrough_json_array_error_element_becomes_the_gateways(
    gw: Gateway, fake: FakeUpstream, split: int
) -> None:
    """Section 11 for the JSON-array form too: the upstream's error element never reaches the client,
    not even its first bytes when it comes in pieces (``split`` cuts it across two chunks)."""
    gw.swap(runtime(fake, kind="gemini"))
    leak = f"overloaded for key {KEY}one"
    first = fg.array_frames(fg.chunks(["Hel", "lo"], model="up-model"))[0]
    bad = b",\r\n" + json.dumps(fg.error_body(503, leak)).encode()
    frames = [first, bad[:split], bad[split:], b"]"] if split else [first, bad, b"]"]
    fake.default("/v1beta/models/up-model:streamGenerateContent", gemini_array(frames))
    items = await ask_gemini_array(gw)
    assert len(items) == 2 and items[0]["candidates"][0]["content"]["parts"] == [{"text": "Hel"}]  # type: ignore[index]
    assert items[0]["modelVersion"] == "public-model"  # what came before stays, under the public name
    err = items[1]["error"]
    assert isinstance(err, dict) and "'public-model': the upstream failed" in err["message"]
    assert err["code"] == 503 and "overloaded" not in json.dumps(items)
    assert "overloaded for key" in last_event(gw).error_detail


async def test_a_passthrough_json_array_that_opens_with_an_error_is_the_gateways_array(
    gw: Gateway, fake: FakeUpstream
) -> None:
    gw.swap(runtime(fake, kind="gemini"))
    bad = json.dumps([fg.error_body(500, f"internal error near {KEY}one")]).encode()
    fake.default("/v1beta/models/up-model:streamGenerateContent", gemini_array([bad]))
    items = await ask_gemini_array(gw)
    assert len(items) == 1 and "'public-model'" in items[0]["error"]["message"]  # type: ignore[index]
    assert "internal error" not in json.dumps(items)


async def test_a_passthrough_json_array_cut_mid_element_ends_with_the_gateways_error(
    gw: Gateway, fake: FakeUpstream
) -> None:
    gw.swap(runtime(fake, kind="gemini"))
    frames = fg.array_frames(fg.chunks(["Hel", "lo", "there"]))
    fake.default("/v1beta/models/up-model:streamGenerateContent", gemini_array([frames[0], frames[1][:30]]))
    items = await ask_gemini_array(gw)
    assert [list(i) for i in items][-1] == ["error"] and len(items) == 2  # half an element never goes out
    assert items[0]["candidates"][0]["content"]["parts"] == [{"text": "Hel"}]  # type: ignore[index]


async def test_a_passthrough_json_array_goes_out_as_the_upstream_sent_it(gw: Gateway, fake: FakeUpstream) -> None:
    gw.swap(runtime(fake, kind="gemini"))
    frames = fg.array_frames(fg.chunks(["Hel", "lo", "there"], model="up-model"))
    raw = b"".join(frames)
    pieces = [raw[i : i + 7] for i in range(0, len(raw), 7)]  # elements split anywhere, even mid-name
    fake.default("/v1beta/models/up-model:streamGenerateContent", gemini_array(pieces))
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    r = await gw.handle(Call("gemini", json.dumps(body).encode(), model="public-model", stream=True, sse=False))
    assert (await body_of(r)).encode() == raw.replace(b'"modelVersion": "up-model"', b'"modelVersion": "public-model"')
    assert last_event(gw).status_code == 200


async def test_a_gemini_client_without_alt_sse_gets_an_array_from_an_sse_upstream(
    gw: Gateway, fake: FakeUpstream
) -> None:
    """The gateway asks Google for ``alt=sse``; a client that did not gets the frames as one array."""
    gw.swap(runtime(fake, kind="gemini"))
    items = fg.chunks(["Hel", "lo", "there"], model="up-model")
    raw = b"".join(fg.sse_frames(items, crlf=True))
    fake.default(
        "/v1beta/models/up-model:streamGenerateContent", Stream([raw[i : i + 11] for i in range(0, len(raw), 11)])
    )
    got = await ask_gemini_array(gw)
    assert got == [{**i, "modelVersion": "public-model"} for i in items]  # each frame's JSON, untouched but the name
    assert last_event(gw).status_code == 200 and last_event(gw).usage.output_tokens == 5


async def test_an_sse_upstreams_error_frame_becomes_the_gateways_element(gw: Gateway, fake: FakeUpstream) -> None:
    gw.swap(runtime(fake, kind="gemini"))
    first = fg.sse_frames(fg.chunks(["Hel", "lo"]))[0]
    bad = f"data: {json.dumps(fg.error_body(503, f'overloaded for key {KEY}one'))}\n\n".encode()
    fake.default("/v1beta/models/up-model:streamGenerateContent", Stream([first, bad]))
    items = await ask_gemini_array(gw)
    assert len(items) == 2 and items[0]["candidates"][0]["content"]["parts"] == [{"text": "Hel"}]  # type: ignore[index]
    assert "'public-model': the upstream failed" in items[1]["error"]["message"]  # type: ignore[index]


async def test_a_passthrough_responses_stream_cut_midway_fails_the_response_it_opened(
    gw: Gateway, fake: FakeUpstream
) -> None:
    """The gateway's ``response.failed`` after a cut continues the upstream's response: no second one."""
    provider = ProviderConfig(name="acct-main", type="openai", base_url=f"{fake.url}/v1", options={"wire": "responses"})
    cred = Credential("cred-one", "acct-main", api_key=KEY + "one")
    gw.swap(Runtime.build(routes=[Route("public-model", "up-model", provider, (cred,))], routing=FAST,
                          require_keys=False))  # fmt: skip
    fake.default("/v1/responses", fr.stream(["Hel", "lo", "there"], cut_after=5))
    body = {"model": "public-model", "input": "hi", "stream": True}
    text = await body_of(await gw.handle(Call("openai_responses", json.dumps(body).encode())))
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    kinds = [e["type"] for e in events]
    assert kinds.count("response.created") == 1 and kinds[-1] == "response.failed", kinds
    seqs = [e["sequence_number"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs  # one numbering, no restart at 0


def sse_events(text: str) -> list[tuple[str | None, object]]:
    """The client's stream, event by event, as a strict SSE client reads it: every event ends
    with a blank line and its data is one JSON value (or ``[DONE]``); anything else fails."""
    body = text.replace("\r\n", "\n")
    assert body.endswith("\n\n"), body[-80:]
    out: list[tuple[str | None, object]] = []
    for block in body[:-2].split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            assert field in ("event", "data"), line
            if field == "event":
                name = value
            else:
                data.append(value)
        payload = "\n".join(data)
        out.append((name, payload if payload == "[DONE]" else json.loads(payload)))
    return out


def cut_mid_event(frames: list[bytes], at: int) -> Stream:
    """The first ``at`` frames whole, then half of the next one, then the connection drops."""
    return Stream([*frames[:at], frames[at][: len(frames[at]) // 2]], cut_after=at + 1)


def named_runtime(fake: FakeUpstream, kind: str, served: str, **options: str) -> Runtime:
    provider = ProviderConfig(name="acct-main", type=kind, base_url=fake.url + ("/v1" if kind == "openai" else ""),
                              options=options)  # fmt: skip
    cred = Credential("cred-one", "acct-main", api_key=KEY + "one")
    return Runtime.build(routes=[Route("public-model", served, provider, (cred,))], routing=FAST, require_keys=False)


#: The gateway's own message (the cut reads as a connection loss or as an unreadable reply).
OURS = "model 'public-model': the upstream "


@pytest.mark.parametrize("served", ["up-model", "public-model"])  # renamed in the bytes, and relayed as is
async def test_a_passthrough_openai_chat_stream_cut_mid_event_ends_whole(
    gw: Gateway, fake: FakeUpstream, served: str
) -> None:
    gw.swap(named_runtime(fake, "openai", served))
    fake.default("/v1/chat/completions", cut_mid_event(up.stream(["Hel", "lo", "there"], model=served).frames, 2))
    events = sse_events(await body_of(await ask(gw, "openai_chat", stream=True)))
    chunks = [data for _, data in events if isinstance(data, dict) and "choices" in data]
    assert len(chunks) == 2 and chunks[1]["choices"][0]["delta"] == {"content": "Hel"}
    assert all(c["model"] == "public-model" for c in chunks)
    err = events[-2][1]
    assert isinstance(err, dict) and err["error"]["message"].startswith(OURS) and events[-1][1] == "[DONE]"


@pytest.mark.parametrize("served", ["up-model", "public-model"])
async def test_a_passthrough_anthropic_stream_cut_mid_event_ends_whole(
    gw: Gateway, fake: FakeUpstream, served: str
) -> None:
    gw.swap(named_runtime(fake, "claude", served))
    fake.default("/v1/messages", cut_mid_event(fa.frames("Hello there, friend", model=served), 3))
    events = sse_events(await body_of(await ask(gw, "anthropic", stream=True)))
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-1] == "error" and names.count("error") == 1, names
    assert len(events) == 4  # the three whole events, then the gateway's
    err = events[-1][1]
    assert isinstance(err, dict) and err["type"] == "error" and err["error"]["message"].startswith(OURS)


@pytest.mark.parametrize("served", ["up-model", "public-model"])
async def test_a_passthrough_responses_stream_cut_mid_event_ends_whole(
    gw: Gateway, fake: FakeUpstream, served: str
) -> None:
    gw.swap(named_runtime(fake, "openai", served, wire="responses"))
    fake.default("/v1/responses", cut_mid_event(fr.stream_frames(["Hel", "lo", "there"], model=served), 4))
    body = {"model": "public-model", "input": "hi", "stream": True}
    events = sse_events(await body_of(await gw.handle(Call("openai_responses", json.dumps(body).encode()))))
    kinds = [data["type"] for _, data in events]  # type: ignore[index]
    assert len(kinds) == 5 and kinds[0] == "response.created" and kinds[-1] == "response.failed", kinds
    assert [data["sequence_number"] for _, data in events] == [0, 1, 2, 3, 4]  # type: ignore[index]
    failed = events[-1][1]
    assert isinstance(failed, dict) and failed["response"]["error"]["message"].startswith(OURS)


@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("served", ["up-model", "public-model"])
async def test_a_passthrough_gemini_sse_stream_cut_mid_event_ends_whole(
    gw: Gateway, fake: FakeUpstream, served: str, crlf: bool
) -> None:
    gw.swap(named_runtime(fake, "gemini", served))
    frames = fg.sse_frames(fg.chunks(["Hel", "lo", "there"], model=served), crlf=crlf)
    fake.default(f"/v1beta/models/{served}:streamGenerateContent", cut_mid_event(frames, 2))
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    r = await gw.handle(Call("gemini", json.dumps(body).encode(), model="public-model", stream=True, sse=True))
    events = sse_events(await body_of(r))
    assert len(events) == 3 and all(d["modelVersion"] == "public-model" for _, d in events[:2])  # type: ignore[index]
    err = events[-1][1]
    assert isinstance(err, dict) and list(err) == ["error"] and err["error"]["message"].startswith(OURS)
