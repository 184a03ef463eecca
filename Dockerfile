# One lendchain node. Built from wheels in the build context, so the build
# itself needs no network:
#
#   docker/build-node-image.sh            # wheels on the host, then docker build
#
# or by hand, with an ordinary registry:
#
#   pip wheel . -w docker/wheels && docker build -t lendchain-node:dev .
#
# Air-gapped: build the base from Debian packages first
# (docker/build-base-image.sh) and pass
# --build-arg BASE_IMAGE=lendchain-base:bookworm. The base must provide
# python3.11 with the venv module (Debian's python3-venv, or the official image).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# Stage 1 installs into a venv from the wheels in the context (--no-index: no
# network). The import check fails the build here, not at the first start, if
# a wheel does not fit the base (wrong Python, or a missing shared library such
# as libgmp10 for fastecdsa, which Debian's Essential coreutils pulls in).
# Stage 2 copies only the venv, so the wheels never land in a layer.
FROM ${BASE_IMAGE} AS venv
COPY docker/wheels /wheels
RUN set -eux; \
    python3 -m venv /opt/lendchain; \
    /opt/lendchain/bin/pip install --no-cache-dir --no-index --find-links /wheels lendchain; \
    /opt/lendchain/bin/pip uninstall --yes pip; \
    /opt/lendchain/bin/python -c "import lendchain, plyvel, nacl, libp2p, fastecdsa.curvemath, coincurve"

FROM ${BASE_IMAGE}

# The node runs as uid 10001, gid 0 (OpenShift-style): /data belongs to group
# 0 with group write, so an operator may also run the container as any other
# uid (compose's `user: "<uid>:0"`, used to read 0600 key files owned by that
# uid on the host) and still write the data volume.
ARG NODE_UID=10001
RUN set -eux; \
    useradd --system --uid "${NODE_UID}" --gid 0 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin lendchain; \
    mkdir -p /data /config; \
    chown "${NODE_UID}:0" /data; \
    chmod 0770 /data

COPY --from=venv /opt/lendchain /opt/lendchain
COPY docker/entrypoint.sh /usr/local/bin/lendchain-entrypoint
COPY docker/healthcheck.py /usr/local/bin/lendchain-healthcheck
RUN chmod 0755 /usr/local/bin/lendchain-entrypoint /usr/local/bin/lendchain-healthcheck

ENV PATH=/opt/lendchain/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER ${NODE_UID}:0
WORKDIR /data
VOLUME ["/data", "/config"]
EXPOSE 8100/tcp 47100/tcp
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/opt/lendchain/bin/python", "/usr/local/bin/lendchain-healthcheck"]
ENTRYPOINT ["/usr/local/bin/lendchain-entrypoint"]
CMD []
