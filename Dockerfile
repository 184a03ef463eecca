# One lendchain node.
#
# With an ordinary registry, from the repository root:
#
#   docker build -t lendchain-node:dev .
#
# installs lendchain and its dependencies with pip from the index (fastecdsa,
# a libp2p dependency, compiles against GMP in the throw-away first stage).
#
# Offline (air-gapped banks, CI with no registry): docker/build-node-image.sh
# builds wheels on the host into docker/wheels/ and builds on a base image
# made from Debian packages by docker/build-base-image.sh:
#
#   docker build --build-arg BASE_IMAGE=lendchain-base:bookworm -t lendchain-node:dev .
#
# When docker/wheels/ holds wheels (deps/ and app/), the build installs only
# from them (--no-index: no network). The base must provide python3.11 with the venv
# module (Debian's python3-venv, or the official image).
ARG BASE_IMAGE=python:3.11.11-slim-bookworm

# Stage 1 installs into a venv: the dependencies from docker/wheels/deps/ in
# a layer of their own (reused by later builds while those wheels do not
# change), then lendchain from docker/wheels/app/ — or, with no wheels, all
# of it from the source tree with pip. The import check fails the build here,
# not at the first start, if a wheel does not fit the base (wrong Python, or a
# missing shared library such as libgmp10 for fastecdsa, which Debian's
# Essential coreutils pulls in). Stage 2 copies only the venv, so neither
# wheels, sources nor compilers land in the image.
FROM ${BASE_IMAGE} AS venv
# Lets `docker image prune --filter label=org.lendchain.image` clear old builds.
LABEL org.lendchain.image=venv-stage
# entrypoint.sh only keeps this COPY valid when docker/wheels/deps is absent.
COPY docker/entrypoint.sh docker/wheels/dep[s] /src/deps/
RUN set -eux; \
    python3 -m venv /opt/lendchain; \
    if ls /src/deps/*.whl >/dev/null 2>&1; then \
        /opt/lendchain/bin/pip install --no-cache-dir --no-index --no-deps /src/deps/*.whl; \
    fi
COPY docker/entrypoint.sh docker/wheels/ap[p] /src/app/
COPY pyproject.toml README.md /src/
COPY lendchain /src/lendchain
RUN set -eux; \
    if ls /src/app/*.whl >/dev/null 2>&1; then \
        /opt/lendchain/bin/pip install --no-cache-dir --no-index --find-links /src/deps /src/app/*.whl; \
    else \
        build_pkgs=""; \
        [ -e /usr/include/gmp.h ] || [ -e /usr/include/x86_64-linux-gnu/gmp.h ] \
            || build_pkgs="gcc libc6-dev libgmp-dev"; \
        python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' \
            || build_pkgs="$build_pkgs python3-dev"; \
        if [ -n "$build_pkgs" ]; then \
            apt-get update; \
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $build_pkgs; \
        fi; \
        /opt/lendchain/bin/pip install --no-cache-dir /src; \
    fi; \
    /opt/lendchain/bin/pip uninstall --yes pip; \
    /opt/lendchain/bin/python -c "import lendchain.cli, plyvel, nacl, libp2p, fastecdsa.curvemath, coincurve"

FROM ${BASE_IMAGE}
LABEL org.lendchain.image=node

# The node runs as uid 10001, gid 0 (OpenShift-style): /data belongs to group
# 0 with group write, so an operator may also run the container as any other
# uid (compose's `user: "<uid>:0"`, used to read 0600 key files owned by that
# uid on the host) and still write the data volume.
ARG NODE_UID=10001
RUN set -eux; \
    useradd --system --uid "${NODE_UID}" --gid 0 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin lendchain; \
    mkdir -p /data /backups /config; \
    chown "${NODE_UID}:0" /data /backups; \
    chmod 0770 /data /backups

COPY --from=venv /opt/lendchain /opt/lendchain
COPY docker/entrypoint.sh /usr/local/bin/lendchain-entrypoint
COPY docker/healthcheck.py /usr/local/bin/lendchain-healthcheck
RUN chmod 0755 /usr/local/bin/lendchain-entrypoint /usr/local/bin/lendchain-healthcheck

ENV PATH=/opt/lendchain/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER ${NODE_UID}:0
WORKDIR /data
# /config is bind-mounted read-only file by file; the chain and its backups
# (`lendchain backup`: backup_dir defaults to /backups beside /data) are volumes.
VOLUME ["/data", "/backups"]
EXPOSE 8100/tcp 47100/tcp
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/opt/lendchain/bin/python", "/usr/local/bin/lendchain-healthcheck"]
ENTRYPOINT ["/usr/local/bin/lendchain-entrypoint"]
CMD []
