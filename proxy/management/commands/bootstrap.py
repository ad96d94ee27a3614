"""``bootstrap``: on first start, an admin, a first API key and the demo provider, printed once.

It lives in ``proxy`` (not ``accounts``) because the first start also configures the
offline demo provider, so the key printed here answers a request at once.
"""

from __future__ import annotations

import shlex
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from accounts.actions import bootstrap_admin
from llmproxy._json import dumps_str
from proxy.configsync.config_file import server_address
from proxy.configsync.demo import add_demo_provider


def curl_line(base_url: str, key: str) -> str:
    """A ready-to-paste request for the demo model."""
    body = dumps_str({"model": "demo", "messages": [{"role": "user", "content": "Hello!"}]})
    return (f"curl {base_url}/v1/chat/completions -H {shlex.quote('Authorization: Bearer ' + key)} "
            f"-H 'Content-Type: application/json' -d {shlex.quote(body)}")  # fmt: skip


class Command(BaseCommand):
    help = "First start: create an admin user and API key and the offline demo provider (if there are no users)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-demo", action="store_true", help="Do not configure the demo provider.")

    def handle(self, *args: Any, **opts: Any) -> None:
        created = bootstrap_admin()
        if created is None:
            self.stdout.write("Users exist already; nothing to bootstrap.")
            return
        demo = None if opts["no_demo"] else add_demo_provider()
        user, password, raw = created
        host, port = server_address()
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        line = "=" * 72
        out = [line, "First start: created an admin account (shown only this once).",
               f"  admin:     {base}/admin/", f"  username:  {user.username}", f"  password:  {password}",
               f"  API key:   {raw}"]  # fmt: skip
        if demo is not None:
            out += ["", "An offline demo provider serves the model 'demo' (no network, no key needed upstream).",
                    "Try it once the server below is up:", "", f"  {curl_line(base, raw)}", "",
                    "Remove it with: manage.py demo --remove"]  # fmt: skip
        self.stdout.write("\n".join([*out, line]))
