# One image for the operator, the router and the eval runner:
#   llm-rollout operator | router | eval | status | ...
# Dependencies come from requirements.lock (pinned, hash-checked; `make lock`). The
# wheels are downloaded on the host into build/image-wheels (hack/image.sh) and
# installed with --no-index: the build itself needs no network at all.
# Build: `make image`. The base is any Debian-based Python 3.11 with `python` on PATH:
#   python:3.11-slim-bookworm (the default; pin it with @sha256:<digest>), or, where no
#   registry is reachable, one made from Debian packages (`make image BASE=debian`).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/llm-rollout
# Dependencies before the code: a rebuild with an unchanged lock reuses this layer.
COPY requirements.lock ./
COPY build/image-wheels/ /wheels/
RUN /opt/llm-rollout/bin/pip install --no-index --find-links /wheels --require-hashes \
      --no-deps -r requirements.lock
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
