"""Providers, credentials, model routes, usage and the shared config version."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from llmproxy.http import parse_proxy

from .fields import EncryptedJSONField, EncryptedTextField


class ProviderType(models.TextChoices):
    CLAUDE = "claude", "Anthropic Claude"
    GEMINI = "gemini", "Google Gemini"
    OPENAI = "openai", "OpenAI"
    COPILOT = "copilot", "GitHub Copilot"
    KIRO = "kiro", "Kiro (AWS CodeWhisperer)"
    OPENROUTER = "openrouter", "OpenRouter"
    TOGETHER = "together", "Together"
    FIREWORKS = "fireworks", "Fireworks"
    OPENAI_COMPATIBLE = "openai-compatible", "OpenAI-compatible"
    DEMO = "demo", "Demo (offline, scripted replies)"


class AuthType(models.TextChoices):
    API_KEY = "api_key", "API key"
    OAUTH = "oauth", "OAuth"
    DEVICE_FLOW = "device_flow", "Device flow"


def validate_proxy(value: str) -> None:
    """An outbound proxy is an http:// proxy URL (its password is never echoed back)."""
    if not value:
        return
    try:
        parse_proxy(value)
    except ValueError:
        raise ValidationError("must be an http:// proxy URL, http://[user:password@]host:port") from None


class Provider(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    type = models.CharField(max_length=32, choices=ProviderType.choices)
    enabled = models.BooleanField(default=True)
    base_url = models.URLField(max_length=500, blank=True, help_text="Empty: the type's default.")
    auth_type = models.CharField(max_length=16, choices=AuthType.choices, default=AuthType.API_KEY)
    priority = models.IntegerField(default=0, help_text="Higher is tried first.")
    weight = models.PositiveIntegerField(default=1)
    cooldown_seconds = models.FloatField(default=60.0, help_text="After a 429 without Retry-After.")
    rpm = models.PositiveIntegerField(null=True, blank=True)
    tpm = models.PositiveIntegerField(null=True, blank=True)
    #: Encrypted, like every field that may hold a secret (an Authorization header, a client secret).
    headers = EncryptedJSONField()
    options = EncryptedJSONField()
    #: Encrypted: a proxy URL may carry a password.
    proxy = EncryptedTextField(blank=True, validators=[validate_proxy],
                               help_text="Outbound proxy, http://[user:password@]host:port. "
                                         "Empty: the environment's HTTPS_PROXY / NO_PROXY.")  # fmt: skip
    from_config = models.BooleanField(default=False, editable=False, help_text="Created by import_config.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "name"]

    def __str__(self) -> str:
        return self.name


class Credential(models.Model):
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="credentials")
    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    weight = models.PositiveIntegerField(default=1)
    api_key = EncryptedTextField(blank=True)
    access_token = EncryptedTextField(blank=True)
    refresh_token = EncryptedTextField(blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    file = models.CharField(max_length=255, blank=True, help_text="A token file in the auth dir.")
    extra = EncryptedJSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider__name", "name"]
        constraints = [models.UniqueConstraint(fields=["provider", "name"], name="uniq_credential_name")]

    def __str__(self) -> str:
        return f"{self.provider.name}/{self.name}"


class ModelRoute(models.Model):
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="routes")
    name = models.CharField(max_length=200, help_text="The public model name clients ask for.")
    upstream = models.CharField(max_length=200, blank=True, help_text="Sent to the provider; empty: the public name.")
    enabled = models.BooleanField(default=True)
    input_price = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True, help_text="USD / 1M tokens"
    )
    output_price = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    cached_input_price = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)

    class Meta:
        ordering = ["name", "provider__name"]
        constraints = [models.UniqueConstraint(fields=["provider", "name"], name="uniq_route_per_provider")]

    def __str__(self) -> str:
        return f"{self.name} → {self.provider.name}:{self.upstream_name}"

    @property
    def upstream_name(self) -> str:
        return self.upstream or self.name


class UsageRecord(models.Model):
    """One row per request, success or failure; written by the usage ingester from the journal."""

    #: Unique: the ingester inserts with ON CONFLICT DO NOTHING, so a replayed batch adds nothing.
    request_id = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, db_constraint=False
    )
    key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, db_constraint=False)
    key_prefix = models.CharField(max_length=16, blank=True)
    ingress = models.CharField(max_length=32)
    model = models.CharField(max_length=200, blank=True)
    upstream_model = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=100, blank=True)
    credential = models.CharField(max_length=100, blank=True)
    stream = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=64, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    #: Prompt-cache reads (OpenAI ``cached_tokens``, Anthropic ``cache_read_input_tokens``,
    #: Gemini ``cachedContentTokenCount``) and writes (Anthropic ``cache_creation_input_tokens``).
    cached_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    #: Some token counts are the gateway's own (its tokenizer): the upstream reported none
    #: (Kiro's output always, a prompt without a count, a stream without usage). ``Usage.estimated``.
    tokens_estimated = models.BooleanField(default=False)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    ttfb_ms = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    #: Staff only: which upstream failed how, in its own words (scrubbed of secrets).
    error_detail = models.TextField(blank=True, default="")
    #: The per-request overrides the call used (INTERFACE.md section 12), e.g. ``{"provider": "b"}``.
    overrides = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The usage lists page by (created_at, id), newest first: see proxy.reports.keyset.
            models.Index(fields=["created_at", "id"], name="usage_created_id"),
            models.Index(fields=["user", "created_at"]),
            models.Index(fields=["key", "created_at"]),
            models.Index(fields=["model", "created_at"]),
            models.Index(fields=["provider", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} {self.status_code}"


class ConfigVersion(models.Model):
    """One row: bumped after every config change so each process rebuilds its snapshot."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)


class HealthState(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    HEALTHY = "healthy", "Healthy"
    UNHEALTHY = "unhealthy", "Unhealthy"


class HealthStatus(models.Model):
    """The last probe of one credential (written by the health-check job)."""

    credential = models.OneToOneField(Credential, on_delete=models.CASCADE, related_name="health")
    state = models.CharField(max_length=16, choices=HealthState.choices, default=HealthState.UNKNOWN)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "health statuses"

    def __str__(self) -> str:
        return f"{self.credential}: {self.state}"


class UsageDaily(models.Model):
    """Rollup of UsageRecord: day x user x key x model x provider, upserted by a job.

    ``user_id``/``key_id`` are plain integers with 0 for "none" so the unique constraint
    also holds for anonymous rows (NULLs never conflict in SQL).
    """

    day = models.DateField()
    user_id = models.BigIntegerField(default=0)
    key_id = models.BigIntegerField(default=0)
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=100)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=16, decimal_places=8, default=0)

    class Meta:
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(fields=["day", "user_id", "key_id", "model", "provider"], name="uniq_usage_daily")
        ]
        indexes = [models.Index(fields=["user_id", "day"]), models.Index(fields=["key_id", "day"])]
        verbose_name_plural = "usage daily"

    def __str__(self) -> str:
        return f"{self.day} {self.model} {self.requests}"


class UsageRollupDay(models.Model):
    """Which days the rollups cover, and up to when: rows of ``day`` before ``rolled_until`` are in them.

    Today's rollup is rewritten by every run of the rollup job, up to a few minutes ago; the
    reports read the rest of today from the raw rows (``proxy.reports.queries.raw_spans``).
    """

    day = models.DateField(unique=True)
    rolled_until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.day} until {self.rolled_until}"


class UsageLatencyDaily(models.Model):
    """Rollup of UsageRecord latencies: day x model x provider x metric x bucket, written with ``UsageDaily``.

    A histogram of the successful requests' ``latency_ms`` (metric ``latency``) and
    ``ttfb_ms`` (metric ``ttfb``) over the fixed buckets of ``proxy.reports.buckets``;
    ``sum_ms`` gives exact averages, the buckets percentiles within one bucket's width.
    """

    day = models.DateField()
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=100)
    metric = models.CharField(max_length=8)
    bucket = models.PositiveSmallIntegerField()
    count = models.PositiveIntegerField(default=0)
    sum_ms = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "model", "provider", "metric", "bucket"], name="uniq_usage_latency")
        ]
        verbose_name_plural = "usage latency daily"


class UsageCredentialDaily(models.Model):
    """Rollup of UsageRecord per day x provider x credential (the dashboard's credential table)."""

    day = models.DateField()
    provider = models.CharField(max_length=100)
    credential = models.CharField(max_length=100)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=16, decimal_places=8, default=0)
    #: Successful requests and their summed latency, for the average.
    ok_requests = models.PositiveIntegerField(default=0)
    ok_latency_ms = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "provider", "credential"], name="uniq_usage_credential")]
        verbose_name_plural = "usage credential daily"


class UsageErrorDaily(models.Model):
    """Rollup of failed UsageRecords: day x model x provider x status x error type."""

    day = models.DateField()
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=100)
    status_code = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=64)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "model", "provider", "status_code", "error_type"], name="uniq_usage_error"
            )
        ]
        verbose_name_plural = "usage errors daily"


class UsageHourly(models.Model):
    """``UsageDaily`` per hour (UTC), for the last few days only: the 24 h dashboard's grain.

    Written by the rollup job with ``UsageRollupHour``; hours older than
    ``proxy.jobs.rollups.HOURLY_KEEP`` are pruned (the daily rollups keep their totals).
    """

    hour = models.DateTimeField()
    user_id = models.BigIntegerField(default=0)
    key_id = models.BigIntegerField(default=0)
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=100)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=16, decimal_places=8, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hour", "user_id", "key_id", "model", "provider"], name="uniq_usage_hourly")
        ]
        verbose_name_plural = "usage hourly"


class UsageRollupHour(models.Model):
    """``UsageRollupDay`` per hour: rows of ``hour`` before ``rolled_until`` are in the hourly rollups."""

    hour = models.DateTimeField(unique=True)
    rolled_until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.hour} until {self.rolled_until}"


class UsageLatencyHourly(models.Model):
    """``UsageLatencyDaily`` per hour: latency and TTFB histograms per hour x model x provider."""

    hour = models.DateTimeField()
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=100)
    metric = models.CharField(max_length=8)
    bucket = models.PositiveSmallIntegerField()
    count = models.PositiveIntegerField(default=0)
    sum_ms = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "model", "provider", "metric", "bucket"], name="uniq_usage_latency_hourly"
            )
        ]
        verbose_name_plural = "usage latency hourly"


class UsageCredentialHourly(models.Model):
    """``UsageCredentialDaily`` per hour x provider x credential."""

    hour = models.DateTimeField()
    provider = models.CharField(max_length=100)
    credential = models.CharField(max_length=100)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=16, decimal_places=8, default=0)
    ok_requests = models.PositiveIntegerField(default=0)
    ok_latency_ms = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hour", "provider", "credential"], name="uniq_usage_credential_hourly")
        ]
        verbose_name_plural = "usage credential hourly"


class UsageErrorHourly(models.Model):
    """``UsageErrorDaily`` per hour x model x provider x status x error type."""

    hour = models.DateTimeField()
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=100)
    status_code = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=64)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "model", "provider", "status_code", "error_type"], name="uniq_usage_error_hourly"
            )
        ]
        verbose_name_plural = "usage errors hourly"


class ConfigImport(models.Model):
    """Each attempt to apply a config file (command, watcher, API): shown in the admin."""

    created_at = models.DateTimeField(auto_now_add=True)
    source = models.CharField(max_length=500)
    ok = models.BooleanField()
    errors = models.JSONField(default=list, blank=True)
    content_hash = models.CharField(max_length=64, blank=True)
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.source} {'ok' if self.ok else 'rejected'}"


class LoginSession(models.Model):
    """An admin account login in progress, shared by every process that serves the admin.

    The process that started it runs the flow and writes its progress here (``alive_at``
    is its heartbeat); any process shows it and takes a pasted code (kept encrypted until
    the runner consumes it).
    """

    id = models.CharField(primary_key=True, max_length=32)
    provider_type = models.CharField(max_length=32)
    name = models.CharField(max_length=100)
    state = models.CharField(max_length=16, default="starting")  # starting | waiting | done | failed
    prompt = models.JSONField(null=True, blank=True)
    message = models.TextField(blank=True)
    pasted = EncryptedTextField(blank=True)
    credential = models.ForeignKey(Credential, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    alive_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.provider_type} login of {self.name}: {self.state}"
