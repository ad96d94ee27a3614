"""Where the gateway's time goes: py-spy samples (GIL holder only) grouped by package and function.

``record(pid, seconds)`` samples a running gateway while the caller keeps it loaded;
``summarise(raw)`` turns py-spy's collapsed stacks into two small tables: self time by
package (aiohttp, uvicorn, llmproxy.formats, django.db...) and the project's own functions
by inclusive time. Sampling only the GIL holder leaves out idle and waiting threads, so
the shares are shares of the Python work the process actually did.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OWN = ("llmproxy/", "proxy/", "accounts/", "llmproxy_site/")


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path, cpus: str | None = None) -> bool:
    exe = py_spy()
    if exe is None:
        return False
    cmd = [exe, "record", "-r", "200", "-d", str(max(1, round(seconds))), "-f", "raw", "-o", str(out), "-p", str(pid),
           "--nonblocking", "--gil"]  # fmt: skip
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    done = subprocess.run(cmd, capture_output=True, timeout=seconds + 30, check=False)
    return done.returncode == 0 and out.exists()


def _where(frame: str) -> tuple[str, str]:
    """(package, "function (file)") of one py-spy frame ``func (module/path.py:line)``."""
    func, _, rest = frame.partition(" (")
    path = rest.rsplit(":", 1)[0]
    if str(ROOT) + "/" in path:
        path = path.split(str(ROOT) + "/", 1)[1]
    elif "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif "/python3." in path:
        path = path.split("/python3.", 1)[1].split("/", 1)[-1]
    parts = path.split("/")
    pkg = ".".join(parts[:2]) if len(parts) > 2 else parts[0].removesuffix(".py")
    return pkg, f"{func} ({'/'.join(parts[-2:])})"


def summarise(raw: Path, top: int = 14) -> dict[str, Any]:
    by_pkg: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        by_pkg[_where(frames[-1])[0]] += n
        seen = set()
        for f in frames:
            pkg, name = _where(f)
            if pkg.split(".")[0] in ("llmproxy", "proxy", "accounts", "llmproxy_site") and name not in seen:
                seen.add(name)
                own[name] += n
    if not total:
        return {}
    pct = lambda n: round(100 * n / total, 1)  # noqa: E731
    return {"samples": total, "self_by_package": [(k, pct(v)) for k, v in by_pkg.most_common(top)],
            "own_inclusive": [(k, pct(v)) for k, v in own.most_common(top)]}  # fmt: skip
