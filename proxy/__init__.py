"""The Django shell's top app: config models, serving, config sync, jobs, reports, management API.

Django's own modules sit here (``models``, ``admin``, ``apps``, ``tasks``, ``views``,
``signals``, and ``fields``/``crypto`` for the models' secrets); everything else lives in
one sub-package per job: ``serving``, ``configsync``, ``jobs``, ``reports``, ``api``.
``proxy`` may import ``accounts`` and ``llmproxy``, never ``llmproxy_site``
(docs/architecture.md has the map and the rules).
"""
