"""The management REST API (django-ninja, ``/api/v1/``): one module per resource, mounted in ``app``."""
