"""Changes of who votes under load, with kill -9 at the switch: one chain, no accepted tx lost.

Four banks and regulator1 take a steady stream of registrations, on a chain
whose genesis starts it on rules 2. The members promote regulator1; right after it starts its replica it is killed
(kill -9) and restarted, and must come back voting. Then bank4 is killed: with
n = 5 every block needs regulator1's vote. Then the members demote bank1, the
primary of view 0: the next voter takes over, and bank1 follows the chain. The
independent checker of the chaos test then reads every block from every node.
"""

from __future__ import annotations

import random
import threading

import pytest

from lendchain.crypto import read_key_file
from lendchain.node.cluster import Cluster, free_port_block, wait_for
from lendchain.node.testnet import generate_testnet
from tests.node.helpers import client, propose_by_cli, vote_through
from tests.node.test_chaos import _check, _load
from tests.node.test_voting_change import executed_height

pytestmark = pytest.mark.slow
DELAY = 6


def logged(cluster: Cluster, name: str, text: str) -> bool:
    return text in cluster[name].log_path.read_text()


def test_voting_changes_under_load_with_kills_at_the_switch(tmp_path):
    p2p = free_port_block(10)
    api = free_port_block(10, start=p2p + 20)
    net = tmp_path / "net"
    # The chain starts on rules 2 (genesis [app] rules_version): no upgrade vote first.
    layout = generate_testnet(net, 4, observers=1, p2p_base_port=p2p, api_base_port=api, rules_version=2)
    genesis_path = net / "genesis.toml"
    text = genesis_path.read_text()
    genesis_path.write_text(text.replace("[app]\n", f"[app]\nkey_rotation_delay_blocks = {DELAY}\n", 1))
    cluster = Cluster(list(layout.configs), tmp_path / "logs")
    cluster.start_all()
    stop = threading.Event()
    accepted: list[tuple[str, str, float]] = []
    loader = threading.Thread(target=_load, args=(cluster, stop, accepted, random.Random(7)))
    try:
        cluster.wait_healthy(timeout_s=90)
        assert cluster["bank1"].get("/status")["rules"]["scheduled"] == [{"height": 1, "version": 2}]
        loader.start()

        regulator = read_key_file(net / "keys" / "regulator1.key").did
        promoted = propose_by_cli(net, "propose", "member.voting", regulator, "voter")
        vote_through(cluster, net, promoted["id"])
        joins = executed_height(net, promoted["id"]) + DELAY
        started = f"regulator1 votes from height {joins}"
        wait_for(lambda: logged(cluster, "regulator1", started), 60, "regulator1 to start its replica")
        cluster.kill("regulator1")  # right at the switch
        cluster.start("regulator1")
        cluster.wait_healthy(["regulator1"], timeout_s=60)
        assert cluster["regulator1"].get("/status")["role"] == "member"

        cluster.kill("bank4")  # n = 5: no block without regulator1's vote now
        height = cluster.heights(["bank1"])["bank1"]
        cluster.wait_height(height + 5, ["bank1", "bank2", "bank3", "regulator1"], timeout_s=60)
        cluster.start("bank4")
        cluster.wait_healthy(["bank4"], timeout_s=60)

        bank1 = read_key_file(net / "keys" / "bank1.key").did
        with client(cluster, "bank2") as c:  # bank2 proposes; bank3 and bank4 vote
            proposal = c.build(read_key_file(net / "keys" / "bank2.key"), "gov.propose",
                               {"action": "member.voting", "key": bank1, "value": "observer"})  # fmt: skip
            c.submit(proposal)
            assert c.wait_tx(proposal.id.hex(), 60)["result"]["code"] == "ok"
        vote_through(cluster, net, proposal.id.hex(), voters=("bank3", "bank4"))
        leaves = executed_height(net, proposal.id.hex()) + DELAY
        wait_for(
            lambda: logged(cluster, "bank1", f"bank1 no longer votes from height {leaves}"),
            60,
            "bank1 to stop its replica",
        )
        cluster.wait_height(leaves + 5, timeout_s=60)
        status = cluster["bank2"].get("/status")
        assert status["members"] == ["bank2", "bank3", "bank4", "regulator1"]
        assert status["primary"] != "bank1"
        assert cluster["bank1"].get("/status")["role"] == "observer"

        stop.set()
        loader.join()
        head = _check(cluster, [tx_id for tx_id, _, _ in accepted])
        assert head >= leaves + 5 and len(accepted) >= 40  # the load ran throughout
    finally:
        stop.set()
        cluster.stop_all()
