"""config.yaml's ``logging:`` section as a serving process applies it: level, json lines, request log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from llmproxy.config import Logging
from llmproxy_site.logsetup import CHATTY_CELERY, REQUEST_LOGGER, logging_dict, logging_section

_CHILD = """
import logging, django
django.setup()
from llmproxy import logfmt
from llmproxy.usage import UsageEvent
from proxy.serving.process_engine import log_request
logging.getLogger("llmproxy.engine").info("hidden below the configured level")
logfmt.request_id.set("req-123")
logging.getLogger("llmproxy.engine").warning("upstream p0 failed")
logfmt.request_id.set("")
logging.getLogger("llmproxy.engine").warning("between requests")
log_request(UsageEvent(request_id="req-456", created_at=0.0, ingress="openai", model="m", status_code=429, latency_ms=12))
"""


def _run(tmp_path: Path, config: str, **env: str) -> list[str]:
    path = tmp_path / "config.yaml"
    path.write_text(config)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMPROXY_LOG", "LLMPROXY_CONFIG"))}
    child_env.update(
        DJANGO_SETTINGS_MODULE="llmproxy_site.settings",
        LLMPROXY_CONFIG=str(path),
        LLMPROXY_VAR_DIR=str(tmp_path / "var"),
        DJANGO_SECRET_KEY=settings.SECRET_KEY,
        LLMPROXY_ENCRYPTION_KEY=",".join(settings.LLMPROXY_ENCRYPTION_KEYS),
        **env,
    )
    proc = subprocess.run([sys.executable, "-c", _CHILD], env=child_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stderr.splitlines() if line.strip()]


def test_json_format_request_log_and_level_from_config_yaml(tmp_path: Path) -> None:
    lines = _run(tmp_path, "logging: {level: warning, request_log: true, format: json}\n")
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    messages = [r["message"] for r in records]
    assert "hidden below the configured level" not in messages
    failed = next(r for r in records if r["message"] == "upstream p0 failed")
    assert failed["request_id"] == "req-123" and failed["level"] == "warning"
    assert "request_id" not in next(r for r in records if r["message"] == "between requests")
    req = next(r for r in records if r["logger"] == REQUEST_LOGGER)
    assert (req["request_id"], req["model"], req["status"], req["latency_ms"]) == ("req-456", "m", 429, 12)


def test_text_lines_and_no_request_log_by_default(tmp_path: Path) -> None:
    lines = _run(tmp_path, "logging: {level: info}\n")
    assert any(line.endswith("hidden below the configured level") for line in lines)
    assert not any("req-456" in line for line in lines)
    assert not any(line.startswith("{") for line in lines)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    lines = _run(tmp_path, "logging: {level: info}\n", LLMPROXY_LOGGING_REQUEST_LOG="true", LLMPROXY_LOG_LEVEL="ERROR")
    assert not any("hidden below" in line or "upstream p0 failed" in line for line in lines)
    assert any("request req-456 openai model=m status=429 latency_ms=12" in line for line in lines)


def test_a_config_that_does_not_load_keeps_the_default_logging(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("logging: {format: xml}\n")
    assert logging_section(str(bad), env={}) == Logging()
    conf = logging_dict(Logging(format="json", request_log=False), "debug")
    assert conf["root"]["level"] == "DEBUG"
    assert conf["formatters"]["line"] == {"()": "llmproxy.logfmt.JsonFormatter"}
    assert conf["loggers"][REQUEST_LOGGER]["level"] == "CRITICAL"


def test_the_embedded_workers_per_task_lines_stay_out_of_the_terminal_unless_debugging() -> None:
    quiet = logging_dict(Logging(), None)["loggers"]
    assert all(quiet[name]["level"] == "WARNING" for name in CHATTY_CELERY)
    assert "celery.app.trace" in CHATTY_CELERY  # its "succeeded in" line each 30 s
    loud = logging_dict(Logging(), "debug")["loggers"]
    assert all(loud[name]["level"] == "DEBUG" for name in CHATTY_CELERY)
