# Build: install the pinned dependencies into a virtualenv, exactly as `make` does.
FROM python:3.11-slim AS build
WORKDIR /srv/aftersale
RUN python -m venv /srv/venv
COPY pyproject.toml constraints.txt README.md ./
COPY app ./app
RUN /srv/venv/bin/python -m pip install --no-cache-dir --disable-pip-version-check -c constraints.txt .

# Run: the virtualenv and the files the service reads, as a non-root user.
FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /srv/aftersale aftersale
WORKDIR /srv/aftersale
COPY --from=build /srv/venv /srv/venv
COPY alembic.ini ./
COPY migrations ./migrations
COPY rules ./rules
COPY templates ./templates
RUN mkdir -p var && chown aftersale var
USER aftersale
# Production: refuses to start with missing or placeholder secrets (dev defaults are public).
ENV PATH=/srv/venv/bin:$PATH \
    AFTERSALE_ENV=production \
    AFTERSALE_RULES_DIR=/srv/aftersale/rules \
    AFTERSALE_TEMPLATES_DIR=/srv/aftersale/templates/email \
    AFTERSALE_DATABASE_URL=sqlite+aiosqlite:////srv/aftersale/var/aftersale.db \
    AFTERSALE_DEV_OUTBOX_DIR=/srv/aftersale/var/outbox \
    AFTERSALE_WORKER_HEARTBEAT_FILE=/srv/aftersale/var/worker.heartbeat \
    AFTERSALE_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
# 8000 unless PORT (or AFTERSALE_PORT) says otherwise, as platforms like Cloud Run set it;
# `serve` and `aftersale health` both read it.
EXPOSE 8000
# Every role: GET /healthz answers 200 (api, all), or nothing listens on the port and the worker
# wrote its heartbeat within 60 s (worker).
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
    CMD aftersale health
# Migrations first, then the service; override the role with e.g. `serve --role worker`.
ENTRYPOINT ["sh", "-c", "aftersale db upgrade && exec aftersale \"$@\"", "--"]
CMD ["serve", "--role", "all"]
