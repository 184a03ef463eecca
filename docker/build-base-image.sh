#!/bin/sh
# Build the lendchain-base:bookworm image from Debian packages, for machines
# that reach a Debian mirror but no container registry (air-gapped banks, CI).
#
#   docker/build-base-image.sh [--force]
#
# debootstraps a minimal Debian bookworm with python3, python3-venv and
# ca-certificates from the mirror this machine's apt is configured with, then
# imports the root filesystem as an image. Skips the work when the image
# exists, unless --force. Needs root (debootstrap) and a Docker engine.
# Environment: LENDCHAIN_BASE_IMAGE (default lendchain-base:bookworm),
# LENDCHAIN_DEBIAN_MIRROR (default: read from /etc/apt/sources.list*).
set -eu

image="${LENDCHAIN_BASE_IMAGE:-lendchain-base:bookworm}"
suite=bookworm
force=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-base-image: unknown argument '$arg' (only --force)" >&2; exit 2 ;;
    esac
done

die() { echo "build-base-image: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker is not installed; install the Docker engine first."
docker info >/dev/null 2>&1 || die "the Docker engine does not answer 'docker info'; start it (or add yourself to the docker group)."

if [ "$force" = 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "build-base-image: $image exists; use --force to rebuild it."
    exit 0
fi

[ "$(id -u)" = 0 ] || die "debootstrap needs root; run this script as root (sudo)."

# The first Debian mirror (not the security archive) in apt's configuration:
# deb822 "URIs:" lines in sources.list.d/*.sources, or one-line "deb URI suite"
# entries in sources.list and sources.list.d/*.list.
find_mirror() {
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; break } }' "$f"
    done
}
mirror="${LENDCHAIN_DEBIAN_MIRROR:-$(find_mirror | grep -v -e security -e '^cdrom:' | grep '/debian/*$' | head -n 1)}"
[ -n "$mirror" ] || die "found no Debian mirror in /etc/apt/sources.list or /etc/apt/sources.list.d/; set LENDCHAIN_DEBIAN_MIRROR."

if ! command -v debootstrap >/dev/null 2>&1; then
    echo "build-base-image: installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/lendchain-base.XXXXXX")"
trap 'rm -rf "$work"' EXIT INT TERM
start=$(date +%s)
echo "build-base-image: debootstrap $suite (minbase) from $mirror"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)."; }

# Slim the tree: package caches, lists and docs are not needed at run time.
chroot "$work/rootfs" apt-get clean
rm -rf "$work/rootfs"/var/lib/apt/lists/* "$work/rootfs"/usr/share/doc/* \
       "$work/rootfs"/usr/share/man/* "$work/rootfs"/usr/share/info/* \
       "$work/rootfs"/var/cache/debconf/*-old "$work/rootfs"/var/log/*.log

tar --numeric-owner -C "$work/rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase $suite + python3, python3-venv, ca-certificates" \
    - "$image" >/dev/null
echo "build-base-image: built $image in $(( $(date +%s) - start ))s"
