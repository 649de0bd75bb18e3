# syntax=docker/dockerfile:1
#
# Postgit: one image, two commands.
#
#   docker build -t postgit .
#   docker run -e DATABASE_URL=postgresql://... -p 3000:3000 postgit     # the API server (default command)
#   docker run -e DATABASE_URL=postgresql://... postgit postgit-worker    # a worker
#
# Both commands migrate the database at start. docker-compose.yml runs PostgreSQL, a server and a worker.
#
# Third-party node plugins must be installed where workers run them and where the server validates deploys:
# in this image, which both use. Either pass pip requirement specs, space-separated, at build time:
#
#   docker build --build-arg EXTRA_PLUGINS="my-postgit-plugin==1.2 another-plugin>=0.3" -t postgit .
#
# (workspace plugins such as postgit-example-plugin are found among the wheels built below), or derive an image:
#
#   FROM postgit
#   USER root
#   RUN pip install --no-cache-dir my-postgit-plugin==1.2
#   USER 10001:10001

ARG PYTHON_VERSION=3.12

# -- build: the workspace members' wheels, and their third-party dependencies pinned by uv.lock ----------------------
FROM python:${PYTHON_VERSION}-slim AS build
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /src
COPY . .
RUN uv build --all-packages --wheel --out-dir /dist \
    && uv export --frozen --no-dev --no-emit-workspace --package postgit-server \
        --format requirements.txt --output-file /dist/requirements.txt

# -- runtime: postgit-server (which brings postgit-core and postgit-builtins), run as a non-root user ----------------
FROM python:${PYTHON_VERSION}-slim AS runtime
ARG EXTRA_PLUGINS=""
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PORT=3000
# EXTRA_PLUGINS is split into words on purpose: it is a list of requirement specs, pinned as their author chooses.
# hadolint ignore=SC2086,DL3013
RUN --mount=type=bind,from=build,source=/dist,target=/dist \
    pip install --no-cache-dir --require-hashes -r /dist/requirements.txt \
    && pip install --no-cache-dir --no-deps \
        /dist/postgit_core-*.whl /dist/postgit_builtins-*.whl /dist/postgit_server-*.whl \
    && if [ -n "${EXTRA_PLUGINS}" ]; then pip install --no-cache-dir --find-links /dist ${EXTRA_PLUGINS}; fi \
    && pip check
RUN groupadd --system --gid 10001 postgit \
    && useradd --system --uid 10001 --gid postgit --create-home --home-dir /home/postgit postgit
# Numeric, so that a platform enforcing non-root users (Kubernetes' runAsNonRoot) can verify it.
USER 10001:10001
WORKDIR /home/postgit
EXPOSE 3000
# No HEALTHCHECK here: the worker serves no HTTP. docker-compose.yml checks the server's /health.
CMD ["postgit-server"]
