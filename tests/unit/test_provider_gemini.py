"""The Gemini executor (URLs, auth, error classes) and image inlining, over real loopback HTTP."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from llmproxy.errors import InvalidRequest, ProviderHTTPError
from llmproxy.formats import gemini as G
from llmproxy.http import HTTPClient, UpstreamRequest
from llmproxy.images import ImageSettings, inline_images
from llmproxy.model import ImagePart, Message, Request, StreamEnd, TextPart, ToolCallPart, ToolResultPart
from llmproxy.providers import create
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.providers.gemini import GeminiExecutor
from llmproxy.stream import collect
from tests.fakes import gemini as fg
from tests.fakes.server import FakeUpstream, Reply

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)
KEY = Credential("k1", "gem", api_key="AIza-test")
#: The fakes listen on loopback, which the image guard refuses unless told otherwise.
LOOPBACK_OK = ImageSettings(allow_private=True)


def executor(base_url: str = "", **options: Any) -> GeminiExecutor:
    return GeminiExecutor(ProviderConfig(name="gem", type="gemini", base_url=base_url, options=options))


# --- building requests ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "stream", "tail"),
    [
        ("chat", False, "/v1beta/models/gemini-2.5-flash:generateContent"),
        ("chat", True, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
        ("count_tokens", False, "/v1beta/models/gemini-2.5-flash:countTokens"),
        ("embeddings", False, "/v1beta/models/gemini-2.5-flash:batchEmbedContents"),
    ],
)
def test_gemini_executor_endpoints(endpoint: str, stream: bool, tail: str) -> None:
    req = executor().build(KEY, {"model": "x", "contents": []}, model="gemini-2.5-flash", stream=stream,
                           endpoint=endpoint)  # fmt: skip
    assert req.url == "https://generativelanguage.googleapis.com" + tail
    assert req.method == "POST" and req.stream is (stream and endpoint == "chat")
    assert json.loads(req.body or b"") == {"contents": []}  # the model is in the path, never the body
    assert req.headers["x-goog-api-key"] == "AIza-test" and "authorization" not in req.headers


def test_gemini_executor_is_registered_and_speaks_gemini() -> None:
    ex = create(ProviderConfig(name="g", type="gemini"))
    assert isinstance(ex, GeminiExecutor) and ex.dialect == "gemini" == G.NAME


def test_gemini_executor_base_url_and_version() -> None:
    assert (
        executor("http://127.0.0.1:9/").url("models/m", stream=False)
        == "http://127.0.0.1:9/v1beta/models/m:generateContent"
    )
    assert (
        executor("https://proxy.test/google/v1").url("m", stream=False)
        == "https://proxy.test/google/v1/models/m:generateContent"
    )
    assert executor(api_version="v1alpha").url("m", stream=False).endswith("/v1alpha/models/m:generateContent")
    with pytest.raises(ValueError):
        executor().url("m", stream=False, endpoint="responses")


def test_gemini_executor_oauth_uses_bearer_and_project() -> None:
    cred = Credential("oauth", "gem", access_token="ya29.tok", extra={"project_id": "proj-1"})
    req = executor().build(cred, {}, model="m", stream=True, client_headers={"x-goog-api-key": "client-key"})
    assert req.headers["authorization"] == "Bearer ya29.tok" and req.headers["x-goog-user-project"] == "proj-1"
    assert "x-goog-api-key" not in req.headers and req.headers["accept"] == "text/event-stream"


# --- classifying errors ----------------------------------------------------------------


def test_gemini_classify_429_takes_the_retry_delay_from_details() -> None:
    body = json.dumps(fg.error_body(429, "Quota exceeded", retry_delay="12s")).encode()
    err = executor().classify(429, {}, body)
    assert isinstance(err, ProviderHTTPError)
    assert (err.upstream_status, err.status, err.retryable, err.retry_after) == (429, 429, True, 12.0)
    assert "RESOURCE_EXHAUSTED: Quota exceeded" in err.message
    assert executor().classify(429, {"retry-after": "3"}, body).retry_after == 3.0
    fractional = json.dumps(fg.error_body(429, retry_delay="0.5s")).encode()
    assert executor().classify(429, {}, fractional).retry_after == 0.5


@pytest.mark.parametrize(
    ("status", "retryable", "client_status"),
    [(400, False, 400), (404, False, 404), (500, True, 502), (503, True, 503), (504, True, 504)],
)
def test_gemini_classify_statuses(status: int, retryable: bool, client_status: int) -> None:
    err = executor().classify(status, {}, json.dumps([fg.error_body(status)]).encode())  # streamed: an array
    assert isinstance(err, ProviderHTTPError)
    assert (err.retryable, err.status) == (retryable, client_status)
    assert "upstream says no" in err.message


def test_gemini_classify_a_bad_key_as_the_credentials_fault() -> None:
    body = json.dumps(fg.error_body(400, "API key not valid.", reason="API_KEY_INVALID")).encode()
    err = executor().classify(400, {}, body)
    assert isinstance(err, ProviderHTTPError) and err.upstream_status == 401 and err.status == 502
    assert executor().classify(502, {}, b"<html>bad gateway</html>").message.endswith("<html>bad gateway</html>")


# --- talking to a fake Gemini ----------------------------------------------------------


async def _stream(http: HTTPClient, ureq: UpstreamRequest) -> list[Any]:
    reply = await http.send(ureq)
    assert reply.status == 200
    decoder = G.StreamDecoder()
    events: list[Any] = []
    async for chunk in reply.iter_chunks():
        events += decoder.feed(chunk)
    return events + decoder.close()


@pytest.mark.parametrize("form", ["sse-lf", "sse-crlf", "json"])
async def test_gemini_executor_streams_from_a_fake(http: HTTPClient, fake: FakeUpstream, form: str) -> None:
    calls = [fg.call_part("get_weather", {"city": "Paris"}, signature="AQJzaWc=")]
    fake.queue("/v1beta/models/gemini-up:streamGenerateContent",
               fg.stream(["Hel", "lo"], calls=calls, crlf=form == "sse-crlf", form=form[:4].rstrip("-")))  # fmt: skip
    body = G.encode_request(Request("gemini-up", [Message("user", [TextPart("hi")])], stream=True))
    events = await _stream(http, executor(fake.url).build(KEY, body, model="gemini-up", stream=True))
    sent = fake.last()
    assert sent.query == {"alt": "sse"} and sent.headers["x-goog-api-key"] == "AIza-test"
    assert sent.body == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    resp = collect(events)
    assert resp.text() == "Hello" and resp.finish_reason == "tool_calls"
    call = resp.parts[-1]
    assert isinstance(call, ToolCallPart) and G.signature_from_id(call.id) == "AQJzaWc="
    assert isinstance(events[-1], StreamEnd) and events[-1].usage is not None and events[-1].usage.input_tokens == 10


async def test_gemini_executor_classifies_a_real_429(http: HTTPClient, fake: FakeUpstream) -> None:
    fake.queue("/v1beta/models/m:generateContent", fg.error(429, "Resource has been exhausted", retry_delay="7s"))
    ex = executor(fake.url)
    reply = await http.send(ex.build(KEY, {"contents": []}, model="m", stream=False))
    err = ex.classify(reply.status, reply.headers, await reply.read())
    assert err.retryable and err.retry_after == 7.0


async def test_gemini_execute_round_trip(fake: FakeUpstream) -> None:
    fake.queue("/v1beta/models/gemini-up:generateContent", fg.response("Hi!"))
    out = await executor(fake.url).execute(KEY, {"model": "gemini-up", "contents": [{"parts": [{"text": "x"}]}]})
    assert G.decode_response(out).text() == "Hi!"
    assert "model" not in fake.last().body


# --- image inlining --------------------------------------------------------------------


def _image_request(*urls: str) -> Request:
    return Request("gemini-x", [
        Message("user", [TextPart("look"), *(ImagePart(url=u) for u in urls)]),
        Message("assistant", [ToolCallPart("c1", "shot", "{}")]),
        Message("tool", [ToolResultPart("c1", [ImagePart(url=urls[0])])]),
    ])  # fmt: skip


async def test_inline_images_fetches_each_url_once(fake: FakeUpstream) -> None:
    fake.default("/cat.png", Reply(raw=PNG, headers={"content-type": "image/png; charset=binary"}))
    req = _image_request(fake.url + "/cat.png", "data:image/gif;base64,R0lGODlh")
    assert await inline_images(req, settings=LOOPBACK_OK) == 3
    user = req.messages[0].parts
    result = req.messages[2].parts[0]
    assert isinstance(result, ToolResultPart)
    assert user[1] == ImagePart(data=base64.b64encode(PNG).decode(), media_type="image/png")
    assert user[2] == ImagePart(data="R0lGODlh", media_type="image/gif")
    assert result.content == [user[1]]  # images inside tool results are inlined too
    assert [r.path for r in fake.requests] == ["/cat.png"]
    wire = G.encode_request(req)
    assert wire["contents"][0]["parts"][1] == {
        "inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}
    }


async def test_inline_images_sniffs_untyped_bytes(fake: FakeUpstream) -> None:
    fake.default("/blob", Reply(raw=PNG, headers={"content-type": "application/octet-stream"}))
    req = _image_request(fake.url + "/blob")
    await inline_images(req, settings=LOOPBACK_OK)
    assert isinstance(req.messages[0].parts[1], ImagePart) and req.messages[0].parts[1].media_type == "image/png"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply({"error": "gone"}, status=404), "could not be fetched"),
        (Reply(raw=b"<html>login</html>", headers={"content-type": "text/html"}), "is not an image"),
        (Reply(raw=b"GIF-ish but not", headers={"content-type": "application/octet-stream"}), "is not an image"),
        (Reply(raw=PNG * 20, headers={"content-type": "image/png"}), "is larger than 100 bytes"),
    ],
)
async def test_inline_images_failures_are_the_clients_400(fake: FakeUpstream, reply: Reply, message: str) -> None:
    fake.default("/img", reply)
    with pytest.raises(InvalidRequest, match=message) as exc:
        await inline_images(_image_request(fake.url + "/img"), settings=LOOPBACK_OK, max_bytes=100)
    # What the server behind the URL answered is not told back: no status, no content type.
    assert exc.value.status == 400 and exc.value.message == f"image URL {fake.url}/img was refused: it {message}"


async def test_inline_images_unreachable_host() -> None:
    with pytest.raises(InvalidRequest, match=r"image URL http://127\.0\.0\.1:9/x\.png was refused: it could not"):
        await inline_images(_image_request("http://127.0.0.1:9/x.png"), settings=LOOPBACK_OK)


async def test_inline_images_leaves_inline_and_file_uris_alone() -> None:
    req = Request("gemini-x", [Message("user", [ImagePart(data="AAAA", media_type="image/png"),
                                                ImagePart(url="gs://bucket/cat.png")])])  # fmt: skip
    assert await inline_images(req) == 0
    assert G.encode_request(req)["contents"][0]["parts"][1] == {"fileData": {"fileUri": "gs://bucket/cat.png",
                                                                             "mimeType": "image/png"}}  # fmt: skip
