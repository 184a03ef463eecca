"""A real observer node rotates its node key through governance, restarts on it, and syncs on.

Four members and one observer (regulator1) on 127.0.0.1. The members vote
the rotation through; after the effective height regulator1 restarts with
the new key file and keeps syncing; each member, seeing the new key, refuses
the old one from then on. Without a next_key_file, regulator1 says from the
vote on that it does not hold its next key (a log line and a gauge).
"""

from __future__ import annotations

import pytest

from lendchain.crypto import SigningKey, write_key_file
from lendchain.node.cluster import Cluster, free_port_block, wait_for
from lendchain.node.testnet import generate_testnet
from tests.node.helpers import client, metric, propose_by_cli, vote_through
from tests.node.test_key_rotation import push_blocks

pytestmark = pytest.mark.slow
DELAY = 6
MEMBERS = ["bank1", "bank2", "bank3", "bank4"]


def test_an_observer_rotates_its_key_and_syncs_on_the_new_one(tmp_path):
    p2p = free_port_block(10)
    api = free_port_block(10, start=p2p + 20)
    net = tmp_path / "net"
    layout = generate_testnet(net, 4, p2p_base_port=p2p, api_base_port=api, observers=1)
    genesis_path = net / "genesis.toml"
    genesis_path.write_text(genesis_path.read_text() + f"\n[app]\nkey_rotation_delay_blocks = {DELAY}\n")
    new_key = SigningKey.generate()
    write_key_file(net / "keys" / "regulator1.next.key", new_key)
    cluster = Cluster(list(layout.configs), tmp_path / "logs")
    cluster.start_all()
    try:
        cluster.wait_healthy(timeout_s=90)
        proposal = propose_by_cli(
            net, "propose-rotate-key", "regulator1", str(net / "keys" / "regulator1.next.key")
        )
        vote_through(cluster, net, proposal["id"])
        with client(cluster, "bank1") as c:
            rotations = c.get("/node-keys/regulator1")["members"][0]["rotations"]
        assert [r["public_key"] for r in rotations] == [new_key.public_key.hex()]
        effective = rotations[0]["effective_height"]
        # regulator1 has no next_key_file: it says, from the vote on, that it lacks the new key.
        wait_for(
            lambda: metric(cluster, "regulator1", "lendchain_node_key_missing_height") == effective,
            30,
            "regulator1's missing-key gauge",
        )
        assert (
            f"at height {effective}, which this node does not hold"
            in cluster["regulator1"].log_path.read_text()
        )
        push_blocks(cluster, effective + 1)

        cluster.stop("regulator1")
        config = cluster["regulator1"].config_path
        config.write_text(config.read_text().replace("keys/regulator1.key", "keys/regulator1.next.key"))
        cluster.start("regulator1")
        cluster.wait_healthy(["regulator1"], timeout_s=90)
        with client(cluster, "regulator1") as c:
            assert c.get("/status")["key_did"] == new_key.did
        assert metric(cluster, "regulator1", "lendchain_node_key_missing_height") == 0  # it holds it now
        push_blocks(cluster, effective + 4)
        target = cluster.heights(["bank1"])["bank1"]
        cluster.wait_height(target, ["regulator1"], timeout_s=60)

        def retired_everywhere() -> bool:
            marker = "regulator1 proved a newer node key"
            return all(marker in cluster[name].log_path.read_text() for name in MEMBERS)

        wait_for(retired_everywhere, 60, "every member to retire regulator1's old key")
    finally:
        cluster.stop_all()
