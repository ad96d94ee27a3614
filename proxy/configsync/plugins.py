"""Plugin modules imported when a Django process starts (serve's processes, workers, commands).

The serving processes build their engine from the database, not from config.yaml, so a
custom ``type:`` or ``translator:`` a plugin registers must be imported here too: the
modules named in ``LLMPROXY_PLUGINS`` and in the config file's ``plugins:`` list. One that
fails to import is logged by name (and is a config error wherever config is validated).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import yaml
from django.conf import settings

from llmproxy import plugins

log = logging.getLogger("llmproxy.plugins")


def file_plugins(path: str | None) -> list[str]:
    """The ``plugins:`` list of the config file, read without validating the rest."""
    if not path or not os.path.exists(path):
        return []
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []  # the file's own errors are reported where it is validated
    names = data.get("plugins") if isinstance(data, dict) else None
    return [n for n in names if isinstance(n, str) and n] if isinstance(names, list) else []


def import_configured() -> list[str]:
    """Import the configured plugins; the messages for those that failed (also logged)."""
    names = dict.fromkeys([*file_plugins(settings.LLMPROXY.get("CONFIG")), *plugins.from_env(os.environ)])
    failed = [str(f) for f in plugins.import_all(names)]
    for message in failed:
        log.error("%s", message)
    return failed
