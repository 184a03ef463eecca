"""Four real node processes: the members schedule the rules version after this release's newest.

The versions this release knows are scheduled first, a block apart, just
before the one it does not know (version ``RULES_VERSION + 1``).

Every node warns as soon as the upgrade executes and shows it in ``/status``;
each stops with exit code 4 right after the last block this release can
execute (the one before the activation height), with that block stored; the
same release started again stops again at once, and ``verify-chain`` finds
the chain intact up to there.
"""

from __future__ import annotations

import json

import pytest

from lendchain.client import NodeError
from lendchain.crypto import SigningKey
from lendchain.ledger.rules import MIN_NOTICE_BLOCKS, RULES_VERSION
from lendchain.node.cluster import wait_for
from tests.node.helpers import client, lendchain_cli, propose_by_cli, start_testnet, vote_through

pytestmark = pytest.mark.slow
NAMES = ("bank1", "bank2", "bank3", "bank4")


def test_nodes_stop_before_rules_this_release_cannot_execute(tmp_path):
    unknown = RULES_VERSION + 1
    known = range(2, unknown)
    net, cluster = start_testnet(tmp_path)
    try:
        cluster.wait_healthy(timeout_s=90)
        # Three txs to execute each upgrade (a block each at most): 20 blocks is enough notice.
        activation = cluster.heights(["bank1"])["bank1"] + MIN_NOTICE_BLOCKS + 10 + 3 * len(known)
        for version in known:
            known_at = str(activation - unknown + version)
            vote_through(
                cluster, net, propose_by_cli(net, "propose", "rules.upgrade", str(version), known_at)["id"]
            )
        proposal = propose_by_cli(net, "propose", "rules.upgrade", str(unknown), str(activation))
        cluster.wait_agree(timeout_s=30)  # committed on bank1; bank4 may be a block behind
        listed = lendchain_cli("gov", "list", "--config", str(net / "bank4.toml"))
        assert listed.returncode == 0, listed.stderr
        assert f"{proposal['id']}  rules.upgrade {unknown} = {activation}  open, 1/3 votes" in listed.stdout
        vote_through(cluster, net, proposal["id"])
        cluster.wait_agree(timeout_s=30)
        shown = lendchain_cli("--json", "gov", "show", proposal["id"], "--config", str(net / "bank4.toml"))
        assert json.loads(shown.stdout)["parsed"] == [activation, unknown], shown.stdout
        assert (
            "no proposal is open" in lendchain_cli("gov", "list", "--config", str(net / "bank4.toml")).stdout
        )
        for name in NAMES:
            assert cluster[name].get("/status")["rules"] == {
                "version": 1,
                "software_version": RULES_VERSION,
                "scheduled": [
                    *({"height": activation - unknown + version, "version": version} for version in known),
                    {"height": activation, "version": unknown},
                ],
                "upgrade_needed_at": activation,
            }
        shown = lendchain_cli("status", "--config", str(net / "bank3.toml"))
        assert shown.returncode == 0, shown.stderr
        assert f"version {unknown} from height {activation}" in shown.stdout
        assert f"UPGRADE  this node stops before block {activation}" in shown.stdout
        warning = f"will stop before block {activation}: install a release that supports rules {unknown}"
        for name in NAMES:
            wait_for(lambda name=name: warning in cluster[name].log_path.read_text(), 10, f"{name}'s warning")

        # Registrations until the nodes stop: each stops once it has stored block activation - 1.
        def all_stopped() -> bool:
            if cluster["bank1"].running:
                try:
                    with client(cluster, "bank1") as c:
                        c.submit(
                            c.build(SigningKey.generate(), "party.register", {"role": "borrower"}, nonce=0)
                        )
                except NodeError:
                    pass  # stopping under us
            return not any(cluster[name].running for name in NAMES)

        wait_for(all_stopped, 120, "every node to stop at the activation height", interval_s=0.2)
        stopped = f"stopped: block {activation} executes under rules version {unknown}"
        for name in NAMES:
            assert cluster[name].process.returncode == 4, cluster[name].log_tail()
            log = cluster[name].log_path.read_text()
            assert stopped in log and "Traceback" not in log, cluster[name].log_tail()

        # The same release, started again, stops at once and says why; nothing was lost.
        restarted = lendchain_cli("start", "--config", str(net / "bank2.toml"))
        assert restarted.returncode == 4
        assert f"cannot start: block {activation} executes under rules version {unknown}" in restarted.stderr
        verified = lendchain_cli("--json", "verify-chain", "--config", str(net / "bank2.toml"))
        assert verified.returncode == 0, verified.stderr
        assert json.loads(verified.stdout)["height"] == activation - 1
    finally:
        cluster.stop_all()
