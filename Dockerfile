# The sidecar image: a virtualenv built in one stage, copied into a clean slim image that runs
# as an unprivileged user. No compilers anywhere: every dependency ships a manylinux wheel.
#
#   docker build -t sidecar .
#   docker run -p 8080:8080 -e SIDECAR_MASTER_KEY=... sidecar
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/sidecar
COPY pyproject.toml README.md ./
COPY sidecar ./sidecar
RUN /opt/sidecar/bin/pip install --prefer-binary .

FROM ${PYTHON_IMAGE}
ARG UID=10001
RUN groupadd --system --gid "${UID}" sidecar \
    && useradd --system --uid "${UID}" --gid sidecar --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin sidecar \
    && mkdir -p /data \
    && chown "${UID}:${UID}" /data
COPY --from=build /opt/sidecar /opt/sidecar
# SIDECAR_HOST=0.0.0.0 only inside the container: outside it, the default stays 127.0.0.1.
ENV PATH=/opt/sidecar/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SIDECAR_HOST=0.0.0.0 \
    SIDECAR_PORT=8080 \
    SIDECAR_DATA_DIR=/data
WORKDIR /data
VOLUME ["/data"]
USER ${UID}:${UID}
EXPOSE 8080
# exec form: `sidecar` is PID 1 and receives SIGTERM itself; aiohttp's run_app then stops
# accepting, finishes in-flight requests and runs the cleanup (flush last_used_at, close stores).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-m", "sidecar.healthcheck"]
ENTRYPOINT ["sidecar"]
CMD ["serve"]
