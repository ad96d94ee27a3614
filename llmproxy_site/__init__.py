"""The Django project: settings, ASGI routing and the Celery app."""
