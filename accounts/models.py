"""Users and their API keys. Keys are stored only as a prefix and a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models

KEY_PREFIX = "sk-llmp-"


class BudgetPeriod(models.TextChoices):
    NONE = "none", "No reset"
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"


class Limits(models.Model):
    """The limits keys and users both carry; both a key's and its user's apply."""

    rpm = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per minute; empty: unlimited.")
    tpm = models.PositiveIntegerField(null=True, blank=True, help_text="Tokens per minute; empty: unlimited.")
    max_parallel = models.PositiveIntegerField(null=True, blank=True,
                                               help_text="Requests in flight at once; empty: unlimited.")  # fmt: skip
    budget_usd = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True,
                                     help_text="USD per budget period; empty: unlimited.")  # fmt: skip
    budget_period = models.CharField(max_length=10, choices=BudgetPeriod.choices, default=BudgetPeriod.NONE,
                                     help_text="Calendar period in LLMPROXY_TIME_ZONE.")  # fmt: skip

    class Meta:
        abstract = True


#: The limit fields, in the order the API and admin show them.
LIMIT_FIELDS = ("rpm", "tpm", "max_parallel", "budget_usd", "budget_period")


class User(AbstractUser, Limits):
    """A person with API keys. Staff (``is_staff``) see and manage everything."""

    #: Set by staff to restart the user's budget period (as a key's): the user's spend
    #: counts from here while it is later than the calendar start of the current period.
    period_started_at = models.DateTimeField(null=True, blank=True, help_text="Start of the current budget period.")


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKey(Limits):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, db_index=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    allowed_models = models.JSONField(default=list, blank=True, help_text="Empty: every model.")
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked = models.BooleanField(default=False)
    is_admin = models.BooleanField(default=False, help_text="May use the management API, as its owner's role allows.")
    allow_overrides = models.BooleanField(
        default=False, help_text="May send per-request overrides (x-llmproxy-provider, -timeout, -retries)."
    )
    period_started_at = models.DateTimeField(null=True, blank=True, help_text="Start of the current budget period.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or 'unnamed'})"

    def set_key(self, raw: str) -> None:
        self.prefix = raw[: len(KEY_PREFIX) + 4]
        self.key_hash = hash_key(raw)
