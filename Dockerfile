# syntax=docker/dockerfile:1
# The application image: the sales agent worker, the `simulate` load generators (text and voice), the
# local LLM, STT and TTS providers, the local CRM and the notification sink all run from it.
#
# Dependencies come only from uv.lock: `uv sync --frozen --no-dev` installs exactly the locked set
# (no resolution, dev group excluded) — tests/test_compose_dockerfile.py checks this by reading the file.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.0

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first (their own layer, rebuilt only when the lock changes), then the project itself.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY agent ./agent
COPY telemetry ./telemetry
COPY local_services ./local_services
COPY config ./config
RUN uv sync --frozen --no-dev

FROM ${PYTHON_IMAGE} AS runtime
# espeak-ng speaks the simulated callers' lines (`simulate --mode voice`).
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home app \
    && mkdir -p /data \
    && chown app:app /data
COPY --from=build --chown=app:app /app /app
COPY --chown=app:app deploy/docker/healthcheck.py /usr/local/bin/healthcheck.py
# Ports stay off unless a service sets SALES_AGENT_HEALTH_PORT / SALES_AGENT_METRICS_PORT; when it
# does, they must be reachable from other containers (Prometheus) and published ports.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    SALES_AGENT_HEALTH_HOST=0.0.0.0 \
    SALES_AGENT_METRICS_HOST=0.0.0.0
WORKDIR /app
USER app
VOLUME ["/data"]
# HEALTHCHECK_URL overrides the probed URL per command (compose sets it for each service).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "/usr/local/bin/healthcheck.py"]
ENTRYPOINT ["sales-agent"]
CMD ["start"]
