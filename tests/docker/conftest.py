"""Fixtures for the docker test network: skip without an engine, build images once per run.

Building the base image (debootstrap) takes about a minute and the node image
about two; both are reused while their tags exist, and the node image's tag
follows the sources, so a rerun on an unchanged tree starts containers at once.
"""

from __future__ import annotations

import os
import socket
import time

import pytest

from lendchain.node import dockerimages


def _skip_reason() -> str | None:
    reason = dockerimages.docker_unavailable_reason()
    if reason:
        return f"docker tests need a Docker engine: {reason}"
    base = os.environ.get("LENDCHAIN_BASE_IMAGE", dockerimages.BASE_IMAGE)
    if base.startswith("lendchain-base:") and not dockerimages.image_exists(base) and os.geteuid() != 0:
        return (
            f"base image {base} is missing and debootstrap needs root; run docker/build-base-image.sh as root"
        )
    return None


_REASON = _skip_reason()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _REASON and item.get_closest_marker("docker") is not None:
            item.add_marker(pytest.mark.skip(reason=_REASON))


@pytest.fixture(scope="session")
def node_image() -> str:
    """The node image for the current sources (and its base), built here if missing."""
    start = time.monotonic()
    tag = dockerimages.ensure_node_image(quiet=True)
    print(f"node image {tag} ready in {time.monotonic() - start:.0f} s")
    return tag


def free_ports(count: int) -> tuple[int, ...]:
    """Ports free on 127.0.0.1 now, for the published APIs (so a dev network on 8101.. is not hit)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return tuple(s.getsockname()[1] for s in sockets)
    finally:
        for s in sockets:
            s.close()
