#!/bin/sh
# Start the node named by LENDCHAIN_NODE from /config/$LENDCHAIN_NODE.toml, or
# run the given command instead (`docker run IMAGE lendchain --help`); arguments
# that start with '-' go to `lendchain start` (`docker run IMAGE --help`).
set -eu

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec "$@"
fi

if [ -z "${LENDCHAIN_NODE:-}" ]; then
    echo "lendchain-entrypoint: set LENDCHAIN_NODE to this node's member name (e.g. bank1); its config is /config/\$LENDCHAIN_NODE.toml." >&2
    exit 64
fi
config="/config/${LENDCHAIN_NODE}.toml"
if [ ! -r "$config" ]; then
    echo "lendchain-entrypoint: cannot read $config as uid $(id -u); mount the network's config directory on /config and run the container as the uid that owns its files (compose: user: \"<uid>:0\")." >&2
    exit 66
fi
exec lendchain start --config "$config" "$@"
