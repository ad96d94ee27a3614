"""The Celery app. Beat schedules live in django-celery-beat (editable in the admin)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmproxy_site.settings")

app = Celery("llmproxy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
