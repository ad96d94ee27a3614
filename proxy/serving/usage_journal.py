"""Where this node's usage journal lives and how it is written (the serving side of the ledger).

The serving process appends each ``UsageEvent`` to the journal in the usage sink, which
the gateway calls before the response's last byte (a reply's body, a stream's closing
chunk): one ``os.write``, no database work. The ingester (``manage.py ingest_usage``, a
child of ``serve`` or its own service) writes the records into the database.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from llmproxy.config import ConfigError, UsageSettings, load, loads
from llmproxy.errors import LLMProxyError
from llmproxy.journal import JournalWriter


class JournalFull(LLMProxyError):
    status = 503
    code = "usage_journal_full"


def journal_dir() -> Path:
    """``LLMPROXY_USAGE_JOURNAL_DIR``, else ``usage-journal/`` in this node's var dir."""
    return Path(settings.LLMPROXY.get("USAGE_JOURNAL_DIR") or Path(settings.VAR_DIR) / "usage-journal")


def usage_settings() -> UsageSettings:
    """config.yaml's ``usage`` section (when ``LLMPROXY_CONFIG`` names a valid file) with env overrides."""
    path = str(settings.LLMPROXY.get("CONFIG") or "")
    try:
        if path and os.path.exists(path):
            return load(path).usage
        return loads("{}").usage  # LLMPROXY_USAGE_* alone
    except ConfigError:
        return UsageSettings()


def quota_bytes() -> int:
    return usage_settings().journal_max_mb * 1024 * 1024


def make_writer() -> JournalWriter:
    return JournalWriter(journal_dir(), fsync=usage_settings().fsync)


def full_error() -> JournalFull:
    return JournalFull("usage recording is backed up (the database is unreachable); try again shortly", retry_after=5)
