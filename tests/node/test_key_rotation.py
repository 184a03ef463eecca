"""Four real node processes on 127.0.0.1: bank2 rotates its node key through governance.

bank2 is configured with ``next_key_file`` before the rotation, signs with the new
key from the effective height on and moves its libp2p identity to it there, without a
restart: peers accept its new PeerID and retire the old one. A restart with the same
config keeps the new key (``next_key_file`` is its network identity now). From the
effective height bank2's transactions are signed with the new key too (the old one is
refused). A stopped node's ``verify-chain`` checks every certificate with the keys
valid at its height.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from lendchain.client import NodeError
from lendchain.consensus.certificate import CommitCertificate
from lendchain.consensus.keys import KeySchedule
from lendchain.crypto import SigningKey, read_key_file, write_key_file
from lendchain.ledger.audit import verify_export
from lendchain.node.cluster import Cluster, free_port_block, wait_for
from lendchain.node.network_host import peer_id_of
from lendchain.node.testnet import generate_testnet
from tests.node.helpers import client, committed_everywhere, propose_by_cli, push_blocks, vote_through

pytestmark = pytest.mark.slow
DELAY = 6


def bank2_signed_from(cluster: Cluster, start: int, schedule: KeySchedule, chain_id: str) -> list[int]:
    """Heights >= start whose stored certificate holds bank2's COMMIT, each verified with the schedule."""
    signed = []
    with client(cluster, "bank1") as c:
        head = cluster.heights(["bank1"])["bank1"]
        for height in range(start, head + 1):
            doc = c.get(f"/blocks/{height}")
            cert = CommitCertificate.decode(bytes.fromhex(doc["certificate"]["hex"]))
            cert.verify(chain_id, schedule)
            if "bank2" in dict(cert.signatures):
                signed.append(height)
    return signed


def test_rotate_bank2_key_through_governance(tmp_path):
    p2p = free_port_block(8)
    api = free_port_block(8, start=p2p + 20)
    layout = generate_testnet(tmp_path / "net", 4, p2p_base_port=p2p, api_base_port=api)
    net = tmp_path / "net"
    genesis_path = net / "genesis.toml"
    genesis_path.write_text(genesis_path.read_text() + f"\n[app]\nkey_rotation_delay_blocks = {DELAY}\n")
    new_key = SigningKey.generate()
    write_key_file(net / "keys" / "bank2.next.key", new_key)
    bank2_config = next(c for c in layout.configs if c.stem == "bank2")
    original = bank2_config.read_text()
    bank2_config.write_text(
        original.replace("data_dir", 'next_key_file = "keys/bank2.next.key"\ndata_dir', 1)
    )
    cluster = Cluster(list(layout.configs), tmp_path / "logs")
    cluster.start_all()
    try:
        cluster.wait_healthy(timeout_s=90)
        genesis = cluster["bank1"].config.genesis
        keys = {n: read_key_file(net / "keys" / f"{n}.key") for n in ("bank1", "bank2", "bank3", "bank4")}
        # bank1 proposes through the CLI, which has the new key sign its proof.
        proposed = propose_by_cli(net, "propose-rotate-key", "bank2", str(net / "keys" / "bank2.next.key"))
        vote_through(cluster, net, proposed["id"])
        with client(cluster, "bank1") as c:
            rotations = c.get("/node-keys/bank2")["members"][0]["rotations"]
        assert [r["public_key"] for r in rotations] == [new_key.public_key.hex()]
        effective = rotations[0]["effective_height"]
        schedule = KeySchedule([(m.name, m.public_key) for m in genesis.members])
        schedule.add("bank2", effective, new_key.public_key)

        # Through bank2 too: its gossip goes on while its host moves to the new key.
        push_blocks(cluster, effective + 8, via=("bank1", "bank2"))
        assert bank2_signed_from(cluster, effective, schedule, genesis.chain_id), "bank2 never signed"

        # The CLI signs bank2's transactions with its next_key_file now the rotation is in effect,
        # and the ledger counts them as bank2's.
        result = subprocess.run(
            [sys.executable, "-m", "lendchain", "--json", "gov", "propose", "member.roles",
             keys["bank2"].did, "lender,kyc", "--config", str(bank2_config)],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        proposed_by_bank2 = json.loads(result.stdout)
        voted = next(e for e in proposed_by_bank2["result"]["events"] if e["event"] == "gov.voted")
        assert voted["voter"] == keys["bank2"].did
        committed_everywhere(cluster, [proposed_by_bank2["id"]], ["bank1"])  # bank1 may be a block behind
        with client(cluster, "bank1") as c:
            signer = c.get(f"/parties/{new_key.did}")
        assert signer["kind"] == "member_key" and signer["member"] == "bank2" and signer["nonce"] == 1

        # At the effective height bank2 moved its network identity to the new key, without a
        # restart: its peers saw it there and refuse the old key from then on.
        moved = "bank2's node key rotation is in effect from height"
        wait_for(lambda: moved in cluster["bank2"].log_path.read_text(), 30, "bank2 to move its identity")
        with client(cluster, "bank2") as c:
            status = c.get("/status")
        assert status["did"] == keys["bank2"].did and status["key_did"] == new_key.did
        assert status["peer_id"] == str(peer_id_of(new_key.public_key))
        shown = subprocess.run(
            [sys.executable, "-m", "lendchain", "status", "--config", str(bank2_config)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert f"key      rotated: signs as {new_key.did}, peer {status['peer_id']}" in shown.stdout, shown
        for name in ("bank1", "bank3", "bank4"):  # seen on its new key: its old one is refused now
            wait_for(
                lambda name=name: "bank2 proved a newer node key" in cluster[name].log_path.read_text(),
                30,
                f"{name} to see bank2's new node key",
            )
        moved_at = max(cluster.heights(["bank1"]).values())

        def bank2_signs_after(height: int) -> bool:
            push_blocks(cluster, max(cluster.heights().values()) + 1)
            return bool(bank2_signed_from(cluster, height + 1, schedule, genesis.chain_id))

        wait_for(
            lambda: bank2_signs_after(moved_at), 90, "bank2's commits under its new PeerID", interval_s=0.1
        )

        # A restart needs no config change: next_key_file is its network key now.
        cluster.stop("bank2")
        restarted_at = max(cluster.heights(["bank1"]).values())
        cluster.start("bank2")
        cluster.wait_healthy(["bank2"], timeout_s=90)
        with client(cluster, "bank2") as c:
            assert c.get("/status")["key_did"] == new_key.did
        wait_for(
            lambda: bank2_signs_after(restarted_at), 90, "bank2's commits after its restart", interval_s=0.1
        )

        # A loan applied for after the rotation: its audit export proves the rotation, and
        # verifies against the genesis alone.
        borrower = SigningKey.generate()
        attester = next(m.name for m in genesis.members if "kyc" in m.roles)
        far = int(time.time() * 1000) + 86_400_000
        with client(cluster, "bank1") as c:
            c.send(borrower, "party.register", {"role": "borrower"})
            kyc = {"subject": borrower.did, "level": 2, "expires_ms": far, "evidence_hash": "cd" * 32}
            c.send(keys[attester], "kyc.attest", kyc)
            apply = {"amount": 90_000, "currency": "EUR", "term_months": 3, "purpose": "after rotation"}
            loan_id = c.send(borrower, "loan.apply", apply)["id"]
            # bank2's transactions are signed with its new key now; the old one is refused.
            stale = c.build(keys["bank2"], "loan.offer", {"loan_id": loan_id, "rate_bps": 900})
            with pytest.raises(NodeError) as refused:  # at the door: the old key never signs again
                c.submit(stale)
            assert refused.value.code == "forbidden" and "replaced key" in str(refused.value)
            sent = c.send(new_key, "loan.offer", {"loan_id": loan_id, "rate_bps": 850})
            assert sent["sender"] == new_key.did and sent["sender_name"] == "bank2"
            offered = sent["result"]
            offer = next(e for e in offered["events"] if e["event"] == "loan.offered")
            stored = c.get(f"/offers/{offer['offer_id']}")
            assert stored["lender"] == keys["bank2"].did, stored  # bank2's identity, not the key's DID
            export = c.get(f"/audit/{loan_id}")
        summary = verify_export(export, genesis)
        assert summary["complete_to_height"] > effective
        assert summary["key_rotations"] == [
            {"member": "bank2", "effective_height": effective, "public_key": new_key.public_key.hex()}
        ]

        cluster.stop("bank3")
        checked = subprocess.run(
            [
                sys.executable,
                "-m",
                "lendchain",
                "verify-chain",
                "--config",
                str(cluster["bank3"].config_path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert checked.returncode == 0, checked.stderr
        replayed = int(checked.stdout.split(" blocks replayed")[0].split()[-1])
        assert replayed > effective, checked.stdout
    finally:
        cluster.stop_all()
