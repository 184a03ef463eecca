"""Five real node processes on 127.0.0.1: governance makes the observer vote, then an observer again.

bank1-bank4 vote from the genesis and regulator1 follows. Under rules version 2
the members promote regulator1 (``member.voting``): from the effective height it
runs a replica, without a restart, and n = 5 needs four votes, so with bank4
stopped every block needs regulator1's. Then they demote it again: from that
height it stops voting and follows, and bank1-bank3 are a quorum of four.
Every certificate checks against the members that voted at its height.
"""

from __future__ import annotations

import json

import pytest

from lendchain.consensus.certificate import CertificateError, CommitCertificate
from lendchain.consensus.keys import KeySchedule
from lendchain.crypto import read_key_file
from lendchain.ledger.rules import MIN_NOTICE_BLOCKS
from lendchain.node.cluster import Cluster, free_port_block, wait_for
from lendchain.node.testnet import generate_testnet
from tests.node.helpers import client, lendchain_cli, metric, propose_by_cli, push_blocks, vote_through

pytestmark = pytest.mark.slow
DELAY = 6
BANKS = ("bank1", "bank2", "bank3", "bank4")


def executed_height(net, proposal_id: str) -> int:
    shown = lendchain_cli("--json", "gov", "show", proposal_id, "--config", str(net / "bank1.toml"))
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["executed_height"]


def certificates(cluster: Cluster, start: int, end: int) -> list[CommitCertificate]:
    with client(cluster, "bank1") as c:
        return [
            CommitCertificate.decode(bytes.fromhex(c.get(f"/blocks/{h}")["certificate"]["hex"]))
            for h in range(start, end + 1)
        ]


def test_observer_promoted_then_demoted_by_governance(tmp_path):
    p2p = free_port_block(10)
    api = free_port_block(10, start=p2p + 20)
    net = tmp_path / "net"
    layout = generate_testnet(net, 4, observers=1, p2p_base_port=p2p, api_base_port=api)
    genesis_path = net / "genesis.toml"
    genesis_path.write_text(genesis_path.read_text() + f"\n[app]\nkey_rotation_delay_blocks = {DELAY}\n")
    cluster = Cluster(list(layout.configs), tmp_path / "logs")
    cluster.start_all()
    try:
        cluster.wait_healthy(timeout_s=90)
        genesis = cluster["bank1"].config.genesis
        observer = cluster["regulator1"].get("/status")
        assert observer["role"] == "observer" and observer["members"] == list(BANKS)
        assert observer["consortium"] == [*BANKS, "regulator1"]
        assert metric(cluster, "regulator1", "lendchain_voting") == 0
        regulator = read_key_file(net / "keys" / "regulator1.key").did

        # Before rules 2 the action does not exist.
        refused = lendchain_cli(
            "--json",
            "gov",
            "propose",
            "member.voting",
            regulator,
            "voter",
            "--config",
            str(net / "bank1.toml"),
        )
        assert refused.returncode != 0 and "member.voting" in refused.stdout + refused.stderr

        activation = cluster.heights(["bank1"])["bank1"] + MIN_NOTICE_BLOCKS + 6
        upgrade = propose_by_cli(net, "propose", "rules.upgrade", "2", str(activation))
        vote_through(cluster, net, upgrade["id"])
        push_blocks(cluster, activation)

        promoted = propose_by_cli(net, "propose", "member.voting", regulator, "voter")
        vote_through(cluster, net, promoted["id"])
        joins = executed_height(net, promoted["id"]) + DELAY
        push_blocks(cluster, joins + 2)
        wait_for(
            lambda: f"regulator1 votes from height {joins}" in cluster["regulator1"].log_path.read_text(),
            30,
            "regulator1 to start its replica",
        )
        assert cluster["regulator1"].get("/status")["role"] == "member"
        assert cluster["bank1"].get("/status")["members"] == [*BANKS, "regulator1"]
        assert metric(cluster, "regulator1", "lendchain_voting") == 1
        assert metric(cluster, "bank1", "lendchain_voting_members") == 5

        # n = 5: a quorum is 4, so with bank4 down no block commits without regulator1.
        cluster.stop("bank4")
        start = cluster.heights(["bank1"])["bank1"] + 1
        push_blocks(cluster, start + 4, via=("bank1", "bank2"))
        schedule = KeySchedule(
            [(m.name, m.public_key) for m in genesis.members],
            others=[(m.name, m.public_key) for m in genesis.observers],
        )
        schedule.set_voting("regulator1", joins, True)
        for cert in certificates(cluster, start, start + 4):
            cert.verify(genesis.chain_id, schedule)
            assert sorted(dict(cert.signatures)) == ["bank1", "bank2", "bank3", "regulator1"]
            with pytest.raises(CertificateError, match="non-member 'regulator1'"):
                cert.verify(genesis.chain_id, schedule.members_at(0))

        # Demoted again (three votes of five: bank1 proposes, bank2 and bank3 vote).
        demoted = propose_by_cli(net, "propose", "member.voting", regulator, "observer")
        vote_through(cluster, net, demoted["id"], voters=("bank2", "bank3"))
        leaves = executed_height(net, demoted["id"]) + DELAY
        push_blocks(cluster, leaves + 4, via=("bank1", "bank2"))
        wait_for(
            lambda: (
                f"regulator1 no longer votes from height {leaves}"
                in cluster["regulator1"].log_path.read_text()
            ),
            30,
            "regulator1 to stop its replica",
        )
        assert cluster["regulator1"].get("/status")["role"] == "observer"
        assert metric(cluster, "regulator1", "lendchain_voting") == 0
        assert metric(cluster, "regulator1", "lendchain_voting_members") == 4
        schedule.set_voting("regulator1", leaves, False)
        for cert in certificates(cluster, leaves, leaves + 4):
            cert.verify(genesis.chain_id, schedule)
            assert sorted(dict(cert.signatures)) == ["bank1", "bank2", "bank3"]  # 3 of n = 4
        # It still follows the chain as an observer does, block by block.
        push_blocks(cluster, leaves + 8, via=("bank1",))
        assert cluster.heights(["regulator1"])["regulator1"] >= leaves + 8

        # A stopped member's verify-chain checks each certificate against that height's voters.
        cluster.stop("bank3")
        checked = lendchain_cli("verify-chain", "--config", str(net / "bank3.toml"))
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        cluster.stop_all()
