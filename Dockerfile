# syntax=docker/dockerfile:1
# cio-connector image: `cio-connector run` by default; the same image runs `fake-cio` and `demo-producer`.
# Build: docker build -t cio-connector .

# --- build: a wheel of the project, installed with its dependencies into a virtualenv -------------------
# The full python image has a C compiler: the sink's mapping layer is compiled with mypyc (setup.py;
# mapping ~1.6x faster, the sink ~1.2x less CPU per record: docs/benchmarks.md). COMPILE=0, or a failed
# compile, gives the pure wheel.
FROM python:3.11-bookworm AS build
ARG COMPILE=1
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv \
 && python -m pip install "mypy>=1.13" "setuptools>=77" wheel
COPY pyproject.toml setup.py README.md ./
COPY connector ./connector
RUN if [ "$COMPILE" = "1" ] && CIO_CONNECTOR_COMPILE=1 python -m pip wheel --no-build-isolation --no-deps --wheel-dir /wheels .; \
    then echo "compiled wheel"; \
    else rm -rf /wheels && python -m pip wheel --no-build-isolation --no-deps --wheel-dir /wheels .; fi \
 && /opt/venv/bin/pip install /wheels/*.whl

# --- runtime: the virtualenv only, run as a non-root user --------------------------------------------------
FROM python:3.11-slim-bookworm
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
