"""Four real node processes: the members change a chain parameter by governance (rules 6), through
the CLI, and every node shows the new value with the proposal that set it."""

from __future__ import annotations

import json

import pytest

from tests.node.helpers import lendchain_cli, propose_by_cli, start_testnet, vote_through

pytestmark = pytest.mark.slow


def test_the_members_change_a_parameter_and_every_node_shows_where_it_came_from(tmp_path):
    net, cluster = start_testnet(tmp_path, rules_version=6)
    try:
        cluster.wait_healthy(timeout_s=90)
        proposal = propose_by_cli(net, "propose", "params.set", "max_term_months", "360")
        vote_through(cluster, net, proposal["id"])
        cluster.wait_agree(timeout_s=30)
        for name in ("bank1", "bank2", "bank3", "bank4"):
            [row] = cluster[name].get("/params/max_term_months")["parameters"]
            assert (row["value"], row["source"], row["proposal_id"]) == (360, "governance", proposal["id"])
        shown = lendchain_cli("gov", "params", "--config", str(net / "bank4.toml"))
        assert shown.returncode == 0, shown.stderr
        assert f"changed by proposal {proposal['id'][:16]} at height" in shown.stdout
        refused = lendchain_cli(
            "--json", "gov", "propose", "params.set", "key_rotation_delay_blocks", "40",
            "--config", str(net / "bank1.toml"),
        )  # fmt: skip
        assert (
            refused.returncode == 2
            and "governance does not change key_rotation_delay_blocks" in refused.stderr
        )
        listed = json.loads(
            lendchain_cli("--json", "gov", "list", "--config", str(net / "bank1.toml")).stdout
        )
        assert listed["open"] == 0
    finally:
        assert set(cluster.stop_all().values()) == {0}
