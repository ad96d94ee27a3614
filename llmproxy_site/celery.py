"""The Celery app: configured from Django's settings, with the embedded broker kept under ``var/``.

Schedules live in django-celery-beat, as rows an admin sees and edits; they are created
(never duplicated, never overwritten) after ``migrate`` and whenever a beat starts, by
``proxy.jobs.schedules.setup_schedules``. Exactly one beat should run: the embedded one
that ``serve`` starts (``proxy.jobs.embedded``, guarded by a file lock, so a second
``serve`` on the same ``var/`` does not start another), or the beat container in
production. Each periodic task also claims a short lock in the shared cache, so an
accidental second beat does no duplicate work.

Logging: a worker and a beat log through the site's ``LOGGING`` (the ``setup_logging``
signal replaces Celery's own set-up, so every handler scrubs secrets and takes
``logging.format``), and a worker keeps its scrubber current: before a task, at most
every few seconds, it rebuilds it when the config version moved.
"""

from __future__ import annotations

import logging
import logging.config
import os
import time
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import beat_init, setup_logging, task_prerun
from django.db.models.signals import post_migrate

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmproxy_site.settings")

app = Celery("llmproxy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _embedded_broker(sender: Celery, source: Any, **kwargs: Any) -> None:
    """Keep the filesystem broker's files under ``var/`` (kombu's default control folder is the cwd).

    Remote control is off there: its fanout replies would pile up as files nobody reads.
    """
    if not str(source.broker_url or "").startswith("filesystem://"):
        return
    options = source.broker_transport_options
    data = Path(options.get("data_folder_in") or "var/celery-broker")
    options.setdefault("control_folder", str(data.parent / "celery-control"))
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)
    source.worker_enable_remote_control = False
    if source.broker_url == "filesystem://":
        source.broker_url = "filesystem://localhost//"  # the same broker, without kombu's "no hostname" warning


def _setup_schedules(**kwargs: Any) -> None:
    from proxy.jobs.schedules import setup_schedules

    setup_schedules(using=kwargs.get("using") or "default")


def _after_migrate(sender: Any, **kwargs: Any) -> None:
    if getattr(sender, "label", None) == "django_celery_beat":
        _setup_schedules(**kwargs)


post_migrate.connect(_after_migrate, dispatch_uid="llmproxy-setup-schedules")
beat_init.connect(_setup_schedules, dispatch_uid="llmproxy-beat-schedules", weak=False)


def _site_logging(**kwargs: Any) -> None:
    """Celery's logging set-up, replaced by the site's (every handler scrubs)."""
    from django.conf import settings

    from llmproxy import scrub

    logging.config.dictConfig(settings.LOGGING)
    scrub.guard_handlers()


#: (config version, monotonic time) of the worker's scrubber.
_scrubbed: list[Any] = [None, -1e9]
SCRUBBER_CHECK_SECONDS = 5.0


def refresh_scrubber(force: bool = False, **kwargs: Any) -> None:
    """Keep the worker's log scrubber on the current config's secrets (a version read every few seconds)."""
    now = time.monotonic()
    if not force and now - _scrubbed[1] < SCRUBBER_CHECK_SECONDS:
        return
    _scrubbed[1] = now
    try:
        from llmproxy import scrub
        from proxy.configsync.version import current_version
        from proxy.serving.snapshot import build_runtime

        version = current_version()
        if force or version != _scrubbed[0]:
            scrub.set_active(build_runtime(version).scrubber)
            _scrubbed[0] = version
        scrub.guard_handlers()
    except Exception:
        logging.getLogger("llmproxy.jobs").exception("could not load the secrets to scrub from logs")


setup_logging.connect(_site_logging, dispatch_uid="llmproxy-site-logging", weak=False)
task_prerun.connect(refresh_scrubber, dispatch_uid="llmproxy-task-scrubber", weak=False)
