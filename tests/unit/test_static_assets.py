"""The pages load nothing from another site: Chart.js is pinned and served from our static files.

A CDN would make the admin blank offline or behind a strict proxy, and leak who looks at it.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))
OWN_JS = sorted(p for p in (ROOT / "proxy" / "static" / "llmproxy").glob("*.js"))
VENDOR = ROOT / "proxy" / "static" / "llmproxy" / "vendor"
#: What fetches a resource: src/href/action attributes, CSS url(), @import, JS fetch/WebSocket/import.
LOADS = re.compile(r"""(?:\b(?:src|href|action|srcset)\s*=\s*["']?|url\(\s*["']?|@import\s+["']|fetch\(\s*["']|"""
                   r"""WebSocket\(\s*["']|import\s*\(\s*["'])\s*((?:https?:)?//[^"')\s>]+)""", re.I)  # fmt: skip


def test_no_template_or_script_loads_anything_from_another_site() -> None:
    assert TEMPLATES and OWN_JS
    found = [(p.relative_to(ROOT).as_posix(), m.group(1)) for p in (*TEMPLATES, *OWN_JS)
             for m in LOADS.finditer(p.read_text())]  # fmt: skip
    assert found == []


def test_the_pattern_catches_what_a_cdn_line_looks_like() -> None:
    lines = ['<script src="https://cdn.jsdelivr.net/npm/chart.js"></script>', "<link href='//unpkg.com/x.css'>",
             "@import 'https://fonts.example/a.css';", "background: url(http://img.example/a.png)"]  # fmt: skip
    assert [bool(LOADS.search(line)) for line in lines] == [True, True, True, True]
    assert not LOADS.search('<script src="/static/llmproxy/charts.js"></script>')


def test_the_pages_use_the_pinned_vendored_chart_js() -> None:
    (bundle,) = VENDOR.glob("chart-*.umd.min.js")
    version = re.fullmatch(r"chart-(\d+\.\d+\.\d+)\.umd\.min\.js", bundle.name)
    assert version is not None and f"Chart.js v{version.group(1)}" in bundle.read_text()[:200]
    assert (VENDOR / f"chart-{version.group(1)}.LICENSE.md").exists()
    users = [p.name for p in TEMPLATES if f"llmproxy/vendor/{bundle.name}" in p.read_text()]
    assert sorted(users) == ["dashboard.html", "index.html"]  # the admin dashboard and the portal


def test_every_page_names_its_icon() -> None:
    # Without one, each admin or portal page load asks for /favicon.ico: a 404 warning in the serve log.
    assert (ROOT / "proxy" / "static" / "llmproxy" / "favicon.svg").exists()
    for base in ("base.html", "admin/base_site.html"):
        assert "{% static 'llmproxy/favicon.svg' %}" in (ROOT / "templates" / base).read_text(), base
