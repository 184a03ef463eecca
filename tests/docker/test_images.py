"""The images: an offline base from Debian packages, and the node image built on it."""

from __future__ import annotations

import subprocess

import pytest

from lendchain.node import dockerimages, dockernet

pytestmark = pytest.mark.docker


def docker_run(image: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env_args = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", *env_args, image, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_base_image_is_debian_with_python_3_11_and_venv(node_image):
    base = dockerimages.ensure_base_image()
    result = docker_run(base, "python3", "-c", "import sys, venv, ensurepip; print(sys.version_info[:2])")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(3, 11)"
    os_release = docker_run(base, "cat", "/etc/os-release").stdout
    assert "VERSION_CODENAME=bookworm" in os_release


def test_node_image_runs_the_cli_as_an_unprivileged_user(node_image):
    help_text = docker_run(node_image, "lendchain", "--help")
    assert help_text.returncode == 0, help_text.stderr
    assert "start" in help_text.stdout and "testnet" in help_text.stdout
    ids = docker_run(node_image, "id", "-u")
    assert ids.stdout.strip() == str(dockernet.IMAGE_UID)
    # No compilers, wheels or sources in the final image: only the venv.
    leftovers = docker_run(
        node_image, "sh", "-c", "ls -d /wheels /src 2>/dev/null; command -v gcc pip || true"
    )
    assert leftovers.stdout.strip() == ""


def test_node_image_holds_lendchain_in_its_venv(node_image):
    assert node_image.startswith(f"{dockerimages.NODE_IMAGE_REPO}:src-")
    installed = docker_run(
        node_image, "python", "-c", "import lendchain.node.dockernet as d, pathlib; print(d.__file__)"
    )
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.strip().startswith("/opt/lendchain/lib/python3.11/site-packages/lendchain/")


def test_entrypoint_says_which_variable_to_set(node_image):
    result = docker_run(node_image)
    assert result.returncode == 64
    assert "set LENDCHAIN_MEMBER" in result.stderr


def test_entrypoint_says_when_the_config_is_not_mounted(node_image):
    result = docker_run(node_image, env={"LENDCHAIN_MEMBER": "bank1"})
    assert result.returncode == 66
    assert "/config/bank1.toml" in result.stderr and "mount" in result.stderr


def test_healthcheck_fails_without_a_node(node_image):
    result = docker_run(node_image, "python", "/usr/local/bin/lendchain-healthcheck")
    assert result.returncode == 1
    assert "health check failed" in result.stderr
