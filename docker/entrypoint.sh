#!/bin/sh
# Start the node whose config is $LENDCHAIN_CONFIG, or /config/$LENDCHAIN_MEMBER.toml,
# or run the given command instead (`docker run IMAGE lendchain --help`);
# arguments that start with '-' go to `lendchain start` (`docker run IMAGE --help`).
# LENDCHAIN_CONFIG is also what `lendchain status` and the other client
# commands read, so `docker exec CONTAINER lendchain status` asks this node.
set -eu

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec "$@"
fi

if [ -z "${LENDCHAIN_CONFIG:-}" ]; then
    if [ -z "${LENDCHAIN_MEMBER:-}" ]; then
        echo "lendchain-entrypoint: set LENDCHAIN_MEMBER to this node's member name (e.g. bank1; its config is /config/\$LENDCHAIN_MEMBER.toml) or LENDCHAIN_CONFIG to its config file." >&2
        exit 64
    fi
    LENDCHAIN_CONFIG="/config/${LENDCHAIN_MEMBER}.toml"
    export LENDCHAIN_CONFIG
fi
if [ ! -r "$LENDCHAIN_CONFIG" ]; then
    echo "lendchain-entrypoint: cannot read $LENDCHAIN_CONFIG as uid $(id -u); mount the network's config directory on /config and run the container as the uid that owns its files (compose: user: \"<uid>:0\")." >&2
    exit 66
fi
exec lendchain start --config "$LENDCHAIN_CONFIG" "$@"
