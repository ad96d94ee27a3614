"""Admin for providers, credentials, routes, usage, health and config imports.

Secrets are write-only: forms never render a stored secret (blank keeps it), and every
list and page shows them masked. Providers managed by config.yaml can be edited here,
but the next import of the file replaces what the file sets.

Credentials show their routing state (last health probe, live cooldowns from the shared
state store, see ``proxy.serving.routing_state.credential_states``), and staff can end cooldowns from
the credential list, a credential's page or a provider's page.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import UTC
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince

from accounts.admin import StaffAccess
from llmproxy.pricing import lookup

from .admin_config import export_view, import_view
from .admin_logins import login_view
from .configsync.actions import masked_proxy
from .crypto import is_sensitive, mask, masked_mapping
from .jobs.probes import probe_credential
from .models import (
    ConfigImport,
    ConfigVersion,
    Credential,
    HealthStatus,
    ModelRoute,
    Provider,
    ProviderType,
    UsageDaily,
    UsageRecord,
)
from .reports.changelist import KeysetChangeList, ModelFilter, ProviderFilter
from .reports.dashboard import safe_credential_states
from .serving.routing_state import CredentialState
from .serving.state import clear_cooldowns, shares_state

log = logging.getLogger("llmproxy.admin")

SECRET_FIELDS = ("api_key", "access_token", "refresh_token")
#: The usage list's "est." marker says this on hover.
_ESTIMATED = "counted by the gateway's tokenizer: the upstream reported no token counts"

admin.site.site_header = "llmproxy"
admin.site.site_title = "llmproxy admin"
admin.site.index_title = "Gateway administration"


def _unmask(new: Any, old: Any) -> Any:
    """Values sent back exactly as they were shown masked keep the stored value."""
    if isinstance(new, dict) and isinstance(old, dict):
        out = {}
        for key, value in new.items():
            before = old.get(key)
            if isinstance(value, dict):
                out[key] = _unmask(value, before)
            elif isinstance(before, str) and before and value == mask(before) != before and is_sensitive(key):
                out[key] = before
            else:
                out[key] = value
        return out
    return new


class ProviderForm(forms.ModelForm):  # type: ignore[type-arg]
    """Headers and options are shown with secret-looking values masked, and unmasked on save."""

    base_url = forms.URLField(required=False, max_length=500, assume_scheme="https",
                              help_text="Empty: the type's default.")  # fmt: skip

    class Meta:
        model = Provider
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            for name in ("headers", "options"):
                if name in self.fields:
                    self.initial[name] = masked_mapping(getattr(self.instance, name) or {})
            if "proxy" in self.fields:
                self.initial["proxy"] = masked_proxy(self.instance.proxy)

    def clean_proxy(self) -> Any:
        value = self.cleaned_data.get("proxy") or ""
        stored = self.instance.proxy or ""
        return stored if stored and value == masked_proxy(stored) != stored else value

    def clean_headers(self) -> Any:
        return _unmask(self.cleaned_data.get("headers"), self.instance.headers or {})

    def clean_options(self) -> Any:
        return _unmask(self.cleaned_data.get("options"), self.instance.options or {})


def _secret_field(label: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )


class CredentialForm(forms.ModelForm):  # type: ignore[type-arg]
    """Secrets are write-only: a blank field keeps the stored value; "clear" removes it."""

    api_key = _secret_field("API key")
    access_token = _secret_field("Access token")
    refresh_token = _secret_field("Refresh token")
    clear_secrets = forms.MultipleChoiceField(
        label="Clear", required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(f, f.replace("_", " ")) for f in SECRET_FIELDS],
    )  # fmt: skip

    class Meta:
        model = Credential
        exclude = ("extra", *SECRET_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in SECRET_FIELDS:
            stored = getattr(self.instance, name, "") if self.instance.pk else ""
            if name in self.fields:
                self.fields[name].help_text = f"Stored: {mask(stored)}. Blank keeps it." if stored else "Not set."

    def save(self, commit: bool = True) -> Credential:
        credential: Credential = super().save(commit=False)
        clear = set(self.cleaned_data.get("clear_secrets") or ())
        for name in SECRET_FIELDS:
            value = self.cleaned_data.get(name)
            if value:
                setattr(credential, name, value)
            elif name in clear:
                setattr(credential, name, "")
        if commit:
            credential.save()
            self.save_m2m()
        return credential


def masked_secret(obj: Credential) -> str:
    return mask(obj.api_key or obj.access_token or obj.refresh_token) or "—"


def state_table(states: list[CredentialState], *, show_provider: bool = False, error: str = "") -> SafeString:
    """Credentials' probe and cooldowns as a table; its clear buttons submit the page's "llp-clear" form."""
    context = {"states": states, "show_provider": show_provider, "state_error": error, "shares_state": shares_state()}
    return render_to_string("admin/llmproxy/credential_states.html", context)


class _States:
    """The credentials' state, read once per page (one scan of the store, not one per row)."""

    def __init__(self) -> None:
        self._by_id: dict[int, CredentialState] | None = None

    def get(self, pk: int) -> CredentialState | None:
        if self._by_id is None:
            self._by_id = {s.credential_id: s for s in safe_credential_states()[0]}
        return self._by_id.get(pk)


def _state_columns(states: _States) -> tuple[Callable[[Credential], str], ...]:
    """Changelist columns over one page's ``_States``."""

    @admin.display(description="state")
    def state(obj: Credential) -> str:
        s = states.get(obj.pk)
        if s is None:
            return "—"
        return format_html('<span class="llp-state llp-{}" title="{}">{}</span>', s.status, s.error, s.status)

    @admin.display(description="last probe")
    def probe(obj: Credential) -> str:
        s = states.get(obj.pk)
        if s is None or s.checked_at is None:
            return "never"
        latency = f", {s.latency_ms} ms" if s.latency_ms is not None else ""
        return f"{s.health}{latency}, {timesince(s.checked_at)} ago"

    @admin.display(description="cooldowns")
    def cooldowns(obj: Credential) -> str:
        s = states.get(obj.pk)
        if s is None or not s.cooldowns:
            return "—"
        rows = ((cd.model or "all models", cd.reason, cd.failures,
                 "half-open" if cd.half_open else f"{cd.seconds_left:.0f} s left") for cd in s.cooldowns)  # fmt: skip
        return format_html_join(mark_safe("<br>"), "{}: {}, failures {}, {}", rows)

    return state, probe, cooldowns


def _clear_requested(post: Any) -> int:
    """End the cooldowns a clear button asked for: ``all``, ``provider`` ids or ``credential`` ids."""
    if post.get("all"):
        return clear_cooldowns()
    ids = [int(v) for v in post.getlist("credential") if v.isdigit()]
    providers = [int(v) for v in post.getlist("provider") if v.isdigit()]
    chosen = Credential.objects.filter(Q(pk__in=ids) | Q(provider_id__in=providers)).values_list("pk", flat=True)
    return sum(clear_cooldowns(pk) for pk in chosen)


def _ended(n: int) -> str:
    return f"Ended {n} cooldown{'s' if n != 1 else ''}."


class CredentialInline(StaffAccess, admin.TabularInline):  # type: ignore[type-arg]
    model = Credential
    form = CredentialForm
    fields = ("name", "enabled", "weight", "api_key", "file", "secret")
    readonly_fields = ("secret",)
    extra = 0
    show_change_link = True

    @admin.display(description="stored secret")
    def secret(self, obj: Credential) -> str:
        return masked_secret(obj) if obj.pk else "—"


class ModelRouteInline(StaffAccess, admin.TabularInline):  # type: ignore[type-arg]
    model = ModelRoute
    fields = ("name", "upstream", "enabled", "input_price", "output_price", "cached_input_price")
    extra = 0


@admin.register(Provider)
class ProviderAdmin(StaffAccess, admin.ModelAdmin):  # type: ignore[type-arg]
    form = ProviderForm
    list_display = ("name", "type_label", "enabled", "priority", "weight", "n_credentials", "n_routes", "from_config",
                    "updated_at")  # fmt: skip
    list_filter = ("type", "enabled", "auth_type", "from_config")
    search_fields = ("name", "base_url")
    fieldsets = (
        (None, {"fields": ("name", "type", "enabled", "base_url", "auth_type")}),
        ("Routing", {"fields": ("priority", "weight", "cooldown_seconds", "rpm", "tpm")}),
        ("Advanced", {"fields": ("headers", "options", "proxy"), "classes": ("collapse",)}),
        ("Origin", {"fields": ("from_config", "created_at", "updated_at")}),
    )
    readonly_fields = ("from_config", "created_at", "updated_at", "credential_state")
    inlines = (CredentialInline, ModelRouteInline)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        return fieldsets if obj is None else (*fieldsets, ("Credential state", {"fields": ("credential_state",)}))

    @admin.display(description="type", ordering="type")
    def type_label(self, obj: Provider) -> str | SafeString:
        """The type's name; the offline demo provider is marked so nobody takes it for a model."""
        if obj.type == ProviderType.DEMO:
            return format_html('<span class="llp-state llp-demo">{}</span> {}', "demo", "offline, scripted replies")
        return obj.get_type_display()

    @admin.display(description="credentials")
    def credential_state(self, obj: Provider) -> SafeString:
        states, error = safe_credential_states()
        return state_table([s for s in states if s.provider == obj.name], error=error)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Provider]:
        qs: QuerySet[Provider] = super().get_queryset(request)
        return qs.annotate(_credentials=Count("credentials", distinct=True), _routes=Count("routes", distinct=True))

    @admin.display(description="credentials", ordering="_credentials")
    def n_credentials(self, obj: Any) -> int:
        return int(obj._credentials)

    @admin.display(description="models", ordering="_routes")
    def n_routes(self, obj: Any) -> int:
        return int(obj._routes)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:  # fmt: skip
        if request.method == "GET" and Provider.objects.filter(pk=object_id, from_config=True).exists():
            messages.warning(request, "This provider is managed by the config file: its next import replaces edits.")
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Credential)
class CredentialAdmin(StaffAccess, admin.ModelAdmin):  # type: ignore[type-arg]
    form = CredentialForm
    # No provider column: the first ("provider/name") says it, and the state columns need the width at 1280 px.
    list_display = ("__str__", "name", "enabled", "weight", "secret", "file", "expires_at")
    list_filter = ("enabled", "provider__type", "provider")
    search_fields = ("name", "provider__name", "file")
    list_select_related = ("provider",)
    readonly_fields = ("state_detail", "extra_masked", "created_at", "updated_at")
    actions = ("clear_selected_cooldowns", "test_selected")
    fieldsets = (
        (None, {"fields": ("provider", "name", "enabled", "weight")}),
        ("Secrets", {"fields": ("api_key", "access_token", "refresh_token", "clear_secrets", "expires_at", "file")}),
        ("Details", {"fields": ("extra_masked", "created_at", "updated_at"), "classes": ("collapse",)}),
    )

    @admin.display(description="secret")
    def secret(self, obj: Credential) -> str:
        return masked_secret(obj)

    @admin.display(description="extra")
    def extra_masked(self, obj: Credential) -> str:
        return str(masked_mapping(obj.extra or {}))

    def get_list_display(self, request: HttpRequest) -> Any:
        return (*super().get_list_display(request), *_state_columns(_States()))

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        return fieldsets if obj is None else (("State", {"fields": ("state_detail",)}), *fieldsets)

    @admin.display(description="state")
    def state_detail(self, obj: Credential) -> SafeString:
        states, error = safe_credential_states()
        return state_table([s for s in states if s.credential_id == obj.pk], error=error)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.clear_cooldowns_view)
        login = self.admin_site.admin_view(functools.partial(login_view, self.admin_site))
        test = self.admin_site.admin_view(self.test_view)
        return [path("clear-cooldowns/", view, name="proxy_credential_clear_cooldowns"),
                path("test/", test, name="proxy_credential_test"),
                path("login/", login, name="proxy_credential_login"), *super().get_urls()]  # fmt: skip

    def test_view(self, request: HttpRequest) -> HttpResponse:
        """POST ``credential=<id>``: one real upstream call, its result and latency as a message,
        back to ``next`` (the "Test" buttons of the dashboard, provider and credential pages)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        raw = request.POST.get("credential", "")
        cred = Credential.objects.select_related("provider").filter(pk=int(raw)).first() if raw.isdigit() else None
        if cred is None:
            messages.error(request, "No such credential to test.")
        else:
            _report_test(request, cred)
        target = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
            target = reverse("admin:proxy_credential_changelist")
        return HttpResponseRedirect(target)

    def clear_cooldowns_view(self, request: HttpRequest) -> HttpResponse:
        """POST ``all=1``, ``provider=<id>`` or ``credential=<id>``; back to ``next``."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        try:
            messages.success(request, _ended(_clear_requested(request.POST)))
        except Exception as exc:  # the shared store is down: say so instead of a 500
            log.warning("clearing cooldowns failed: %s", exc)
            messages.error(request, f"Could not clear cooldowns: {type(exc).__name__}: {exc}")
        target = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
            target = reverse("admin:proxy_credential_changelist")
        return HttpResponseRedirect(target)

    @admin.action(description="Clear cooldowns of the selected credentials")
    def clear_selected_cooldowns(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        messages.success(request, _ended(sum(clear_cooldowns(pk) for pk in queryset.values_list("pk", flat=True))))

    @admin.action(description="Test the selected credentials (one real upstream call each)")
    def test_selected(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        """The same probe as ``POST /api/v1/credentials/{id}/test``: the result and latency per credential."""
        for cred in queryset.select_related("provider")[:MAX_TESTS]:
            _report_test(request, cred)


def _report_test(request: HttpRequest, cred: Credential) -> None:
    """Probe ``cred`` once (a real upstream call) and say how it went, with the latency."""
    result = probe_credential(cred)
    status = f"HTTP {result.http_status}" if result.http_status is not None else "no answer"
    if result.healthy:
        messages.success(request, f"{cred}: works ({status}, {result.latency_ms} ms, model {result.model})")
    else:
        messages.error(request, f"{cred}: failed ({status}, {result.latency_ms} ms): {result.error}")


#: Credentials one "Test" action probes (each is a real upstream call, one after another).
MAX_TESTS = 10


@admin.register(ModelRoute)
class ModelRouteAdmin(StaffAccess, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "provider", "upstream_name", "enabled", "input_price", "output_price", "cached_input_price",
                    "priced_by")  # fmt: skip
    list_filter = ("enabled", "provider")

    @admin.display(description="price from")
    def priced_by(self, obj: ModelRoute) -> str:
        """Where the route's price comes from; without one its usage records no cost."""
        if obj.input_price is not None or obj.output_price is not None:
            return "this route"
        entry = lookup(obj.upstream_name)
        if entry is not None:
            return f"catalog ({entry.source}, {entry.taken})"
        return "NO PRICE: cost_usd is null"

    search_fields = ("name", "upstream", "provider__name")
    list_select_related = ("provider",)


class ReadOnlyAdmin(StaffAccess, admin.ModelAdmin):  # type: ignore[type-arg]
    """Rows written by the gateway and its jobs: to look at, not to edit."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StatusClassFilter(admin.SimpleListFilter):
    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("ok", "success (2xx)"), ("client", "client error (4xx)"), ("upstream", "upstream/server error (5xx)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        ranges = {"ok": (200, 299), "client": (400, 499), "upstream": (500, 599)}
        if self.value() in ranges:
            return queryset.filter(status_code__range=ranges[str(self.value())])
        return queryset


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    """Keyset pages, newest first, never counted (``reports.changelist``): as fast deep in as at the top."""

    # Short columns so the list fits a laptop screen; every field is on the record's own page.
    list_display = ("when", "short_id", "user_name", "key_shown", "model_name", "provider_name", "status",
                    "tokens", "cost", "latency")  # fmt: skip
    list_filter = (StatusClassFilter, ("created_at", admin.DateFieldListFilter), ModelFilter, ProviderFilter, "stream")
    search_fields = ("=request_id",)
    list_select_related = ("user",)
    show_full_result_count = False
    sortable_by = ()

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[KeysetChangeList]:
        return KeysetChangeList

    @admin.display(description="time (UTC)")
    def when(self, obj: UsageRecord) -> SafeString:
        at = obj.created_at.astimezone(UTC)
        return format_html("{}<br>{}", at.strftime("%Y-%m-%d"), at.strftime("%H:%M:%S"))

    @admin.display(description="request id")
    def short_id(self, obj: UsageRecord) -> SafeString:
        return format_html('<span title="{}">{}…</span>', obj.request_id, obj.request_id[:8])

    @admin.display(description="user")
    def user_name(self, obj: UsageRecord) -> SafeString:
        name = obj.user.username if obj.user_id and obj.user else "—"
        return format_html('<span class="llp-cut" title="{}">{}</span>', name, name)

    @admin.display(description="model")
    def model_name(self, obj: UsageRecord) -> SafeString:
        return format_html('<span class="llp-cut" title="{}">{}</span>', obj.model, obj.model)

    @admin.display(description="provider")
    def provider_name(self, obj: UsageRecord) -> SafeString:
        return format_html('<span class="llp-cut" title="{}">{}</span>', obj.provider, obj.provider)

    @admin.display(description="status")
    def status(self, obj: UsageRecord) -> int:
        return obj.status_code

    @admin.display(description="latency (ms)")
    def latency(self, obj: UsageRecord) -> str:
        return f"{obj.latency_ms:,}"

    @admin.display(description="key")
    def key_shown(self, obj: UsageRecord) -> str:
        return obj.key_prefix or "—"

    @admin.display(description="USD")
    def cost(self, obj: UsageRecord) -> str:
        return "—" if obj.cost_usd is None else f"{obj.cost_usd:.4f}"

    @admin.display(description="tokens in/out")
    def tokens(self, obj: UsageRecord) -> SafeString:
        """The counts, marked "est." where some are the gateway's own tokenizer's (the upstream gave none)."""
        counts = f"{obj.prompt_tokens:,} / {obj.completion_tokens:,}"
        if obj.tokens_estimated:
            return format_html('{} <small class="llp-est" title="{}">est.</small>', counts, _ESTIMATED)
        return format_html("{}", counts)


@admin.register(UsageDaily)
class UsageDailyAdmin(ReadOnlyAdmin):
    list_display = ("day", "user_id", "key_id", "model", "provider", "requests", "errors", "prompt_tokens",
                    "completion_tokens", "cached_tokens", "cost_usd")  # fmt: skip
    list_filter = ("provider", "model")
    search_fields = ("model", "provider")
    date_hierarchy = "day"


@admin.register(HealthStatus)
class HealthStatusAdmin(ReadOnlyAdmin):
    list_display = ("credential", "state", "latency_ms", "consecutive_failures", "checked_at", "error")
    list_filter = ("state", "credential__provider")
    search_fields = ("credential__name", "credential__provider__name", "error")
    list_select_related = ("credential__provider",)


@admin.register(ConfigImport)
class ConfigImportAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "source", "ok", "summary")
    list_filter = ("ok",)
    search_fields = ("source", "content_hash")
    fields = ("created_at", "source", "ok", "error_list", "changes", "content_hash")
    readonly_fields = fields

    def get_urls(self) -> list[URLPattern]:
        site = self.admin_site
        imp = site.admin_view(functools.partial(import_view, site))
        exp = site.admin_view(functools.partial(export_view, site))
        return [path("import/", imp, name="proxy_configimport_import"),
                path("export/", exp, name="proxy_configimport_export"), *super().get_urls()]  # fmt: skip

    @admin.display(description="result")
    def summary(self, obj: ConfigImport) -> str:
        if not obj.ok:
            count = len(obj.errors or [])
            first = _error_line((obj.errors or [{}])[0])
            return f"rejected, {count} error{'s' if count != 1 else ''}: {first}" + (" …" if count > 1 else "")
        c = obj.changes or {}
        return (f"{len(c.get('created', []))} created, {len(c.get('updated', []))} updated, "
                f"{len(c.get('deleted', []))} deleted")  # fmt: skip

    @admin.display(description="errors")
    def error_list(self, obj: ConfigImport) -> str:
        if not obj.errors:
            return "—"
        return format_html_join("", "<div><code>{}</code></div>", ((_error_line(e),) for e in obj.errors))


def _error_line(error: Any) -> str:
    if isinstance(error, dict):
        path, reason = error.get("path", ""), error.get("reason", "")
        return f"{path}: {reason}" if path else str(reason)
    return str(error)


@admin.register(ConfigVersion)
class ConfigVersionAdmin(ReadOnlyAdmin):
    list_display = ("id", "version", "updated_at")
