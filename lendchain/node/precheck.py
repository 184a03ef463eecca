"""``lendchain start --check``: every check a start makes, without starting.

For a deploy pipeline or an operator about to restart a member: the config
(already loaded, its genesis's problems that a start only warns about
listed as warnings), the keys (already opened), then what ``Node`` checks when
it is built (the key against the genesis and the executed rotations, the
data directory's format, chain and consistency, the rules this release can
run, the API token), and that the API and p2p ports are free. It builds the
same ``Node`` the daemon would and closes it; a data directory that does not
exist yet is not created (the check uses a scratch one and says so).
"""

from __future__ import annotations

import dataclasses
import socket
import tempfile
from pathlib import Path

from lendchain.crypto import SigningKey
from lendchain.node.config import NodeConfig, genesis_warnings


class PrecheckFailed(Exception):
    """What would stop the node from starting; ``code`` is the exit code ``start`` would give."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def precheck(config: NodeConfig, key: SigningKey, next_key: SigningKey | None) -> list[str]:
    """The lines of a passed check; PrecheckFailed naming the first thing that fails."""
    from lendchain.ledger.rules import UpgradeRequired, rules_status
    from lendchain.node.daemon import Node
    from lendchain.node.store import StoreError

    new = not (config.data_dir / "CURRENT").exists()
    with tempfile.TemporaryDirectory(prefix="lendchain-check-") as scratch:
        checked = dataclasses.replace(config, data_dir=Path(scratch) / "data") if new else config
        try:
            node = Node(checked, key, next_key=next_key)
        except (StoreError, ValueError) as e:
            raise PrecheckFailed(str(e)) from None
        except UpgradeRequired as e:
            raise PrecheckFailed(str(e), 4) from None
        try:
            head = node.store.head()
            rules = rules_status(node.store, head.height)
            signing = node.key  # its next key once that rotation is in effect
            voting = node.voting  # at the height in flight: governance may have changed the genesis role
        finally:
            node.store.close()
    role = "voting member" if voting else "observer"
    lines = [f"ok: {config.name} ({role}) on {config.genesis.chain_id}, connecting as {signing.did}"]
    if new:
        lines.append(
            f"ok: data directory {config.data_dir} does not exist yet: the node creates it "
            "and fetches the chain from its peers"
        )
    else:
        lines.append(
            f"ok: data directory {config.data_dir} at height {head.height}, rules version {rules['version']}"
        )
    # The node starts on them, and logs them at every start (node.config says why).
    lines += [f"warning: {warning}" for warning in genesis_warnings(config.genesis, config.genesis_path)]
    listen = config.p2p_listen.split("/")
    for what, host, port in (
        ("api", config.api_host, config.api_port),
        ("p2p", listen[2] if len(listen) > 4 else "0.0.0.0", int(listen[4]) if len(listen) > 4 else 0),
    ):
        _check_free(what, host, port)
        lines.append(f"ok: {what} port {host}:{port} is free")
    return lines


def _check_free(what: str, host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the node's own listeners do
        try:
            probe.bind((host, port))
        except OSError as e:
            raise PrecheckFailed(
                f"{what} port {host}:{port} cannot be bound ({e.strerror}): is a node already running?"
            ) from None
