"""Docker itself and the node image, for the docker test network (``dockernet``).

Whether an engine and a compose tool answer, running docker commands with
one-sentence errors, and the images: a base image from Debian packages, then
the node image from wheels built here, tagged with a digest of the sources it
is built from, so a changed tree gets a fresh image and an unchanged one is
never rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "docker"
BASE_IMAGE = "lendchain-base:bookworm"
NODE_IMAGE_REPO = "lendchain-node"
# What goes into the node image; a change to any of these makes a new tag.
_IMAGE_INPUTS = (
    "Dockerfile",
    ".dockerignore",
    "pyproject.toml",
    "docker/entrypoint.sh",
    "docker/healthcheck.py",
)


class DockerNetError(RuntimeError):
    """Docker is missing, a build or compose command failed, or a condition was not met in time."""


# Docker itself --------------------------------------------------------------


def docker_unavailable_reason() -> str | None:
    """None when the Docker engine answers and a compose tool is installed, else why not."""
    if shutil.which("docker") is None:
        return "the docker command is not installed"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "the Docker engine did not answer 'docker info' within 30 s"
    if info.returncode != 0:
        last = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"the Docker engine does not answer 'docker info' ({last})"
    try:
        compose_command()
    except DockerNetError as e:
        return str(e)
    return None


_compose_cmd: list[str] | None = None


def compose_command() -> list[str]:
    """``docker compose`` (the v2 plugin) when present, else ``docker-compose``."""
    global _compose_cmd
    if _compose_cmd is None:
        plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if plugin.returncode == 0:
            _compose_cmd = ["docker", "compose"]
        elif shutil.which("docker-compose"):
            _compose_cmd = ["docker-compose"]
        else:
            raise DockerNetError(
                "neither 'docker compose' nor 'docker-compose' is installed; install the Compose tool"
            )
    return list(_compose_cmd)


def run_docker(args: list[str], *, check: bool = True, timeout_s: float = 120) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise DockerNetError(f"'{' '.join(args)}' did not finish within {timeout_s:.0f} s") from None
    if check and result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise DockerNetError(f"'{' '.join(args)}' failed with exit code {result.returncode}:\n{tail}")
    return result


def image_exists(tag: str) -> bool:
    return run_docker(["docker", "image", "inspect", tag], check=False).returncode == 0


# Images ---------------------------------------------------------------------


def source_digest(root: Path = REPO_ROOT) -> str:
    """A short digest of everything the node image is built from."""
    files = [root / name for name in _IMAGE_INPUTS]
    files += sorted((root / "lendchain").rglob("*.py"))
    h = hashlib.sha256()
    for path in files:
        if path.is_file():
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def node_image_tag(root: Path = REPO_ROOT) -> str:
    return f"{NODE_IMAGE_REPO}:src-{source_digest(root)}"


def _run_script(script: str, env: dict[str, str], quiet: bool, timeout_s: float) -> None:
    path = DOCKER_DIR / script
    if not path.is_file():
        raise DockerNetError(
            f"{path} is missing; run lendchain docker from a checkout of the lendchain repository"
        )
    kwargs: dict[str, Any] = {"capture_output": True, "text": True} if quiet else {}
    try:
        result = subprocess.run(
            ["sh", str(path), "--force"], env={**os.environ, **env}, timeout=timeout_s, **kwargs
        )
    except subprocess.TimeoutExpired:
        raise DockerNetError(f"{script} did not finish within {timeout_s:.0f} s") from None
    if result.returncode != 0:
        tail = "\n".join(((result.stdout or "") + (result.stderr or "")).strip().splitlines()[-20:])
        raise DockerNetError(
            f"{script} failed with exit code {result.returncode}" + (f":\n{tail}" if tail else "")
        )


def ensure_base_image(base_image: str = BASE_IMAGE, *, force: bool = False, quiet: bool = False) -> str:
    """Build the Debian base image with debootstrap unless it exists (needs root)."""
    if force or not image_exists(base_image):
        if not base_image.startswith("lendchain-base:"):
            return base_image  # an ordinary registry image: docker build pulls it
        _run_script("build-base-image.sh", {"LENDCHAIN_BASE_IMAGE": base_image}, quiet, 900)
    return base_image


def ensure_node_image(base_image: str | None = None, *, force: bool = False, quiet: bool = False) -> str:
    """The node image for the current sources: built (with its base) only if missing.

    The image is tagged ``lendchain-node:src-<digest>`` and also
    ``lendchain-node:dev``; older ``src-`` tags are removed after a build.
    """
    base = ensure_base_image(base_image or os.environ.get("LENDCHAIN_BASE_IMAGE", BASE_IMAGE), quiet=quiet)
    tag = node_image_tag()
    built = force or not image_exists(tag)
    if built:
        env = {"LENDCHAIN_BASE_IMAGE": base, "LENDCHAIN_NODE_IMAGE": tag}
        _run_script("build-node-image.sh", env, quiet, 900)
        stale = run_docker(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", NODE_IMAGE_REPO])
        for old in stale.stdout.split():
            if old.startswith(f"{NODE_IMAGE_REPO}:src-") and old != tag:
                run_docker(["docker", "image", "rm", old], check=False)
    run_docker(["docker", "tag", tag, f"{NODE_IMAGE_REPO}:dev"])
    if built:
        # Untagged leftovers of earlier builds: venv stages and replaced node images.
        for label in ("org.lendchain.image=venv-stage", "org.lendchain.image=node"):
            run_docker(["docker", "image", "prune", "--force", "--filter", f"label={label}"], check=False)
    return tag
