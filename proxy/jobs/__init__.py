"""Background jobs, as plain functions safe to run twice: health checks and probes, token refresh,
usage rollups and retention, budget period resets, their beat schedules, and the embedded
worker + beat that ``serve`` runs. ``proxy.tasks`` wraps them for Celery."""
