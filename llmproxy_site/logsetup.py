"""The site's ``LOGGING`` from config.yaml's ``logging:`` section (level, format, request log).

Read once when the settings load: the level and line format are process-wide and not
hot-reloaded. ``LLMPROXY_LOG_LEVEL`` still wins over ``logging.level``, and
``LLMPROXY_LOGGING_<KEY>`` overrides apply as for every config section. A config that does
not load leaves the defaults here; ``serve`` and ``check_config`` report its errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmproxy.config import ConfigError, Logging, load, loads

#: The logger the per-request lines go to (``logging.request_log``).
REQUEST_LOGGER = "llmproxy.requests"


def logging_section(config_path: str | None, env: Mapping[str, str] | None = None) -> Logging:
    """The ``logging:`` section of the config at ``config_path`` (else the environment's and defaults')."""
    try:
        return load(config_path, env=env).logging if config_path else loads("", env=env).logging
    except (ConfigError, OSError):
        return Logging()


def logging_dict(section: Logging, level_override: str | None = None) -> dict[str, Any]:
    """A ``dictConfig`` for ``section``; every handler scrubs secrets and stamps the request id."""
    level = (level_override or section.level).upper()
    formatter = (
        {"()": "llmproxy.logfmt.JsonFormatter"}
        if section.format == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    )
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
            # Per-request lines are INFO: shown when request_log is on, whatever the root level.
            REQUEST_LOGGER: {"level": "INFO" if section.request_log else "CRITICAL"},
        },
    }
