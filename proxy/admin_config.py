"""The admin's config.yaml import and export.

Import takes pasted text or an uploaded file, checks it with the same validator as
``manage.py import_config`` and the management API, and either only checks it or applies
it (recorded as a ``ConfigImport``). Errors come back beside the text, each on the line
of the file it is about. Export downloads the database's providers, credentials and
routes as config.yaml with secrets redacted; importing that file keeps the stored secrets.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from llmproxy.config import ConfigError, ConfigIssue, content_hash, loads

from .configsync import apply
from .configsync.lines import LineIssue, issue_lines

#: Bigger than any real config; a paste or an upload past it is refused, not parsed.
MAX_BYTES = 1_000_000


def _staff(request: HttpRequest) -> None:
    if not (request.user.is_active and request.user.is_staff):
        raise PermissionDenied


def export_view(site: AdminSite, request: HttpRequest) -> HttpResponse:
    """config.yaml as a download, secrets redacted."""
    _staff(request)
    response = HttpResponse(apply.export_config(with_secrets=False), content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="config.yaml"'
    return response


def _text(request: HttpRequest) -> tuple[str, str]:
    """The submitted config and an error (too big, not UTF-8)."""
    upload = request.FILES.get("file")
    if upload is not None:
        if upload.size is not None and upload.size > MAX_BYTES:
            return "", f"the file is over {MAX_BYTES // 1000} kB"
        try:
            return upload.read().decode("utf-8"), ""
        except UnicodeDecodeError:
            return "", "the file is not UTF-8 text"
    text = request.POST.get("text", "").replace("\r\n", "\n")
    if len(text.encode()) > MAX_BYTES:
        return "", f"the text is over {MAX_BYTES // 1000} kB"
    return text, ""


def check(text: str, source: str, *, apply_it: bool) -> tuple[list[LineIssue], dict[str, Any] | None]:
    """Validate (and apply) ``text``: its issues with their lines, or the changes made (None on a check)."""
    try:
        config = loads(text, source)
    except ConfigError as exc:
        if apply_it:
            apply.record_rejection(source, exc.issues, content_hash(text))
        return issue_lines(text, exc.issues), None
    if not apply_it:
        return [], None
    result = apply.apply_config(config, source)
    if not result.ok:
        issues = [ConfigIssue(e.get("path", ""), e.get("reason", "")) for e in result.errors]
        return issue_lines(text, issues), None
    return [], dict(result.changes)


def import_view(site: AdminSite, request: HttpRequest) -> HttpResponse:
    """GET: the form (prefilled with the current export); POST: check, or import."""
    _staff(request)
    issues: list[LineIssue] = []
    error = ""
    checked = False
    if request.method == "POST":
        text, error = _text(request)
        apply_it = "import" in request.POST
        if not error:
            source = f"admin:{request.user.get_username()}"
            issues, changes = check(text, source, apply_it=apply_it)
            if apply_it and not issues:
                c = changes or {}
                messages.success(request, f"Imported: {len(c.get('created', []))} created, "
                                          f"{len(c.get('updated', []))} updated, {len(c.get('deleted', []))} deleted, "
                                          f"{c.get('unchanged', 0)} unchanged.")  # fmt: skip
                for warning in c.get("warnings", []):
                    messages.warning(request, warning)
                return HttpResponseRedirect(reverse("admin:proxy_configimport_changelist"))
            checked = not issues
    else:
        text = apply.export_config(with_secrets=False)
    by_line: dict[int, list[LineIssue]] = {}
    for issue in issues:
        if issue.line:
            by_line.setdefault(issue.line, []).append(issue)
    lines = [(n, line, by_line.get(n, [])) for n, line in enumerate(text.split("\n"), start=1)]
    context = {**site.each_context(request), "title": "Import config.yaml", "text": text, "issues": issues,
               "lines": lines if issues else [], "unplaced": [i for i in issues if not i.line], "error": error,
               "checked": checked}  # fmt: skip
    return TemplateResponse(request, "admin/llmproxy/config_import.html", context)
