"""Page-speed bench of the dashboard and the report pages over millions of usage rows (issue #14: <= 300 ms).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/llmproxy_reports_bench \\
        python -m bench.reports generate --rows 10000000   # minutes, once
    ... python -m bench.reports time --repeat 7            # serves the site, times each page

``generate`` migrates the bench database, fills it (``bench.reports_data``) and builds the
rollups; ``time`` starts the site (``manage.py serve``) on a local port, signs in as a staff
user and fetches each page as a browser would (a fresh HTTP connection, the whole body;
for the CSV the first bytes), ``repeat`` times, and prints the median and the spread with
the machine's load average beside them. ``explain`` prints EXPLAIN ANALYZE of the pages'
queries. The database's name must end in ``_bench``: the bench never touches another.
"""

from __future__ import annotations

import argparse
import os
import sys
from urllib.parse import urlparse


def _database_guard() -> None:
    url = os.environ.get("DATABASE_URL", "")
    name = urlparse(url).path.lstrip("/")
    if not url.startswith(("postgres://", "postgresql://")) or not name.endswith("_bench"):
        sys.exit("bench.reports runs only on a PostgreSQL database whose name ends in _bench (DATABASE_URL)")


def _django() -> None:
    _database_guard()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmproxy_site.settings")
    import django

    django.setup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reports")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="migrate, generate usage rows, build rollups")
    gen.add_argument("--rows", type=int, default=10_000_000)
    gen.add_argument("--days", type=int, default=90)
    sub.add_parser("rollup", help="rebuild the rollups only")
    timing = sub.add_parser("time", help="time each page over HTTP")
    timing.add_argument("--repeat", type=int, default=7)
    timing.add_argument("--port", type=int, default=21650)
    timing.add_argument("--only", default="", help="pages whose label contains this")
    explaining = sub.add_parser("explain", help="EXPLAIN ANALYZE of the pages' queries")
    explaining.add_argument("--only", default="", help="pages whose label contains this")
    args = parser.parse_args(argv)
    _django()
    from . import reports_data

    if args.command == "generate":
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        reports_data.generate(args.rows, args.days)
        reports_data.rollups()
    elif args.command == "rollup":
        reports_data.rollups()
    elif args.command == "time":
        from . import reports_timing

        reports_timing.run(args.repeat, args.port, args.only)
    elif args.command == "explain":
        from . import reports_timing

        reports_timing.explain(args.only)


if __name__ == "__main__":
    main()
