"""llmproxy's version and the User-Agent every upstream call carries (it never poses as another client)."""

from __future__ import annotations

from importlib import metadata


def _version() -> str:
    try:
        return metadata.version("llmproxy")
    except metadata.PackageNotFoundError:
        return "0"


VERSION = _version()
USER_AGENT = f"llmproxy/{VERSION}"
