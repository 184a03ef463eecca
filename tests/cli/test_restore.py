"""``lendchain backup --offline`` and ``lendchain restore``: guarded, never deleting a data directory."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lendchain.cli import main
from lendchain.node.config import load_node_config
from lendchain.node.store import ChainStore
from lendchain.node.testnet import generate_testnet


@pytest.fixture
def node(tmp_path):
    """bank1's config in a generated 4-node testnet, with its store created (at genesis)."""
    layout = generate_testnet(tmp_path / "net", 4)
    config = load_node_config(layout.configs[0])
    ChainStore.open(config.data_dir, config.genesis).close()
    return config


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def backed_up(config, name: str) -> str:
    result = cli("--json", "backup", "--offline", "--config", str(config.path), "--name", name)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["path"]


def test_a_damaged_data_directory_is_moved_aside_and_the_backup_put_in_its_place(node):
    backup = backed_up(node, "b1")
    (node.data_dir / "CURRENT").write_text("MANIFEST-999999\n")  # LevelDB cannot open it now
    result = cli("--json", "restore", backup, "--config", str(node.path))
    assert result.exit_code == 0, result.output
    restored = json.loads(result.output)
    assert restored["height"] == 0 and restored["data_dir"] == str(node.data_dir)
    aside = node.data_dir.parent / restored["replaced"].rsplit("/", 1)[1]
    assert (aside / "CURRENT").read_text() == "MANIFEST-999999\n"  # kept, not deleted
    with ChainStore.open(node.data_dir, node.genesis, create=False) as store:
        assert store.head().height == 0
    assert (node.backup_dir / "b1" / "lendchain-backup.json").exists()  # the backup is copied, not moved


def test_a_missing_data_directory_is_restored_without_force(node):
    backup = backed_up(node, "b1")
    (node.data_dir).rename(node.data_dir.with_name("gone"))
    result = cli("restore", backup, "--config", str(node.path))
    assert result.exit_code == 0, result.output
    assert "restored" in result.output and "moved" not in result.output


def test_a_healthy_data_directory_needs_force(node):
    backup = backed_up(node, "b1")
    result = cli("restore", backup, "--config", str(node.path))
    assert result.exit_code == 1
    assert (
        "opens cleanly at height 0 (the backup is at 0); pass --force to replace it anyway" in result.output
    )
    assert sorted(p.name for p in node.data_dir.parent.iterdir()) == ["backups", "bank1"]
    assert cli("restore", backup, "--config", str(node.path), "--force").exit_code == 0


def test_a_running_node_is_not_restored_under(node):
    backup = backed_up(node, "b1")
    with ChainStore.open(node.data_dir, node.genesis, create=False):  # holds LevelDB's lock, as a node does
        result = cli("restore", backup, "--config", str(node.path), "--force")
    assert result.exit_code == 1 and "stop the node before restoring" in result.output


def test_a_backup_of_another_chain_or_no_backup_at_all_is_refused(node, tmp_path):
    other = load_node_config(generate_testnet(tmp_path / "other", 4).configs[0])
    ChainStore.open(other.data_dir, other.genesis).close()
    result = cli("restore", backed_up(other, "theirs"), "--config", str(node.path), "--force")
    assert result.exit_code == 1 and "is a backup of chain" in result.output
    (tmp_path / "empty").mkdir()
    result = cli("restore", str(tmp_path / "empty"), "--config", str(node.path))
    assert result.exit_code == 1 and "is not a lendchain backup" in result.output


def test_another_members_backup_of_the_same_chain_restores_a_lost_node(node):
    peer = load_node_config(node.path.with_name("bank2.toml"))
    ChainStore.open(peer.data_dir, peer.genesis).close()
    backup = backed_up(peer, "from-bank2")
    verified = cli("--json", "verify-chain", "--config", str(node.path), "--data-dir", backup)
    assert verified.exit_code == 0, verified.output  # every certificate checks against the genesis
    result = cli("restore", backup, "--config", str(node.path), "--force")
    assert result.exit_code == 0, result.output
    with ChainStore.open(node.data_dir, node.genesis, create=False) as store:
        assert store.head().height == 0
