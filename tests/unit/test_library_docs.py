"""Every example in docs/library.md runs, against a fake upstream.

Each ``yaml`` block whose first line is ``# <file name>`` is written to that file in a
scratch directory; each ``python`` block then runs there in a fresh namespace (top-level
``await`` allowed, as in ``python -m asyncio``), with the vendors' URLs pointed at the
fake and the names the page says it assumes (``anthropic_message_json``,
``anthropic_sse_bytes_iterator``) provided. A block passes when it runs without an error
and sends what it says it sends.
"""

from __future__ import annotations

import ast
import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from llmproxy import formats, providers, translator
from llmproxy.watcher import Watcher
from tests.fakes import FakeUpstream, Recorded, Reply, Stream
from tests.fakes import anthropic as fa
from tests.fakes import openai as fo

DOC = Path(__file__).resolve().parents[2] / "docs" / "library.md"
BLOCKS = re.findall(r"```(python|yaml)\n(.*?)```", DOC.read_text(), re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
FILES = {m.group(1): code for lang, code in BLOCKS if lang == "yaml" and (m := re.match(r"# (\S+)\n", code))}
#: The vendors' URLs the examples name, and the fake's paths they stand for.
URLS = ("https://api.anthropic.com", "https://api.openai.com", "https://llm.acme.example")
ENV = {"ANTHROPIC_API_KEY": "sk-ant-doc", "OPENAI_API_KEY": "sk-openai-doc", "ACME_API_KEY": "sk-acme-doc"}


def _messages(rec: Recorded) -> Reply | Stream:
    return fa.stream("Hello from Claude") if (rec.body or {}).get("stream") else fa.response("Hello from Claude")


def _chat(rec: Recorded) -> Reply | Stream:
    return fo.stream(["Hello ", "from OpenAI"]) if (rec.body or {}).get("stream") else fo.completion("From OpenAI")


@pytest.fixture
def fake(upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream.reset()
    upstream.default("/v1/messages", _messages)
    upstream.default("/v1/chat/completions", _chat)
    upstream.default("/v1/generate", fo.completion("From Acme"))
    upstream.default("/v1/models", Reply({"data": [], "has_more": False, "first_id": None, "last_id": None}))
    yield upstream
    upstream.reset()


@pytest.fixture
def workdir(tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name, text in FILES.items():
        (tmp_path / name).write_text(_local(text, fake))
    (tmp_path / "auths").mkdir()
    monkeypatch.chdir(tmp_path)
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    yield tmp_path
    providers.EXECUTORS.pop("acme", None)
    translator._factories.pop("acme-chat", None)
    formats._REGISTERED.pop("acme-chat", None)


def _local(text: str, fake: FakeUpstream) -> str:
    for url in URLS:
        text = text.replace(url, fake.url)
    return text


async def _sse_bytes() -> AsyncIterator[bytes]:
    for frame in fa.frames("Streamed hello"):
        yield frame


def _run(code: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "__doc_example__", "anthropic_message_json": fa.body("Hello there"),
                                 "anthropic_sse_bytes_iterator": _sse_bytes()}  # fmt: skip
    compiled = compile(code, str(DOC), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    try:
        result = eval(compiled, namespace)
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    finally:
        for value in namespace.values():
            if isinstance(value, Watcher):
                value.stop()
    return namespace


def test_the_page_has_the_examples_this_test_expects() -> None:
    assert len(PYTHON) >= 6 and {"config.yaml", "acme.yaml"} <= set(FILES)


@pytest.mark.parametrize("index", range(len(PYTHON)), ids=lambda i: f"block{i + 1}")
def test_every_python_example_runs(index: int, workdir: Path, fake: FakeUpstream,
                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    code = PYTHON[index]
    for url in URLS:
        code = code.replace(url, fake.url)
    ns = _run(code)
    printed = capsys.readouterr().out
    sent = [(r.method, r.path) for r in fake.requests]
    if "translate_stream(anthropic_sse_bytes_iterator" in code:
        assert "Hello there" in printed and "Streame" in printed
    if "executor.execute(" in code:
        assert sent == [("POST", "/v1/messages")] * 2 + [
            ("GET", "/v1/models")
        ]  # execute, execute_stream, the key probe
        assert "Hello from Claude" in printed
        assert fake.requests[0].headers["x-api-key"] == "sk-ant-example"
    if "asyncio.run(main())" in code:
        assert sent.count(("POST", "/v1/messages")) == 3 and "Hello from Claude" in printed
        assert fake.requests[0].body["model"] == "claude-sonnet-4-20250514"
    if "overrides=" in code:
        assert sent == [("POST", "/v1/chat/completions"), ("POST", "/v1/messages")]
        assert fake.requests[0].body["model"] == "gpt-4.1"
    if "AcmeExecutor" in code:
        assert sent == [("POST", "/v1/generate")] and "From Acme" in printed
        assert fake.requests[0].body["tenant"] == "acme"
        assert fake.requests[0].headers["authorization"] == f"Bearer {ENV['ACME_API_KEY']}"
    if "AliasSynthesizer" in code:
        assert "fast" in ns["gw"].runtime.routes and "fast" in ns["w"].current().providers["demo"].models[0].aliases
