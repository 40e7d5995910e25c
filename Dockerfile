# syntax=docker/dockerfile:1
# One image for the operator, the router and the eval runner:
#   llm-rollout operator | router | eval | status | ...
# Dependencies come from requirements.lock (pinned, hash-checked; `make lock`).
# Build: `make image` (needs a Docker engine). For a fully reproducible base, pin it:
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest> .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/llm-rollout
COPY requirements.lock ./
RUN /opt/llm-rollout/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY operator/llm_rollout/ operator/llm_rollout/
RUN /opt/llm-rollout/bin/pip install --no-deps --no-build-isolation . \
 && /opt/llm-rollout/bin/pip check \
 && /opt/llm-rollout/bin/llm-rollout --help >/dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="llm-rollout-operator" \
      org.opencontainers.image.description="Staged, metric-gated rollouts of LLM application releases: operator, router, eval runner" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/llm-rollout/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
COPY --from=build /opt/llm-rollout /opt/llm-rollout
# Non-root, numeric (Kubernetes runAsNonRoot can check it); nothing is written but /tmp.
USER 65532:65532
ENTRYPOINT ["llm-rollout"]
CMD ["--help"]
