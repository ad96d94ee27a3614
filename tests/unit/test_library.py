"""The engine is a library: importable without Django, with a tested public surface."""

from __future__ import annotations

import subprocess
import sys

import llmproxy


def test_library_imports_without_django() -> None:
    code = (
        "import sys, llmproxy, llmproxy.gateway, llmproxy.translator, llmproxy.routing, llmproxy.side_calls\n"
        "import llmproxy.formats.openai_chat\n"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_library_exports_a_sorted_public_surface() -> None:
    assert llmproxy.__all__ == sorted(llmproxy.__all__, key=str.lower) or llmproxy.__all__ == sorted(llmproxy.__all__)
    for name in llmproxy.__all__:
        assert hasattr(llmproxy, name), name
    assert {"Gateway", "Runtime", "translator", "providers", "LLMProxyError"} <= set(llmproxy.__all__)
