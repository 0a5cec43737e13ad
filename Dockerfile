# syntax=docker/dockerfile:1
# cio-connector image: `cio-connector run` by default; the same image runs `fake-cio` and `demo-producer`.
# Build: docker build -t cio-connector .
#
# Supply chain: base images by digest (the multi-arch index of the tag in the comment); every Python package
# from the hashed locks in requirements/ (`make lock`), installed with --require-hashes; our own package
# with --no-deps. Refresh a digest: `docker buildx imagetools inspect python:3.11-slim-bookworm` (the
# "Digest:" line), then rebuild and run the tests. The digests below were taken from public repositories
# pinning the same tags (CPython 3.11.17), not from a registry query: confirm them on first refresh.

# --- build: a wheel of the project, installed with its dependencies into a virtualenv -------------------
# The full python image has a C compiler: the sink's mapping layer and the engine's synchronous hot path
# are compiled with mypyc (setup.py; mapping ~1.6x faster, the sink less CPU per record: docs/benchmarks.md).
# COMPILE=0, or a failed compile, gives the pure wheel.
# python:3.11-bookworm
FROM python:3.11-bookworm@sha256:3fd8382c50bae84184460a6e1a8ff4eeac0e3ca6a560691cb56bd84d2b6ec9ca AS build
ARG COMPILE=1
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements/runtime.txt requirements/build.txt ./requirements/
RUN python -m venv /opt/venv \
 && python -m pip install --require-hashes -r requirements/build.txt \
 && /opt/venv/bin/pip install --require-hashes -r requirements/runtime.txt
COPY pyproject.toml setup.py README.md ./
COPY connector ./connector
RUN if [ "$COMPILE" = "1" ] && CIO_CONNECTOR_COMPILE=1 python -m pip wheel --no-build-isolation --no-deps --wheel-dir /wheels .; \
    then echo "compiled wheel"; \
    else rm -rf /wheels && python -m pip wheel --no-build-isolation --no-deps --wheel-dir /wheels .; fi \
 && /opt/venv/bin/pip install --no-deps /wheels/*.whl

# --- runtime: the virtualenv only, run as a non-root user --------------------------------------------------
# python:3.11-slim-bookworm
FROM python:3.11-slim-bookworm@sha256:2333bd330d12de02514770b3585cad313644316047cdee24a7acfdece6de6efb
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A numeric uid lets Kubernetes verify runAsNonRoot without reading /etc/passwd.
RUN groupadd --system --gid 10001 connector \
 && useradd --system --uid 10001 --gid connector --no-create-home --shell /usr/sbin/nologin connector
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
# 8080: Customer.io reporting webhooks. 9464: /metrics, /healthz, /readyz.
EXPOSE 8080 9464
# Liveness only (/healthz); readiness (/readyz) is for load balancers and Kubernetes. Slim has no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('CONNECTOR_METRICS_PORT', '9464') + '/healthz', timeout=2)"]
ENTRYPOINT ["cio-connector"]
CMD ["run"]
