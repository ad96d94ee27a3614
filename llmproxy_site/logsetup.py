"""The site's ``LOGGING`` from config.yaml's ``logging:`` section (level, format, request log).

Read when the settings load, and again (with ``management.allow_remote``) whenever a
serving process rebuilds its snapshot after the watched file changed (``reapply``, hooked
into the engine's reload by ``llmproxy_site.asgi``): the level, the request log and the
line format change in place on the running handlers. ``LLMPROXY_LOG_LEVEL`` still wins
over ``logging.level``, and ``LLMPROXY_LOGGING_<KEY>`` overrides apply as for every config
section. A config that does not load leaves the defaults at start-up and the running
settings on a reload; ``serve`` and ``check_config`` report its errors.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from llmproxy import logfmt, scrub
from llmproxy.config import ConfigError, Logging, load, loads

#: The logger the per-request lines go to (``logging.request_log``).
REQUEST_LOGGER = "llmproxy.requests"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
#: The ``logging:`` section this process runs with (set by ``logging_dict`` and ``reapply``).
_applied: list[Logging | None] = [None]


def logging_section(config_path: str | None, env: Mapping[str, str] | None = None) -> Logging:
    """The ``logging:`` section of the config at ``config_path`` (else the environment's and defaults')."""
    try:
        return load(config_path, env=env).logging if config_path else loads("", env=env).logging
    except (ConfigError, OSError):
        return Logging()


CHATTY_CELERY = ("celery.beat", "celery.worker.strategy", "celery.app.trace")


def logging_dict(section: Logging, level_override: str | None = None) -> dict[str, Any]:
    """A ``dictConfig`` for ``section``; every handler scrubs secrets and stamps the request id."""
    _applied[0] = section
    level = (level_override or section.level).upper()
    formatter = {"()": "llmproxy.logfmt.JsonFormatter"} if section.format == "json" else {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": formatter},
        "filters": {
            # Scrubs configured secrets (and 8+ character fragments) out of each record.
            "secrets": {"()": "llmproxy.scrub.SecretFilter"},
            "request_id": {"()": "llmproxy.logfmt.RequestIdFilter"},
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "line", "filters": ["request_id", "secrets"]}
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            # The embedded worker and beat run in serve's terminal: their per-task lines
            # ("Sending due task", "received", "succeeded") every 30 s drown the server's own.
            **{name: {"level": "DEBUG" if level == "DEBUG" else "WARNING"} for name in CHATTY_CELERY},
            # Per-request lines are INFO: shown when request_log is on, whatever the root level.
            REQUEST_LOGGER: {"level": "INFO" if section.request_log else "CRITICAL"},
        },
    }


def reapply(config_path: str | None = None) -> bool:
    """Apply the config file's ``logging:`` and ``management.allow_remote`` to this running process.

    Called after each snapshot rebuild; a file that does not load changes nothing. The root
    level, the request log's level and the formatter of every scrubbing handler change in
    place (no handler is replaced, so a server's or a test's own handlers stay). Returns
    whether the logging section changed.
    """
    path = config_path or settings.LLMPROXY.get("CONFIG")
    if not path:
        return False
    try:
        config = load(path)
    except (ConfigError, OSError):
        return False
    settings.LLMPROXY["MANAGEMENT_ALLOW_REMOTE"] = config.management.allow_remote
    section = config.logging
    if section == _applied[0]:
        return False
    _applied[0] = section
    level = (os.environ.get("LLMPROXY_LOG_LEVEL") or section.level).upper()
    root = logging.getLogger()
    root.setLevel(level)
    logging.getLogger(REQUEST_LOGGER).setLevel(logging.INFO if section.request_log else logging.CRITICAL)
    formatter = logfmt.JsonFormatter() if section.format == "json" else logging.Formatter(TEXT_FORMAT)
    for handler in root.handlers:
        if any(isinstance(f, scrub.SecretFilter) for f in handler.filters):
            handler.setFormatter(formatter)
    scrub.guard_handlers()
    logging.getLogger("llmproxy.engine").info("logging settings applied: %s", section)
    return True
