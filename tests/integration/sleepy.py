"""EmbeddedJobs with children that only sleep: its supervision, fast. Importable without Django set up."""

from __future__ import annotations

import sys

from proxy.jobs.embedded import EmbeddedJobs


class Sleepy(EmbeddedJobs):
    RESTART_DELAY = 0.05

    def command(self, name: str) -> list[str]:
        return [sys.executable, "-c", "import time; time.sleep(120)"]
