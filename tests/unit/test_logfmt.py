"""Log line shapes: the JSON formatter and the request id every line of a request carries."""

from __future__ import annotations

import json
import logging

from llmproxy import Gateway, logfmt
from llmproxy.usage import UsageEvent
from tests.fakes import FakeUpstream
from tests.fakes import openai as up
from tests.unit.test_gateway import runtime


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("llmproxy.test", logging.WARNING, __file__, 1, msg, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_formatter_writes_one_object_per_line_with_extra_fields() -> None:
    line = logfmt.JsonFormatter().format(_record("upstream %s said\n%d", "p0", 503, model="m", status=503))
    assert "\n" not in line
    out = json.loads(line)
    assert out["level"] == "warning" and out["logger"] == "llmproxy.test"
    assert out["message"] == "upstream p0 said\n503"
    assert out["model"] == "m" and out["status"] == 503
    assert out["ts"].endswith("Z") and "request_id" not in out


def test_request_id_filter_stamps_the_current_request() -> None:
    token = logfmt.request_id.set("req-abc")
    try:
        record = _record("hello")
        assert logfmt.RequestIdFilter().filter(record)
        assert json.loads(logfmt.JsonFormatter().format(record))["request_id"] == "req-abc"
        explicit = _record("hello", request_id="req-given")
        logfmt.RequestIdFilter().filter(explicit)
        assert explicit.request_id == "req-given"  # type: ignore[attr-defined]
    finally:
        logfmt.request_id.reset(token)


def test_json_formatter_keeps_the_traceback_in_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    out = json.loads(logfmt.JsonFormatter().format(record))
    assert "ValueError: boom" in out["exc"]


async def test_the_gateway_names_the_request_while_serving_it(upstream: FakeUpstream) -> None:
    upstream.reset()
    seen: list[tuple[str, str]] = []

    def sink(event: UsageEvent) -> None:
        seen.append((event.request_id, logfmt.request_id.get()))

    upstream.queue("/t0/v1/chat/completions", up.completion("hello"))
    gw = Gateway(runtime(upstream), usage_sink=sink)
    await gw.chat({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    await gw.http.close()
    assert len(seen) == 1 and seen[0][0] and seen[0][0] == seen[0][1]


def test_config_reads_the_log_format_and_refuses_an_unknown_one() -> None:
    import pytest

    from llmproxy.config import ConfigError, loads

    assert loads("logging: {format: JSON}\n", env={}).logging.format == "json"
    assert loads("", env={"LLMPROXY_LOGGING_FORMAT": "json"}).logging.format == "json"
    assert loads("", env={}).logging.format == "text"
    with pytest.raises(ConfigError, match=r"logging\.format"):
        loads("logging: {format: xml}\n", env={})
