"""The genesis: the consortium's founding document, shared by every layer.

Voting members in order (the primary of view v is ``members[v mod n]``),
read-only observers, consensus parameters and the application's initial
parameters. The genesis hash is the previous-block hash of block 1. Reading it
from TOML with validation lives in ``lendchain.node.config``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from lendchain import codec
from lendchain.crypto import did_from_public_key

ROLES = ("lender", "kyc", "bureau", "regulator", "investor_platform")
GENESIS_TAG = "lendchain/genesis/1"


def address_problem(address: str) -> str | None:
    """Why ``address`` is no node address (``/ip4|ip6|dns4|dns/<host>/tcp/<port>``); None if it is one."""
    parts = address.split("/")
    if len(parts) != 5 or parts[0] or parts[1] not in ("ip4", "ip6", "dns4", "dns") or parts[3] != "tcp":
        return f"must be a multiaddr like '/ip4/127.0.0.1/tcp/47101', not {address!r}"
    if parts[1] in ("ip4", "ip6"):
        try:
            ipaddress.ip_address(parts[2])
        except ValueError:
            return f"has an invalid IP address {parts[2]!r}"
    elif not parts[2]:
        return "has no host name"
    if not parts[4].isdigit() or not 0 < int(parts[4]) < 65536:
        return f"has an invalid TCP port {parts[4]!r}"
    return None


@dataclass(frozen=True)
class Member:
    name: str
    public_key: bytes
    address: str
    roles: tuple[str, ...]
    voting: bool = True

    @property
    def did(self) -> str:
        return did_from_public_key(self.public_key)

    def to_value(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "public_key": self.public_key,
            "address": self.address,
            "roles": list(self.roles),
            "voting": self.voting,
        }


@dataclass(frozen=True)
class ConsensusParams:
    checkpoint_interval: int = 100
    watermark_window: int = 200
    view_change_timeout_ms: int = 2000
    block_interval_ms: int = 50
    max_block_txs: int = 2000
    max_block_bytes: int = 8 * 1024 * 1024
    max_clock_skew_ms: int = 5000

    def to_value(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Genesis:
    chain_id: str
    genesis_time_ms: int
    members: tuple[Member, ...]
    observers: tuple[Member, ...] = ()
    consensus: ConsensusParams = field(default_factory=ConsensusParams)
    app: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.members)

    @property
    def f(self) -> int:
        return (len(self.members) - 1) // 3

    def member(self, name: str) -> Member | None:
        for m in self.members + self.observers:
            if m.name == name:
                return m
        return None

    def member_by_key(self, public_key: bytes) -> Member | None:
        for m in self.members + self.observers:
            if m.public_key == public_key:
                return m
        return None

    def to_value(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "genesis_time_ms": self.genesis_time_ms,
            "members": [m.to_value() for m in self.members],
            "observers": [m.to_value() for m in self.observers],
            "consensus": self.consensus.to_value(),
            "app": self.app,
        }

    def hash(self) -> bytes:
        return codec.hash_value([GENESIS_TAG, self.to_value()])

    def to_toml_doc(self) -> dict[str, Any]:
        def member_doc(m: Member) -> dict[str, Any]:
            return {
                "name": m.name,
                "public_key": m.public_key.hex(),
                "address": m.address,
                "roles": list(m.roles),
            }

        doc: dict[str, Any] = {
            "chain_id": self.chain_id,
            "genesis_time_ms": self.genesis_time_ms,
            "consensus": self.consensus.to_value(),
            "members": [member_doc(m) for m in self.members],
        }
        if self.observers:
            doc["observers"] = [member_doc(m) for m in self.observers]
        if self.app:
            doc["app"] = self.app
        return doc
