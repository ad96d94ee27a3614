"""The engine is a package of its own: a wheel that installs and runs without Django.

Builds the wheel from the repository, installs it into a fresh virtual environment with
no extras, and runs the README's library example there against a fake upstream served
from this process. This is what `pip install llmproxy` gives an embedding program.
"""

from __future__ import annotations

import email.parser
import re
import subprocess
import sys
import textwrap
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import FakeUpstream, Reply
from tests.fakes import openai as fo

pytestmark = pytest.mark.single_pass

ROOT = Path(__file__).resolve().parents[2]
#: What the bare venv's processes see: nothing of this checkout or its venv leaks in.
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("llmproxy-*.whl")
    return built


@pytest.fixture(scope="module")
def bare_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel and nothing else but its own dependencies."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel)],
        check=True, capture_output=True, text=True, timeout=300, cwd=env_dir, env=_pip_env(),
    )  # fmt: skip
    return python


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


def _pip_env() -> dict[str, str]:
    """The clean environment, plus the machine's pip settings (index, wheel cache)."""
    import os

    keep = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    return {**keep, **CLEAN_ENV}


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(zf.read(name).decode())


def test_wheel_metadata_keeps_the_platform_in_the_server_extra(wheel: Path) -> None:
    meta = _metadata(wheel)
    requires = meta.get_all("Requires-Dist") or []
    bare = [r for r in requires if "extra ==" not in r]
    server = [r for r in requires if re.search(r"extra\s*==\s*[\"']server[\"']", r)]
    bare_names = {re.split(r"[<>=\[; ]", r, maxsplit=1)[0].lower() for r in bare}
    assert "django" not in bare_names
    assert {"channels", "celery"} & bare_names == set()
    assert {"aiohttp", "orjson", "pyyaml"} <= bare_names
    server_names = {re.split(r"[<>=\[; ]", r, maxsplit=1)[0].lower() for r in server}
    assert {"django", "channels", "celery", "django-ninja", "psycopg"} <= server_names
    assert {"server", "test"} <= set(meta.get_all("Provides-Extra") or [])


def test_wheel_installs_without_django(bare_python: Path) -> None:
    probe = subprocess.run([str(bare_python), "-c", "import django"], capture_output=True, text=True,
                           cwd="/", env=CLEAN_ENV)  # fmt: skip
    assert probe.returncode != 0 and "No module named 'django'" in probe.stderr
    code = (
        "import sys, llmproxy, llmproxy.gateway, llmproxy.translator\n"
        "print(llmproxy.__file__)\n"
        "print(any(m == 'django' or m.startswith('django.') for m in sys.modules))"
    )
    out = subprocess.run([str(bare_python), "-c", code], capture_output=True, text=True, check=True,
                         cwd="/", env=CLEAN_ENV)  # fmt: skip
    where, django_loaded = out.stdout.splitlines()[-2:]
    assert "site-packages" in where and str(ROOT) not in where
    assert django_loaded == "False"


def test_readme_library_example_runs_in_the_bare_venv(bare_python: Path, upstream_server: FakeUpstream,
                                                      tmp_path: Path) -> None:  # fmt: skip
    upstream_server.reset()
    upstream_server.default("/v1/chat/completions", fo.completion("Hello from the fake"))
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    example = next(b for b in blocks if "Gateway.from_config" in b)
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(f"""\
            providers:
              local:
                type: openai-compatible
                base_url: {upstream_server.url}/v1
                credentials: [{{name: default, api_key: "${{LOCAL_KEY}}"}}]
                models:
                  - {{name: my-model, upstream: llama3.1, input_price: 0.1, output_price: 0.2}}
            """)
    )  # fmt: skip
    script = tmp_path / "example.py"
    script.write_text(example)
    out = subprocess.run(
        [str(bare_python), str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**CLEAN_ENV, "LOCAL_KEY": "sk-local-test"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Hello from the fake" in out.stdout
    sent = upstream_server.last()
    assert sent.body["model"] == "llama3.1"
    assert sent.headers.get("authorization") == "Bearer sk-local-test"


_DOC_RUNNER = """\
import ast, asyncio, json, sys
frames = json.loads(sys.argv[2])

async def _sse():
    for frame in frames:
        yield frame.encode()

ns = {"__name__": "__doc_example__", "anthropic_message_json": json.loads(sys.argv[3]),
      "anthropic_sse_bytes_iterator": _sse()}
code = compile(open(sys.argv[1]).read(), sys.argv[1], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
try:
    result = eval(code, ns)
    if asyncio.iscoroutine(result):
        asyncio.run(result)
finally:
    for value in list(ns.values()):
        if type(value).__name__ == "Watcher":
            value.stop()
print("EXAMPLE-DONE")
"""


def test_library_doc_examples_run_in_the_bare_venv(bare_python: Path, upstream_server: FakeUpstream,
                                                   tmp_path: Path) -> None:  # fmt: skip
    """docs/library.md's examples (tests/unit/test_library_docs.py runs them in-process) in the bare venv."""
    import json

    from tests.fakes import anthropic as fa
    from tests.unit import test_library_docs as docs

    upstream_server.reset()
    upstream_server.default("/v1/messages", docs._messages)
    upstream_server.default("/v1/chat/completions", docs._chat)
    upstream_server.default("/v1/generate", fo.completion("From Acme"))
    upstream_server.default("/v1/models", Reply({"data": [], "has_more": False, "first_id": None, "last_id": None}))
    for name, text in docs.FILES.items():
        (tmp_path / name).write_text(docs._local(text, upstream_server))
    (tmp_path / "auths").mkdir()
    (tmp_path / "runner.py").write_text(_DOC_RUNNER)
    frames = json.dumps([f.decode() for f in fa.frames("Streamed hello")])
    message = json.dumps(fa.body("Hello there"))
    for i, code in enumerate(docs.PYTHON):
        block = tmp_path / f"block{i + 1}.py"
        block.write_text(docs._local(code, upstream_server))
        out = subprocess.run(
            [str(bare_python), "runner.py", block.name, frames, message], cwd=tmp_path, capture_output=True,
            text=True, timeout=60, env={**CLEAN_ENV, **docs.ENV},
        )  # fmt: skip
        assert out.returncode == 0 and "EXAMPLE-DONE" in out.stdout, (block.name, out.stderr[-2000:])
    assert any(r.path == "/v1/generate" and r.body.get("tenant") == "acme" for r in upstream_server.requests)
