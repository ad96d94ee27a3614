# llmproxy: one image for every role (web, celery worker, celery beat, one-shot migrate).
# See docker-compose.yml and docs/operations.md.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=llmproxy_site.settings \
    LLMPROXY_VAR_DIR=/app/var

WORKDIR /app
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin llmproxy

# Dependencies first (their own layer: rebuilt only when pyproject.toml changes).
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The code, installed in place so templates and manage.py stay next to it.
COPY . .
RUN pip install --no-deps -e . \
    && mkdir -p /app/var /app/auths \
    && chown -R llmproxy:llmproxy /app/var /app/auths

USER llmproxy
EXPOSE 8000

# The web role. The worker and beat roles override the command (docker-compose.yml).
CMD ["python", "manage.py", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-jobs", "--workers", "2"]
