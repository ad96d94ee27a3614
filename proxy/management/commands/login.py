"""``manage.py login TYPE``: log in to a provider account and store it as a credential."""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from llmproxy import auth
from proxy.configsync.accounts import AccountError
from proxy.configsync.logins import import_file, prepare, run_login


class Command(BaseCommand):
    help = "Log in to a provider account (device flow or PKCE) and store the credential and its token file."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("type", help=f"account type: {', '.join(sorted(auth.LOGINS))}")
        parser.add_argument("--provider", help="the provider to attach to (default: the only one of the type)")
        parser.add_argument("--name", default="default", help="the credential's name (default: default)")
        parser.add_argument("--no-browser", action="store_true", help="paste the code instead of a loopback callback")
        parser.add_argument("--import", dest="import_file", metavar="FILE", help="take an existing token file")
        parser.add_argument("--method", help="login method (kiro: builder-id, idc or social)")
        parser.add_argument("--start-url", help="IAM Identity Center start URL (kiro idc)")
        parser.add_argument("--port", type=int, default=0, help="loopback callback port (default: any free one)")

    def handle(self, *args: Any, **opts: Any) -> None:
        name = opts["name"]
        try:
            target = prepare(opts["type"], opts["provider"])
            if opts["import_file"]:
                cred = import_file(target, opts["import_file"], name)
            else:
                options = auth.LoginOptions(name=name, no_browser=opts["no_browser"], method=opts["method"],
                                            start_url=opts["start_url"], port=opts["port"])  # fmt: skip
                cred = run_login(target, options, self._show)
        except (AccountError, auth.AuthError, auth.TokenFileError) as exc:
            who = f"{opts['provider'] or opts['type']}/{name}"
            raise CommandError(f"login of {who} failed: {exc}") from None
        self.stdout.write(f"credential {cred.provider.name}/{cred.name} ready")

    def _show(self, prompt: auth.LoginPrompt) -> str | None:
        self.stdout.write(prompt.message)
        self.stdout.flush()
        if not prompt.needs_paste:
            return None
        line = sys.stdin.readline()
        if not line.strip():
            raise auth.AuthError("no code was pasted")
        return line
