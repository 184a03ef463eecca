#!/bin/sh
# Build the lendchain-node image with no network inside the build:
#
#   docker/build-node-image.sh [--force]
#
# 1. pip wheel: every dependency into docker/wheels/deps/ and lendchain into
#    docker/wheels/app/, built with this machine's Python 3.11 (its ABI must
#    match the base's python3.11; fastecdsa has no manylinux wheel and
#    compiles against libgmp-dev, which this script installs with apt when it
#    is missing). The dependency wheels are kept while pyproject.toml and the
#    Python version stay the same, so a rebuild after a code change only
#    builds the lendchain wheel (and docker reuses the dependency layer);
#    rm -rf docker/wheels to fetch them again.
# 2. docker build with BASE_IMAGE, by default lendchain-base:bookworm (made by
#    docker/build-base-image.sh). With a registry, use the official image:
#      LENDCHAIN_BASE_IMAGE=python:3.11-slim-bookworm docker/build-node-image.sh
# Environment: LENDCHAIN_BASE_IMAGE, LENDCHAIN_NODE_IMAGE (default
# lendchain-node:dev), PYTHON (default python3).
# Skips the work when the node image exists, unless --force.
set -eu

repo="$(cd "$(dirname "$0")/.." && pwd)"
base="${LENDCHAIN_BASE_IMAGE:-lendchain-base:bookworm}"
image="${LENDCHAIN_NODE_IMAGE:-lendchain-node:dev}"
python="${PYTHON:-python3}"
force=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-node-image: unknown argument '$arg' (only --force)" >&2; exit 2 ;;
    esac
done

die() { echo "build-node-image: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker is not installed; install the Docker engine first."
docker info >/dev/null 2>&1 || die "the Docker engine does not answer 'docker info'; start it (or add yourself to the docker group)."

if [ "$force" = 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "build-node-image: $image exists; use --force to rebuild it."
    exit 0
fi
if ! docker image inspect "$base" >/dev/null 2>&1; then
    case "$base" in
        lendchain-base:*) die "base image $base is missing; run docker/build-base-image.sh first." ;;
        *) echo "build-node-image: $base is not here yet; docker build will pull it." ;;
    esac
fi

pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[ "$pyver" = 3.11 ] || die "$python is Python $pyver; the image runs Python 3.11, so build the wheels with a 3.11 (set PYTHON)."

# fastecdsa (a libp2p dependency) ships only an sdist for Linux and links GMP.
if [ ! -e /usr/include/gmp.h ] && [ ! -e /usr/include/x86_64-linux-gnu/gmp.h ]; then
    [ "$(id -u)" = 0 ] || die "fastecdsa needs libgmp-dev to build; run 'sudo apt-get install libgmp-dev'."
    echo "build-node-image: installing libgmp-dev (fastecdsa compiles against it)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgmp-dev >/dev/null
fi

start=$(date +%s)
wheels="$repo/docker/wheels"
stamp="$(sha256sum "$repo/pyproject.toml" | cut -d' ' -f1) python$pyver"
if [ "$(cat "$wheels/deps/.stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$wheels"
    echo "build-node-image: building lendchain and dependency wheels into docker/wheels"
    "$python" -m pip wheel --quiet "$repo" -w "$wheels/deps" || die "pip wheel failed (output above)."
    mkdir -p "$wheels/app"
    mv "$wheels"/deps/lendchain-*.whl "$wheels/app/"
    echo "$stamp" > "$wheels/deps/.stamp"
else
    rm -rf "$wheels/app"
    echo "build-node-image: dependency wheels are current; building the lendchain wheel"
    "$python" -m pip wheel --quiet --no-deps "$repo" -w "$wheels/app" || die "pip wheel failed (output above)."
fi
wheels_done=$(date +%s)

echo "build-node-image: docker build $image on $base"
docker build --force-rm --build-arg BASE_IMAGE="$base" -t "$image" "$repo" \
    || die "docker build failed (output above)."
# Name the (cached) first stage too, so pruning untagged images keeps the
# dependency layer that the next build reuses.
docker build --quiet --force-rm --target venv --build-arg BASE_IMAGE="$base" -t "${image%:*}:venv-stage" "$repo" >/dev/null \
    || die "tagging the venv stage failed."
echo "build-node-image: built $image in $(( $(date +%s) - start ))s (wheels $(( wheels_done - start ))s)"
