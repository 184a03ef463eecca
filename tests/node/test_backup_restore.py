"""Four real node processes: a member backs up its running node, loses its data, and restores it.

The backup is taken through the CLI while the network commits; the member
later starts on it in place of its data directory, catches up from its peers
and votes again: with another member stopped, blocks commit only with it.
Then the stopped member is restored from another member's backup.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from lendchain.client import NodeError
from lendchain.node.cluster import wait_for
from tests.node.helpers import (
    client,
    committed_everywhere,
    lendchain_cli,
    metric,
    register,
    start_testnet,
)

pytestmark = pytest.mark.slow


def test_a_running_node_backs_up_and_a_member_restores_from_it(tmp_path):
    schedule = "[store]\nbackup_interval_s = 86400\nbackup_keep = 2\n"
    net, cluster = start_testnet(tmp_path, extra={"bank3": schedule})
    config = str(net / "bank2.toml")
    try:
        cluster.wait_healthy(timeout_s=90)
        # bank3 backs itself up once a day, and at once when it has no backup.
        wait_for(lambda: cluster["bank3"].get("/status")["backup"], 30, "bank3's first scheduled backup")
        scheduled = cluster["bank3"].get("/status")
        assert (
            scheduled["backup_schedule"]["interval_s"] == 86400 and scheduled["backup_schedule"]["keep"] == 2
        )
        assert scheduled["backup_schedule"]["next_s"] == round(scheduled["backup"]["written_s"]) + 86400
        shown = lendchain_cli("status", "--config", str(net / "bank3.toml")).stdout
        assert "next in 24.0 h (every 24 h, keeping 2)" in shown, shown
        with client(cluster, "bank1") as c:
            before = [register(c) for _ in range(3)]
        committed_everywhere(cluster, before, ["bank1", "bank2"])

        taken = lendchain_cli("--json", "backup", "--config", config, "--name", "nightly")
        assert taken.returncode == 0, taken.stderr
        info = json.loads(taken.stdout)
        backup_dir = net / "data" / "backups" / "nightly"  # the default: beside the data directory
        assert info["path"] == str(backup_dir) and info["node"] == "bank2" and info["height"] >= 1
        assert (
            json.loads((backup_dir / "lendchain-backup.json").read_text())["head_hash"] == info["head_hash"]
        )
        assert "backup of height" in cluster["bank2"].log_path.read_text()
        assert metric(cluster, "bank2", "lendchain_backup_height") == info["height"]
        assert cluster["bank2"].get("/status")["backup"]["path"] == info["path"]
        assert cluster["bank1"].get("/status")["backup"] is None
        shown = lendchain_cli("status", "--config", config)
        assert f"backup   height {info['height']}, 0.0 h ago, in {info['path']}" in shown.stdout, shown.stderr

        # The same name again, a name that is a path, and a direct copy of a store in use: refused.
        again = lendchain_cli("backup", "--config", config, "--name", "nightly")
        assert again.returncode == 1 and "already exists; choose another name" in again.stderr
        with client(cluster, "bank2") as c:
            with pytest.raises(NodeError) as refused:
                c.backup("../outside")
            assert (refused.value.status, refused.value.code) == (400, "backup_bad_name")
            with pytest.raises(NodeError) as refused:
                c.backup("fine", keep=0)
            assert (refused.value.status, refused.value.code) == (400, "backup_bad_request")
        # Counted: the backup that could not be written ("already exists"), not the refused requests.
        assert metric(cluster, "bank2", "lendchain_backups_failed_total") == 1
        offline = lendchain_cli("backup", "--offline", "--config", config)
        assert (
            offline.returncode == 1
            and "without --offline the running node takes the backup" in offline.stderr
        )

        # The backup replays on its own, while its node runs on.
        verified = lendchain_cli("--json", "verify-chain", "--config", config, "--data-dir", str(backup_dir))
        assert verified.returncode == 0, verified.stderr
        assert json.loads(verified.stdout)["height"] == info["height"]

        with client(cluster, "bank1") as c:
            after = [register(c) for _ in range(3)]
        committed_everywhere(cluster, after, ["bank1", "bank2"])

        # bank2 loses its data directory and comes back from the backup.
        cluster.stop("bank2")
        cold = lendchain_cli(
            "--json", "backup", "--offline", "--config", config, "--name", "cold", "--keep", "2"
        )
        assert cold.returncode == 0, cold.stderr
        cold_info = json.loads(cold.stdout)
        assert cold_info["height"] > info["height"] and cold_info["pruned"] == []  # bank2 had later blocks
        shutil.rmtree(net / "data" / "bank2")
        restored = lendchain_cli("--json", "restore", str(backup_dir), "--config", config)
        assert restored.returncode == 0, restored.stderr
        assert json.loads(restored.stdout)["height"] == info["height"]
        # Started cut off from its peers, it cannot know it is behind: it does not say it is
        # caught up, nor ready (its height is the backup's from the start, not 0).
        (tmp_path / "faults").mkdir()
        cluster.use_fault_files(tmp_path / "faults")
        cluster.set_faults("bank2", isolate=True)
        cluster.start("bank2")
        cluster.wait_healthy(["bank2"], timeout_s=90)
        assert "fault injection now: isolate=True" in cluster["bank2"].log_path.read_text()
        sync = cluster["bank2"].get("/status")["sync"]
        assert (sync["state"], sync["behind"]) == ("catching_up", None), sync
        assert httpx.get(cluster["bank2"].url + "/ready", timeout=5).status_code == 503
        assert metric(cluster, "bank2", "lendchain_catching_up") == 1
        assert metric(cluster, "bank2", "lendchain_height") == info["height"]
        cluster.set_faults("bank2")  # back on the network: it hears how far behind it is, catches up
        wait_for(lambda: cluster["bank2"].get("/status")["sync"]["state"] == "synced", 60, "bank2 synced")
        wait_for(
            lambda: httpx.get(cluster["bank2"].url + "/ready", timeout=5).status_code == 200, 30, "ready"
        )
        assert metric(cluster, "bank2", "lendchain_catching_up") == 0
        assert metric(cluster, "bank2", "lendchain_backup_height") == cold_info["height"]  # found at start
        committed_everywhere(cluster, before + after, ["bank2"])
        with client(cluster, "bank2") as c:
            newest = c.backup(keep=1)
        assert newest["pruned"] == ["nightly", "cold"]
        left = sorted(p.name for p in backup_dir.parent.iterdir())  # bank3's own backup stays
        assert left == [Path(newest["path"]).name, Path(scheduled["backup"]["path"]).name]

        # With bank4 stopped, three members are left: a block commits only if bank2 votes.
        cluster.stop("bank4")
        with client(cluster, "bank1") as c:
            last = [register(c)]
        committed_everywhere(cluster, last, ["bank1", "bank2", "bank3"], timeout_s=90)
        cluster.wait_agree(["bank1", "bank2", "bank3"], timeout_s=30)

        # bank4's operator restores it from bank1's backup (checked against the genesis first).
        from_bank1 = json.loads(lendchain_cli("--json", "backup", "--config", str(net / "bank1.toml")).stdout)
        bank4 = str(net / "bank4.toml")
        checked = lendchain_cli("verify-chain", "--config", bank4, "--data-dir", from_bank1["path"])
        assert checked.returncode == 0, checked.stderr
        restored = lendchain_cli("--json", "restore", from_bank1["path"], "--config", bank4, "--force")
        assert restored.returncode == 0, restored.stderr
        assert json.loads(restored.stdout)["height"] == from_bank1["height"]
        cluster.start("bank4")
        cluster.wait_healthy(["bank4"], timeout_s=90)
        committed_everywhere(cluster, last, ["bank4"])
        cluster.wait_agree(timeout_s=30)
    finally:
        cluster.stop_all()
