"""Logging and management access follow the watched file on reload; every handler scrubs secrets."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from llmproxy import logfmt, scrub
from llmproxy_site import logsetup

SECRET = "sk-live-9f8e7d6c5b4a39281706"


@pytest.fixture
def site_logging(tmp_path: Path) -> Iterator[Path]:
    """A watched config file; the process's logging and settings are put back after."""
    root = logging.getLogger()
    handlers = [(h, h.formatter) for h in root.handlers]
    levels = (root.level, logging.getLogger(logsetup.REQUEST_LOGGER).level)
    before = dict(settings.LLMPROXY)
    applied = logsetup._applied[0]
    path = tmp_path / "config.yaml"
    settings.LLMPROXY["CONFIG"] = str(path)
    yield path
    settings.LLMPROXY.clear()
    settings.LLMPROXY.update(before)
    for h, fmt in handlers:
        h.setFormatter(fmt)
    root.setLevel(levels[0])
    logging.getLogger(logsetup.REQUEST_LOGGER).setLevel(levels[1])
    logsetup._applied[0] = applied


def _scrubbing_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if any(isinstance(f, scrub.SecretFilter) for f in h.filters)]


def test_reapply_changes_level_format_request_log_and_remote_access_in_place(site_logging: Path) -> None:
    assert _scrubbing_handlers(), "the site's console handler scrubs"
    site_logging.write_text(
        "logging: {level: error, format: json, request_log: true}\nmanagement: {allow_remote: true}\n"
    )
    assert logsetup.reapply() is True
    assert logging.getLogger().level == logging.ERROR
    assert logging.getLogger(logsetup.REQUEST_LOGGER).level == logging.INFO
    assert all(isinstance(h.formatter, logfmt.JsonFormatter) for h in _scrubbing_handlers())
    assert settings.LLMPROXY["MANAGEMENT_ALLOW_REMOTE"] is True
    assert logsetup.reapply() is False  # unchanged: nothing is touched again
    site_logging.write_text("logging: {level: info}\n")
    assert logsetup.reapply() is True
    assert logging.getLogger().level == logging.INFO
    assert logging.getLogger(logsetup.REQUEST_LOGGER).level == logging.CRITICAL
    assert not any(isinstance(h.formatter, logfmt.JsonFormatter) for h in _scrubbing_handlers())
    assert settings.LLMPROXY["MANAGEMENT_ALLOW_REMOTE"] is False
    site_logging.write_text("logging: {level: loud}\n")  # a file that does not load changes nothing
    assert logsetup.reapply() is False and logging.getLogger().level == logging.INFO


@pytest.mark.django_db(transaction=True)
def test_the_serving_engine_reapplies_on_each_reload(live: Any, site_logging: Path) -> None:
    site_logging.write_text("management: {allow_remote: true}\nlogging: {level: warning}\n")
    live.reload()
    assert settings.LLMPROXY["MANAGEMENT_ALLOW_REMOTE"] is True
    assert logging.getLogger().level == logging.WARNING
    site_logging.write_text("management: {allow_remote: false}\n")
    live.reload()
    assert settings.LLMPROXY["MANAGEMENT_ALLOW_REMOTE"] is False
    assert logging.getLogger().level == logging.INFO


def test_handlers_the_site_did_not_create_get_the_secret_filter() -> None:
    stream = io.StringIO()
    foreign = logging.StreamHandler(stream)  # as uvicorn's, a library's or a worker's own
    lg = logging.getLogger("uvicorn.error.test-foreign")
    lg.addHandler(foreign)
    lg.propagate = False
    before = scrub.active()
    try:
        assert scrub.guard_handlers() >= 1
        assert scrub.guard_handlers() == 0  # once is enough
        scrub.set_active(scrub.Scrubber([SECRET]))
        lg.error("upstream said: Incorrect API key provided: %s", SECRET[:-3] + "...")
        assert SECRET[:8] not in stream.getvalue() and "[redacted]" in stream.getvalue()
    finally:
        scrub.set_active(before)
        lg.removeHandler(foreign)
