"""Generate a test network: member keys, one genesis, one TOML config per node."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from lendchain.crypto import SigningKey, write_key_file
from lendchain.genesis import ConsensusParams, Genesis, Member
from lendchain.node.config import ConfigError, refuse_app_problems

DEFAULT_ROLES = (
    ("lender", "kyc", "bureau"),
    ("lender", "kyc"),
    ("lender", "bureau"),
    ("regulator", "kyc"),
)


@dataclass(frozen=True)
class TestnetLayout:
    out: Path
    genesis: Genesis
    configs: tuple[Path, ...]


DOCKER_SUBNET = "172.28.0.0/16"


def docker_ip(subnet: str, index: int) -> str:
    """The container address of the ``index``-th member (0-based) on the docker bridge ``subnet``."""
    network = ipaddress.IPv4Network(subnet)
    if network.num_addresses < 32:
        raise ConfigError(f"docker subnet {subnet} is too small; give a /27 or larger")
    return str(network.network_address + 11 + index)


def generate_testnet(
    out: str | Path,
    nodes: int = 4,
    *,
    chain_id: str = "lendchain-test-1",
    host: str = "127.0.0.1",
    p2p_base_port: int = 47100,
    api_base_port: int = 8100,
    observers: int = 0,
    docker: bool = False,
    docker_subnet: str = DOCKER_SUBNET,
    consensus: ConsensusParams | None = None,
    rules_version: int = 1,
    params: dict[str, Any] | None = None,
) -> TestnetLayout:
    """Write ``out/{genesis.toml,keys/,nodeN.toml}`` for an ``nodes``-member network.

    ``params`` are chain parameters for the genesis ``[app]`` (``ledger.params``), checked
    strictly before anything is written: a new chain starts without a typo in its genesis.

    With ``docker=True`` every node listens on 0.0.0.0 inside its own container
    and members are addressed by container IP on the ``docker_subnet`` bridge
    (``docker_ip``: the subnet's address 11, 12, … in member order).
    """
    out = Path(out)
    app = {**({"rules_version": rules_version} if rules_version != 1 else {}), **(params or {})}
    refuse_app_problems(out / "genesis.toml", app)
    if nodes < 1:
        raise ConfigError("a test network needs at least one node")
    if (out / "genesis.toml").exists():
        raise ConfigError(f"{out} already holds a network (genesis.toml); choose an empty directory")
    out.mkdir(parents=True, exist_ok=True)
    names = [f"bank{i + 1}" for i in range(nodes)] + [f"regulator{i + 1}" for i in range(observers)]
    members: list[Member] = []
    for i, name in enumerate(names):
        key = SigningKey.generate()
        write_key_file(out / "keys" / f"{name}.key", key)
        voting = i < nodes
        roles = DEFAULT_ROLES[i % len(DEFAULT_ROLES)] if voting else ("regulator",)
        if docker:
            address = f"/ip4/{docker_ip(docker_subnet, i)}/tcp/{p2p_base_port}"
        else:
            address = f"/ip4/{host}/tcp/{p2p_base_port + i + 1}"
        members.append(Member(name, key.public_key, address, roles, voting))
    genesis = Genesis(
        chain_id=chain_id,
        genesis_time_ms=int(time.time() * 1000),
        members=tuple(m for m in members if m.voting),
        observers=tuple(m for m in members if not m.voting),
        consensus=consensus or ConsensusParams(),
        app=app,
    )
    (out / "genesis.toml").write_text(tomli_w.dumps(genesis.to_toml_doc()))
    configs = []
    for i, name in enumerate(names):
        if docker:
            doc = {
                "name": name,
                "genesis": "/config/genesis.toml",
                "key_file": f"/config/keys/{name}.key",
                "data_dir": "/data",
                "p2p": {"listen": f"/ip4/0.0.0.0/tcp/{p2p_base_port}"},
                "api": {"listen": f"0.0.0.0:{api_base_port}", "token_file": "/config/api.token"},
            }
        else:
            doc = {
                "name": name,
                "genesis": "genesis.toml",
                "key_file": f"keys/{name}.key",
                "data_dir": f"data/{name}",
                "api": {"listen": f"{host}:{api_base_port + i + 1}"},
            }
        path = out / f"{name}.toml"
        path.write_text(tomli_w.dumps(doc))
        configs.append(path)
    return TestnetLayout(out, genesis, tuple(configs))
