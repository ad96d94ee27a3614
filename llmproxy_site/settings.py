"""Django settings, all from the environment (see docs/configuration.md).

Embedded profile (nothing set): SQLite in var/, in-process cache and channel layer,
Celery on an embedded filesystem broker. Production: DATABASE_URL (PostgreSQL via
psycopg 3) and REDIS_URL (cache, channel layer, shared state, Celery broker).
"""

from __future__ import annotations

import os
from typing import Any

import dj_database_url

from .env import BASE_DIR, VAR_DIR, env_bool, env_list, generated_secret
from .logsetup import logging_dict, logging_section
from .remote_access import allow_remote_setting

SECRET_KEY = generated_secret("DJANGO_SECRET_KEY", "secret_key")
LLMPROXY_ENCRYPTION_KEYS = generated_secret("LLMPROXY_ENCRYPTION_KEY", "encryption_key", make="fernet").split(",")
DEBUG = env_bool("DJANGO_DEBUG")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = [f"http://{h}" for h in ALLOWED_HOSTS if h != "*"] + [
    f"https://{h}" for h in ALLOWED_HOSTS if h != "*"
]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "ninja",
    "django_celery_beat",
    "accounts",
    "proxy",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # management.allow_remote: /api/v1/ and /admin/ for loopback clients only unless set.
    "llmproxy_site.remote_access.LocalManagementOnly",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "llmproxy_site.urls"
ASGI_APPLICATION = "llmproxy_site.asgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "/accounts/login/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'llmproxy.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so the live server thread in tests shares the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
elif DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # For the report pages (docs/benchmarks.md): JIT compiles each report query for 15-130 ms
    # and wins back less at these sizes, and 4 MB of work_mem (the default) makes a grouping
    # of a day's rows sort on disk instead of hashing in memory. An ?options= in
    # DATABASE_URL replaces this.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", "-c jit=off -c work_mem=32MB")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL") or None
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Celery: Redis when configured, else an embedded filesystem broker under var/.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL or "filesystem://"
CELERY_EMBEDDED_BROKER = CELERY_BROKER_URL == "filesystem://"
if CELERY_EMBEDDED_BROKER:
    _broker_dir = VAR_DIR / "celery-broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(VAR_DIR / "celery-processed"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"

LLMPROXY: dict[str, Any] = {
    "CONFIG": os.environ.get("LLMPROXY_CONFIG") or None,
    "MANAGEMENT_ALLOW_REMOTE": allow_remote_setting(os.environ.get("LLMPROXY_CONFIG") or None),
    # /metrics: with a token, only "Authorization: Bearer <token>" reads it (from anywhere);
    # without one, only loopback clients do, unless LLMPROXY_METRICS_ALLOW_REMOTE=true.
    "METRICS_TOKEN": os.environ.get("LLMPROXY_METRICS_TOKEN", ""),
    "METRICS_ALLOW_REMOTE": os.environ.get("LLMPROXY_METRICS_ALLOW_REMOTE", "").strip().lower()
    in ("1", "true", "yes", "on"),
    "AUTH_DIR": os.environ.get("LLMPROXY_AUTH_DIR", "auths"),
    "MAX_BODY_BYTES": int(os.environ.get("LLMPROXY_MAX_BODY_BYTES", str(10 * 1024 * 1024))),
    # How often each serving process checks the shared config version (seconds).
    "RELOAD_POLL_INTERVAL": float(os.environ.get("LLMPROXY_RELOAD_POLL_INTERVAL", "0.25")),
    # The usage journal (default: usage-journal/ in the var dir); the ingester tails it.
    "USAGE_JOURNAL_DIR": os.environ.get("LLMPROXY_USAGE_JOURNAL_DIR") or None,
    "WATCH_DEBOUNCE_MS": int(os.environ.get("LLMPROXY_WATCH_DEBOUNCE_MS", "500")),
    # Budget periods (daily/weekly/monthly) are calendar periods in this IANA time zone.
    "TIME_ZONE": os.environ.get("LLMPROXY_TIME_ZONE") or "UTC",
    # Seconds after which a serving process rebuilds its snapshot even without a config
    # change, so spend floors from the usage records catch up (e.g. after Redis lost them).
    "SPEND_FLOOR_REFRESH": float(os.environ.get("LLMPROXY_SPEND_FLOOR_REFRESH", "60")),
}

# The one-time plain API key travels in a message: keep it server-side, not in a cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# config.yaml's ``logging:`` section (level, text/json lines, per-request lines); see logsetup.
LOGGING = logging_dict(logging_section(LLMPROXY["CONFIG"]), os.environ.get("LLMPROXY_LOG_LEVEL"))
