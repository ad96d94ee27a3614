"""The bench's own config rows in its throwaway database, and the config bumper for scenario E.

Run by ``bench.run`` in a subprocess whose environment points ``DATABASE_URL`` and
``LLMPROXY_VAR_DIR`` at ``var/bench/``; never against the real database.

    python -m bench.fixtures setup --upstream http://127.0.0.1:18001   -> prints {"key": ...}
    python -m bench.fixtures bump --interval 0.5 --duration 10          -> prints the bump count
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from decimal import Decimal

import orjson

#: public model -> (provider, upstream model). The upstream model name is the fake's script.
OPENAI_MODELS = {
    "bench-chat": "m-1-0",
    "bench-stream-50": "m-50-0",
    "bench-paced": "m-20-25",
    "bench-paced-slow": "m-20-250",
    "bench-hold": "m-30-1000",
}
ANTHROPIC_MODELS = {"bench-claude": "m-1-0", "bench-claude-50": "m-50-0"}


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmproxy_site.settings")
    if "bench" not in os.environ.get("DATABASE_URL", "") or "bench" not in os.environ.get("LLMPROXY_VAR_DIR", ""):
        sys.exit("bench.fixtures refuses to run outside the bench database (DATABASE_URL, LLMPROXY_VAR_DIR)")
    import django

    django.setup()


def anthropic_available() -> bool:
    return importlib.util.find_spec("llmproxy.providers.anthropic") is not None and (
        importlib.util.find_spec("llmproxy.formats.anthropic") is not None
    )


def setup(upstream: str) -> dict[str, object]:
    _django()
    from accounts.actions import create_api_key
    from accounts.models import User
    from proxy.models import Credential, ModelRoute, Provider

    def provider(name: str, type_: str, base_url: str, models: dict[str, str]) -> None:
        p = Provider.objects.create(name=name, type=type_, base_url=base_url)
        Credential.objects.create(provider=p, name="bench", api_key="sk-bench-upstream")
        for public, upstream_model in models.items():
            ModelRoute.objects.create(provider=p, name=public, upstream=upstream_model,
                                      input_price=Decimal("3"), output_price=Decimal("15"))  # fmt: skip

    provider("bench-openai", "openai-compatible", upstream + "/v1", OPENAI_MODELS)
    models = list(OPENAI_MODELS)
    if anthropic_available():
        provider("bench-anthropic", "anthropic", upstream, ANTHROPIC_MODELS)
        models += list(ANTHROPIC_MODELS)
    user = User.objects.create_user(username="bench", password="bench-not-a-secret")
    _, raw = create_api_key(user, name="bench")
    return {"key": raw, "models": models, "anthropic": anthropic_available()}


def bump(interval: float, duration: float, delay: float = 0.0) -> int:
    """Bump the shared config version by saving a row, as an admin edit would.

    ``delay`` lets the caller start this process (Django's start-up is a CPU burst on the
    load core) well before the measured window opens."""
    _django()
    from proxy.models import Provider

    provider = Provider.objects.get(name="bench-openai")
    time.sleep(delay)
    n = 0
    end = time.monotonic() + duration
    while time.monotonic() < end:
        provider.weight = 1 + n % 2
        provider.save(update_fields=["weight", "updated_at"])
        n += 1
        time.sleep(interval)
    return n


def usage_cost(n: int = 4000) -> dict[str, float]:
    """µs CPU per usage record: the serving process's journal append, and the ingester's read + insert."""
    _django()
    import tempfile

    from llmproxy.journal import JournalWriter
    from llmproxy.model import Usage
    from llmproxy.usage import UsageEvent
    from proxy.jobs.usage_ingest import Ingester

    batch = [UsageEvent(request_id=os.urandom(16).hex(), created_at=time.time(), ingress="openai_chat",
                        model="bench-chat", upstream_model="m-1-0", provider="bench-openai", credential="bench",
                        key_prefix="sk-llmp-abcd", status_code=200, usage=Usage(input_tokens=42, output_tokens=1),
                        cost_usd=0.000141, latency_ms=1, attempts=1) for _ in range(n)]  # fmt: skip
    with tempfile.TemporaryDirectory() as directory:
        writer = JournalWriter(directory)
        t = time.process_time()
        for ev in batch:
            writer.append(ev)
        append = (time.process_time() - t) / n
        writer.close()
        t = time.process_time()
        written = Ingester(directory, quota_bytes=2**40).drain()
        ingest = (time.process_time() - t) / max(1, written)
    return {"append_us_per_record": round(append * 1e6, 1), "ingest_us_per_record": round(ingest * 1e6, 1), "rows": n}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--upstream", required=True)
    b = sub.add_parser("bump")
    b.add_argument("--interval", type=float, default=0.5)
    b.add_argument("--duration", type=float, default=10.0)
    b.add_argument("--delay", type=float, default=0.0)
    sub.add_parser("usage-cost")
    args = parser.parse_args()
    if args.cmd == "setup":
        sys.stdout.write(orjson.dumps(setup(args.upstream)).decode() + "\n")
    elif args.cmd == "usage-cost":
        sys.stdout.write(orjson.dumps(usage_cost()).decode() + "\n")
    else:
        sys.stdout.write(f"{bump(args.interval, args.duration, args.delay)}\n")


if __name__ == "__main__":
    main()
