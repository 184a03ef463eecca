"""Four real node processes on rules 6 upgrade to rules 7 through the CLI, then take rules 7's kinds.

The ledger tests pin what each rules-7 kind stores and says (test_rules7_bytes); the chain-backed
CLI tests cover each command's cases. This one confirms the real path of a chain that was running
before rules 7 existed: a loan flows on rules 6; ``gov propose rules.upgrade 7 HEIGHT`` and two
``gov vote``s, each a ``lendchain`` process signing with its member's node key, schedule it; until
the height ``loan guarantee`` refuses to send (saying when rules 7 starts) and a node's ``/check``
says the kind would be left out of the next block; from the height the same command commits, and
every node reports rules 7 at one head. Then the new kinds, each through its command: the guarantor
signs the guarantee with its party key and every node shows its contingent exposure; the buyer of a
share offered under rules 6 declines it; the members raise ``min_share_part_bps`` to 250 and an
offer of a smaller part is refused by that parameter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lendchain.client import NodeClient
from lendchain.crypto import SigningKey, read_key_file, write_key_file
from lendchain.ledger.rules import MIN_NOTICE_BLOCKS, RULES_VERSION
from lendchain.node.cluster import Cluster
from lendchain.node.demo import run_demo
from tests.cli.test_transfer_book_node import attest_kyc, send_all
from tests.node.helpers import lendchain_cli, push_blocks, start_testnet

pytestmark = pytest.mark.slow

NAMES = ("bank1", "bank2", "bank3", "bank4")
TARGET = 120_000
CAP = 50_000
DEED = "d0" * 32


def on_every_node(cluster: Cluster, *args: str) -> dict[str, subprocess.CompletedProcess]:
    """``lendchain ARGS --node URL`` against each node at once (read-only commands): their results."""
    started = {
        name: subprocess.Popen(
            [sys.executable, "-m", "lendchain", *args, "--node", cluster[name].url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in NAMES
    }
    done = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=60)
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return done


def ok(*args: str) -> str:
    """``lendchain ARGS``, which must succeed: its standard output."""
    result = lendchain_cli(*args)
    assert result.returncode == 0, f"lendchain {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def vote_by_cli(net: Path, proposal_id: str) -> None:
    """bank2 and bank3 vote for the proposal with ``lendchain gov vote`` (bank1 proposed it: 3 of 4)."""
    for voter in ("bank2", "bank3"):
        assert ": ok" in ok("gov", "vote", proposal_id, "--config", str(net / f"{voter}.toml"))


def propose_by_cli(net: Path, *args: str) -> str:
    """``lendchain --json gov propose ARGS`` as bank1, committed ok: the proposal's id."""
    proposal = json.loads(ok("--json", "gov", "propose", *args, "--config", str(net / "bank1.toml")))
    assert proposal["result"]["code"] == "ok", proposal
    return proposal["id"]


def syndicated_loan(client: NodeClient, net: Path, bank1: SigningKey, parties: dict[str, SigningKey]) -> str:
    """A loan of TARGET offered syndicated by bank1 (``loan offer --funding-window-ms``), funded by the
    seller (80 000) and bank1 (40 000), disbursed and repaid once."""
    for name, key in parties.items():
        send_all(client, key, "party.register", [{"role": "borrower" if name == "borrower" else "investor"}])
    borrower = parties["borrower"]
    attest_kyc(client, bank1, borrower)
    apply = {"amount": TARGET, "currency": "EUR", "term_months": 12, "purpose": "a delivery van"}
    [loan_id] = send_all(client, borrower, "loan.apply", [apply])
    offer = ["--json", "loan", "offer", loan_id, "--rate-bps", "800", "--funding-window-ms", "3600000"]
    offer_id = json.loads(ok(*offer, "--config", str(net / "bank1.toml")))["id"]
    send_all(client, borrower, "loan.accept", [{"loan_id": loan_id, "offer_id": offer_id}])
    send_all(client, parties["seller"], "loan.fund", [{"loan_id": loan_id, "amount": 80_000}])
    send_all(client, bank1, "loan.fund", [{"loan_id": loan_id, "amount": 40_000}])
    send_all(client, bank1, "loan.disburse", [{"loan_id": loan_id}])
    send_all(client, bank1, "loan.repay", [{"loan_id": loan_id, "amount": 10_000}])
    return loan_id


def test_a_rules_6_network_upgrades_to_7_and_takes_its_kinds_through_the_cli(tmp_path):
    assert RULES_VERSION >= 7  # the test schedules version 7 on a chain that starts on 6
    net, cluster = start_testnet(tmp_path, rules_version=6)
    try:
        cluster.wait_healthy(timeout_s=90)
        # The devnet's demo loan flows on rules 6 too, without the guarantee it shows from rules 7.
        demo = run_demo(cluster, net)["text"]
        assert "loan.repay" in demo and "(no guarantee: this chain runs rules older than 7)" in demo, demo
        bank1 = read_key_file(net / "keys" / "bank1.key")
        parties = {name: SigningKey.generate() for name in ("borrower", "seller", "buyer", "guarantor")}
        key_files = {name: str(write_key_file(tmp_path / f"{name}.key", k)) for name, k in parties.items()}
        with NodeClient(cluster["bank1"].url, timeout=10) as client:
            loan_id = syndicated_loan(client, net, bank1, parties)
            # An offer made under rules 6, which its buyer declines under rules 7.
            offer = {"loan_id": loan_id, "to": parties["buyer"].did, "amount": 30_000, "price": 29_000}
            send_all(client, parties["seller"], "loan.share_assign", [offer])
        bank1_config = ["--config", str(net / "bank1.toml")]
        guarantee = ["loan", "guarantee", loan_id, "--guarantor", parties["guarantor"].did]
        guarantee += ["--amount", str(CAP), "--kind", "personal", "--deed-hash", DEED, *bank1_config]

        # Rules 6: the command names the version it needs and how to get it; the node would leave the
        # kind out of its next block.
        early = lendchain_cli(*guarantee)
        assert early.returncode == 1, early.stdout + early.stderr
        assert (
            "this chain runs rules version 6 and loan.guarantee needs version 7: "
            "schedule it first with `lendchain gov propose rules.upgrade 7 HEIGHT`"
        ) in early.stderr
        payload = {
            "loan_id": loan_id,
            "guarantor": parties["guarantor"].did,
            "amount": CAP,
            "kind": "personal",
            "evidence_hash": DEED,
        }
        checked = lendchain_cli("tx", "check", "loan.guarantee", json.dumps(payload), *bank1_config)
        assert checked.returncode == 1, checked.stdout + checked.stderr
        assert "would be left out of block" in checked.stdout
        assert "(unknown_kind): field 'kind': loan.guarantee exists from rules version 7" in checked.stdout

        # The upgrade, voted through by three of the four members.
        activation = cluster.heights(["bank1"])["bank1"] + MIN_NOTICE_BLOCKS + 6
        upgrade = propose_by_cli(net, "rules.upgrade", "7", str(activation))
        vote_by_cli(net, upgrade)
        shown = ok("status", "--config", str(net / "bank3.toml"))
        assert f"rules    version 6 (this release runs up to {RULES_VERSION})" in shown
        assert f"version 7 from height {activation}" in shown
        pending = lendchain_cli(*guarantee)
        assert pending.returncode == 1, pending.stdout + pending.stderr
        assert f"needs version 7: it starts at height {activation}; send it from then on" in pending.stderr

        push_blocks(cluster, activation - 1)
        proposed = json.loads(ok("--json", *guarantee))
        assert proposed["result"]["code"] == "ok" and proposed["height"] >= activation, proposed
        guarantee_id = proposed["id"]
        head = cluster.wait_agree(timeout_s=30)
        for name in NAMES:
            status = cluster[name].get("/status")
            assert status["rules"]["version"] == 7 and status["rules"]["scheduled"] == [], (name, status)
            assert (status["height"], status["state_root"]) == (head["height"], head["state_root"]), name
        assert f"rules    version 7 (this release runs up to {RULES_VERSION})" in ok(
            "status", "--config", str(net / "bank4.toml")
        )

        # The guarantor signs with its party key; every node shows what it stands behind.
        accepted = ok("loan", "accept-guarantee", loan_id, "--key", key_files["guarantor"], *bank1_config)
        assert "loan.guarantee_accepted" in accepted, accepted
        cluster.wait_agree(timeout_s=30)
        for name, shown in on_every_node(cluster, "party", "exposure", parties["guarantor"].did).items():
            assert shown.returncode == 0, (name, shown.stderr)
            assert "as guarantor (contingent exposure)" in shown.stdout, (name, shown.stdout)
            assert f"  EUR  contingent {CAP}  called 0  active 1  proposed 0" in shown.stdout, name
            assert (
                f"  guarantee {guarantee_id[:16]} of loan {loan_id[:16]} (repaying): active" in shown.stdout
            )

        # The buyer declines the share offered to it under rules 6.
        declined = ok(
            "fund",
            "decline-assignment",
            loan_id,
            "--note",
            "over our sector limit",
            "--key",
            key_files["buyer"],
            *bank1_config,
        )
        assert "loan.share_offer_declined" in declined, declined
        funding = cluster["bank2"].get(f"/loans/{loan_id}")["funding"]
        assert funding["share_offers"] == [] and len(funding["share_declines"]) == 1, funding

        # A chain parameter rules 7 added, changed by governance; the next offer is judged by it.
        change = propose_by_cli(net, "params.set", "min_share_part_bps", "250")
        vote_by_cli(net, change)
        assert "min_share_part_bps" in ok("gov", "params", "min_share_part_bps", *bank1_config)
        shown = ok("--json", "gov", "params", "min_share_part_bps", *bank1_config)
        assert json.loads(shown)["parameters"][0]["value"] == 250, shown
        small = lendchain_cli(
            "fund",
            "assign",
            loan_id,
            "2000",
            "--to",
            parties["buyer"].did,
            "--key",
            key_files["seller"],
            *bank1_config,
        )
        assert small.returncode == 1, small.stdout + small.stderr
        assert (
            "less than 3000, the least part of a share that is sold (2.5 % of the loan's 120000: "
            "the chain's min_share_part_bps is 250)"
        ) in small.stderr
        cluster.wait_agree(timeout_s=30)
    finally:
        cluster.stop_all()
