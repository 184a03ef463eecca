"""Five real node processes on 127.0.0.1: a bank the genesis does not name joins, votes, then leaves.

bank1-bank4 run a chain on rules 3. bank5's node starts with ``join = true``
before anyone admitted it: its peers refuse it, and it says it is joining.
The members admit it (``member.admit``, with the request its own key signed);
every node links to it, and it follows the chain from block 1. Promoted
(``member.voting``), it starts a replica without a restart; with bank4
stopped, n = 5 needs four votes, so every block needs bank5's. A stopped
genesis member's verify-chain, and bank5's own, check every certificate.
Then bank5 leaves: demoted first (a voter cannot be removed), then removed
(``member.remove``) while its node is down; the network lets it go
``key_rotation_delay_blocks`` later while the four go on. Restarted, its node
fetches the blocks up to its removal, and none after it, says it was removed
and links to no one.
"""

from __future__ import annotations

import json

import pytest

from lendchain.consensus.keys import KeySchedule
from lendchain.crypto import SigningKey, read_key_file, write_key_file
from lendchain.node.cluster import Cluster, free_port_block, wait_for
from lendchain.node.testnet import generate_testnet
from tests.node.helpers import client, lendchain_cli, metric, propose_by_cli, push_blocks, vote_through
from tests.node.test_voting_change import certificates, executed_height

pytestmark = pytest.mark.slow
DELAY = 6
BANKS = ("bank1", "bank2", "bank3", "bank4")


def test_a_bank_joins_by_governance_votes_once_promoted_and_leaves(tmp_path):
    p2p = free_port_block(10)
    api = free_port_block(10, start=p2p + 20)
    net = tmp_path / "net"
    layout = generate_testnet(net, 4, p2p_base_port=p2p, api_base_port=api, rules_version=3)
    genesis_path = net / "genesis.toml"
    genesis_path.write_text(
        genesis_path.read_text().replace("[app]\n", f"[app]\nkey_rotation_delay_blocks = {DELAY}\n")
    )
    # The joining bank's side: key, config (join = true) and admission request in one directory.
    listen, bank5_dir = f"/ip4/127.0.0.1/tcp/{p2p + 5}", tmp_path / "bank5"
    made = lendchain_cli(
        "join", "bank5", "--genesis", str(genesis_path), "--address", listen, "--roles", "lender",
        "--api-listen", f"127.0.0.1:{api + 5}", "--out", str(bank5_dir),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = read_key_file(bank5_dir / "keys" / "bank5.key")
    cluster = Cluster([*layout.configs, bank5_dir / "bank5.toml"], tmp_path / "logs")
    cluster.start_all()
    try:
        cluster.wait_healthy(timeout_s=90)
        genesis = cluster["bank1"].config.genesis
        joining = cluster["bank5"].get("/status")
        assert (joining["role"], joining["height"], joining["peers"]) == ("joining", 0, [])
        assert joining["did"] == key.did
        assert metric(cluster, "bank5", "lendchain_consortium_member") == 0
        # Its peers refuse a key no admission names.
        wait_for(lambda: metric(cluster, "bank1", "lendchain_p2p_rejected_peers") >= 1, 30, "a refusal")

        # A voting member proposes the request the joining bank handed over.
        admitted = propose_by_cli(net, "propose-admit", str(bank5_dir / "bank5-admission.json"))
        vote_through(cluster, net, admitted["id"], voters=("bank2", "bank3"))
        at = executed_height(net, admitted["id"])
        wait_for(lambda: cluster["bank5"].get("/status")["height"] >= at, 60, "bank5 to follow the chain")
        assert cluster["bank5"].get("/status")["role"] == "observer"
        assert metric(cluster, "bank5", "lendchain_consortium_member") == 1
        wait_for(lambda: set(cluster["bank5"].get("/status")["peers"]) == set(BANKS), 30, "links to bank5")
        assert cluster["bank1"].get("/status")["consortium"] == [*BANKS, "bank5"]
        with client(cluster, "bank5") as c:
            party = c.get(f"/parties/{key.did}")
        assert (party["name"], party["address"], party["roles"]) == ("bank5", listen, ["lender"])

        promoted = propose_by_cli(net, "propose", "member.voting", key.did, "voter")
        vote_through(cluster, net, promoted["id"], voters=("bank2", "bank3"))
        joins = executed_height(net, promoted["id"]) + DELAY
        push_blocks(cluster, joins + 2)
        wait_for(
            lambda: f"bank5 votes from height {joins}" in cluster["bank5"].log_path.read_text(),
            30,
            "bank5 to start its replica",
        )
        assert cluster["bank5"].get("/status")["role"] == "member"
        assert metric(cluster, "bank1", "lendchain_voting_members") == 5

        # n = 5: a quorum is 4, so with bank4 down no block commits without bank5.
        cluster.stop("bank4")
        start = cluster.heights(["bank1"])["bank1"] + 1
        push_blocks(cluster, start + 4, via=("bank1", "bank5"))
        schedule = KeySchedule([(m.name, m.public_key) for m in genesis.members])
        schedule.admit("bank5", key.public_key)
        schedule.set_voting("bank5", joins, True)
        for cert in certificates(cluster, start, start + 4):
            cert.verify(genesis.chain_id, schedule)
            assert sorted(dict(cert.signatures)) == ["bank1", "bank2", "bank3", "bank5"]

        for name in ("bank4", "bank5"):  # a genesis member's store, and the joined member's own
            if name == "bank5":
                cluster.stop("bank5")
            config = bank5_dir / "bank5.toml" if name == "bank5" else net / f"{name}.toml"
            checked = lendchain_cli("verify-chain", "--config", str(config))
            assert checked.returncode == 0, checked.stdout + checked.stderr
        # Its store shows it admitted with its key: another key file is refused, naming the admission.
        write_key_file(bank5_dir / "keys" / "impostor.key", SigningKey.generate())
        impostor = bank5_dir / "impostor.toml"
        impostor.write_text(
            (bank5_dir / "bank5.toml").read_text().replace("keys/bank5.key", "keys/impostor.key")
        )
        refused = lendchain_cli("start", "--check", "--config", str(impostor))
        assert (
            refused.returncode == 1
            and "but its admission (member.admit) lists" in refused.stdout + refused.stderr
        )
        # Restarted, a genesis member links to bank5 from its store; bank5 votes again.
        cluster.start("bank4")
        cluster.start("bank5")
        cluster.wait_healthy(["bank4", "bank5"], timeout_s=60)
        wait_for(lambda: "bank5" in cluster["bank4"].get("/status")["peers"], 30, "bank4 to link to bank5")
        assert cluster["bank5"].get("/status")["role"] == "member"

        # bank4's node moves to another port (member.address): the others dial it there.
        cluster.stop("bank4")
        moved = f"/ip4/127.0.0.1/tcp/{p2p + 7}"
        bank4 = read_key_file(net / "keys" / "bank4.key")
        change = propose_by_cli(net, "propose", "member.address", bank4.did, moved)
        vote_through(cluster, net, change["id"], voters=("bank2", "bank3"))
        for name in ("bank1", "bank5"):
            wait_for(
                lambda name=name: "bank4's node moved" in cluster[name].log_path.read_text(), 30, "the move"
            )
        # Its config sets no [p2p] listen: back on its old address, it catches up, reads its
        # move and listens at the new address, with no restart and no config change.
        cluster.start("bank4")
        cluster.wait_healthy(["bank4"], timeout_s=60)
        wait_for(
            lambda: (
                f"p2p listening moves from {genesis.member('bank4').address} to {moved}"
                in cluster["bank4"].log_path.read_text()
            ),
            60,
            "bank4 to move",
        )
        wait_for(
            lambda: set(cluster["bank4"].get("/status")["peers"]) == {"bank1", "bank2", "bank3", "bank5"},
            30,
            "bank4 linked at its new address",
        )
        cluster.stop("bank4")  # restarted, it listens where the chain says from the start
        cluster.start("bank4")
        cluster.wait_healthy(["bank4"], timeout_s=60)
        assert (
            f"listening on {moved}, the address member.address recorded"
            in cluster["bank4"].log_path.read_text()
        )
        wait_for(lambda: len(cluster["bank4"].get("/status")["peers"]) == 4, 30, "bank4 linked again")
        with client(cluster, "bank1") as c:
            assert c.get(f"/parties/{bank4.did}")["address"] == moved

        # bank5 leaves: demoted first (removing a voter is refused), then removed.
        refused = lendchain_cli(
            "--json",
            "gov",
            "propose",
            "member.remove",
            key.did,
            "leaves",
            "--config",
            str(net / "bank1.toml"),
        )
        assert "demote it first" in refused.stdout + refused.stderr
        demoted = propose_by_cli(net, "propose", "member.voting", key.did, "observer")
        vote_through(cluster, net, demoted["id"], voters=("bank2", "bank3"))
        leaves = executed_height(net, demoted["id"]) + DELAY
        push_blocks(cluster, leaves + 1)
        # Its node is down when the members remove it, and until they have let it go.
        cluster.stop("bank5")
        removed = propose_by_cli(net, "propose", "member.remove", key.did, "leaves the consortium")
        vote_through(cluster, net, removed["id"], voters=("bank2", "bank3"))
        removed_at = executed_height(net, removed["id"])
        # From the removal on the members dial bank5 no more (its node, were it up, would read the
        # removal and leave): no longer a node they link to, so no link counts as down.
        wait_for(lambda: metric(cluster, "bank1", "lendchain_p2p_members") == 3, 30, "bank1 to stop dialling")
        assert metric(cluster, "bank1", "lendchain_p2p_connected") == 3
        assert "bank5 was removed from the consortium: this node dials it no more" in (
            cluster["bank1"].log_path.read_text()
        )
        push_blocks(cluster, removed_at + DELAY + 1, names=list(BANKS))
        wait_for(
            lambda: cluster["bank1"].get("/status")["consortium"] == list(BANKS), 30, "bank5 to be let go"
        )
        let_go = "bank5 was removed from the consortium: its links are closed"
        assert let_go in cluster["bank1"].log_path.read_text()
        # Back, it may still fetch blocks up to the one that removes it, and no further:
        # its operator reads the removal on its own node, which then links to no one.
        restarted_at = len(cluster["bank5"].log_path.read_text())
        cluster.start("bank5")
        wait_for(lambda: cluster["bank5"].get("/status")["role"] == "removed", 60, "bank5 to learn it")
        log = cluster["bank5"].log_path.read_text()
        assert f"bank5 was removed from the consortium at height {removed_at}" in log
        assert "this node's member was removed from the consortium: it links to no member now" in log
        assert metric(cluster, "bank5", "lendchain_consortium_member") == 0
        assert metric(cluster, "bank1", "lendchain_consortium_member") == 1
        wait_for(lambda: cluster["bank5"].get("/status")["peers"] == [], 30, "bank5's links closed")
        assert cluster["bank5"].get("/status")["height"] == removed_at
        start = cluster.heights(["bank1"])["bank1"]
        push_blocks(cluster, start + 3, names=list(BANKS))  # the four go on
        assert cluster["bank5"].get("/status")["height"] == removed_at
        # Its links never flapped, it said once that it links to no one, and no one dialled it.
        since_restart = cluster["bank5"].log_path.read_text()[restarted_at:]
        assert since_restart.count("it links to no member now") == 1
        for flap in ("nothing heard for", "refused inbound connection", "gossip subscription is missing"):
            assert flap not in since_restart, flap

        # The consortium as the chain records it, from any member's node.
        shown = lendchain_cli("--json", "gov", "members", "--config", str(net / "bank2.toml"))
        assert shown.returncode == 0, shown.stderr
        by_name = {m["name"]: m for m in json.loads(shown.stdout)["members"]}
        assert list(by_name) == [*BANKS, "bank5"]
        assert by_name["bank1"]["address"] == genesis.member("bank1").address  # from the genesis
        assert by_name["bank4"]["address"] == moved
        assert by_name["bank5"]["joined"] == "admitted" and by_name["bank5"]["removed_height"] == removed_at
        text = lendchain_cli("gov", "members", "bank5", "--config", str(net / "bank2.toml")).stdout
        assert f"removed at {removed_at}: leaves the consortium" in text and "admitted at" in text
    finally:
        cluster.stop_all()
