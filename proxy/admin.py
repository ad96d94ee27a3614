"""Admin for providers, credentials, routes, usage, health and config imports.

Secrets are write-only: forms never render a stored secret (blank keeps it), and every
list and page shows them masked. Providers managed by config.yaml can be edited here,
but the next import of the file replaces what the file sets.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html_join

from accounts.admin import StaffAccess

from .crypto import mask
from .models import (
    ConfigImport,
    ConfigVersion,
    Credential,
    HealthStatus,
    ModelRoute,
    Provider,
    UsageDaily,
    UsageRecord,
)
from .services import is_sensitive, masked_mapping

SECRET_FIELDS = ("api_key", "access_token", "refresh_token")

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
    list_display = ("name", "type", "enabled", "priority", "weight", "n_credentials", "n_routes", "from_config",
                    "updated_at")  # fmt: skip
    list_filter = ("type", "enabled", "auth_type", "from_config")
    search_fields = ("name", "base_url")
    readonly_fields = ("from_config", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "type", "enabled", "base_url", "auth_type")}),
        ("Routing", {"fields": ("priority", "weight", "cooldown_seconds", "rpm", "tpm")}),
        ("Advanced", {"fields": ("headers", "options"), "classes": ("collapse",)}),
        ("Origin", {"fields": ("from_config", "created_at", "updated_at")}),
    )
    inlines = (CredentialInline, ModelRouteInline)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Provider]:
        return (
            super()
            .get_queryset(request)
            .annotate(_credentials=Count("credentials", distinct=True), _routes=Count("routes", distinct=True))
        )

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
    list_display = ("__str__", "provider", "name", "enabled", "weight", "secret", "file", "expires_at", "health_state")
    list_filter = ("enabled", "provider__type", "provider")
    search_fields = ("name", "provider__name", "file")
    list_select_related = ("provider", "health")
    readonly_fields = ("extra_masked", "created_at", "updated_at")
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

    @admin.display(description="health")
    def health_state(self, obj: Credential) -> str:
        try:
            return str(obj.health.state)  # type: ignore[attr-defined]
        except HealthStatus.DoesNotExist:
            return "unknown"


@admin.register(ModelRoute)
class ModelRouteAdmin(StaffAccess, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "provider", "upstream_name", "enabled", "input_price", "output_price", "cached_input_price")
    list_filter = ("enabled", "provider")
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
    list_display = ("created_at", "request_id", "user", "key_prefix", "ingress", "model", "provider", "credential",
                    "stream", "status_code", "prompt_tokens", "completion_tokens", "cost_usd", "latency_ms")  # fmt: skip
    list_filter = (StatusClassFilter, "status_code", "stream", "ingress", "model", "provider", "error_type")
    search_fields = ("=request_id", "^key_prefix")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    show_full_result_count = False


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
