"""The import graph of the project's own packages, read from the source with ``ast``.

The layering is ``llmproxy`` (the engine) < ``accounts`` < ``proxy`` < ``llmproxy_site``:
a package imports only those below it. Every import counts, also one inside a function
or under ``if TYPE_CHECKING`` (an import moved into a function to dodge a circle is still
a circle). docs/architecture.md states the same rules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("llmproxy", "accounts", "proxy", "llmproxy_site")
#: The Django shell: none of it may import the site package (it reads ``django.conf.settings``).
SHELL = ("accounts", "proxy")
#: What the engine never imports: Django, its ecosystem, and the shell.
NOT_IN_ENGINE = ("django", "channels", "ninja", "celery", "django_celery_beat", *SHELL, "llmproxy_site")
#: Where the line limit holds: everywhere.
LINE_LIMITED = ("llmproxy", "accounts", "proxy")
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> dict[str, Path]:
    files = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            files[module_name(path)] = path
    return files


MODULES = source_files()


def _resolve(name: str) -> str:
    """The module an import runs: ``name`` itself, else its longest prefix that is one of ours."""
    while name and name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import statement anywhere in the file."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _resolve(alias.name), node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                yield (target if target in MODULES else _resolve(base)), node.lineno


GRAPH: dict[str, set[str]] = {m: set() for m in MODULES}
WHERE: dict[tuple[str, str], int] = {}
for _module, _path in MODULES.items():
    for _target, _line in imports_of(_module, _path):
        if _target != _module:
            GRAPH[_module].add(_target)
            WHERE.setdefault((_module, _target), _line)


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def _offences(importers: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{MODULES[m].relative_to(ROOT)}:{WHERE[(m, t)]} imports {t}"
        for m, targets in GRAPH.items()
        if _top(m) in importers
        for t in targets
        if _top(t) in forbidden
    )


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; returns the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next((c for c in children if c in graph), None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_parser_sees_imports_inside_functions_and_relative_ones() -> None:
    assert {"proxy", "proxy.models"} <= set(MODULES)
    edges = set(imports_of("proxy.apps", MODULES["proxy.apps"]))
    assert any(target == "proxy.signals" for target, _ in edges)  # ``from . import signals`` inside ready()


def test_the_cycle_finder_finds_a_cycle_through_three_modules() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert strongly_connected(graph) == [["a", "b", "c"]]


def test_no_import_circle_anywhere() -> None:
    circles = strongly_connected(GRAPH)
    described = [" -> ".join(c) for c in circles]
    assert circles == [], "import circles: " + "; ".join(described)


def test_accounts_imports_nothing_from_proxy() -> None:
    assert _offences(("accounts",), ("proxy",)) == []


def test_the_engine_imports_neither_django_nor_the_shell() -> None:
    assert _offences(("llmproxy",), NOT_IN_ENGINE) == []


def test_no_shell_module_imports_the_site_package() -> None:
    assert _offences(SHELL, ("llmproxy_site",)) == []


@pytest.mark.parametrize("package", LINE_LIMITED)
def test_no_module_is_longer_than_the_limit(package: str) -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for name, path in MODULES.items()
        if _top(name) == package and (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_django_root_of_proxy_holds_at_most_twelve_modules() -> None:
    root = [p.name for p in (ROOT / "proxy").glob("*.py") if p.name != "__init__.py"]
    assert len(root) <= 12, sorted(root)
