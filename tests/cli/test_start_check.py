"""``lendchain start --check``: what a start would refuse, said without starting (and without side effects)."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from lendchain.cli import main
from lendchain.node.cluster import free_port_block
from lendchain.node.config import load_node_config
from lendchain.node.store import ChainStore
from lendchain.node.testnet import generate_testnet


@pytest.fixture
def config(tmp_path):
    p2p = free_port_block(4)
    layout = generate_testnet(tmp_path / "net", 4, p2p_base_port=p2p, api_base_port=p2p + 20)
    return load_node_config(layout.configs[0])


def check(config):
    return CliRunner().invoke(
        main, ["start", "--check", "--config", str(config.path)], catch_exceptions=False
    )


def test_a_new_node_passes_without_its_data_directory_being_created(config):
    result = check(config)
    assert result.exit_code == 0, result.output
    assert f"ok: bank1 (voting member) on {config.genesis.chain_id}" in result.output
    assert "does not exist yet: the node creates it" in result.output
    assert f"ok: api port 127.0.0.1:{config.api_port} is free" in result.output
    assert not config.data_dir.exists()


def test_an_existing_store_reports_its_height_and_rules(config):
    ChainStore.open(config.data_dir, config.genesis).close()
    result = check(config)
    assert result.exit_code == 0, result.output
    assert f"data directory {config.data_dir} at height 0, rules version 1" in result.output


def test_another_members_key_is_refused(config):
    config.path.write_text(config.path.read_text().replace("keys/bank1.key", "keys/bank2.key"))
    result = check(config)
    assert result.exit_code == 1 and "but the genesis lists" in result.output


def test_a_data_directory_in_use_is_refused(config):
    with ChainStore.open(config.data_dir, config.genesis):
        result = check(config)
    assert result.exit_code == 1 and "is in use by another process" in result.output


def test_a_data_directory_of_another_chain_is_refused(config, tmp_path):
    other = generate_testnet(tmp_path / "other", 4, chain_id="other-chain")
    ChainStore.open(config.data_dir, load_node_config(other.configs[0]).genesis).close()
    result = check(config)
    assert result.exit_code == 1 and "belongs to chain 'other-chain'" in result.output


def test_a_port_in_use_is_refused(config):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", config.api_port))
        taken.listen()
        result = check(config)
    assert result.exit_code == 1
    assert f"api port 127.0.0.1:{config.api_port} cannot be bound" in result.output


def test_an_unreadable_api_token_file_is_refused(config):
    config.path.write_text(
        config.path.read_text().replace("[api]\n", '[api]\ntoken_file = "missing.token"\n')
    )
    result = check(config)
    assert result.exit_code == 1 and "missing.token cannot be read" in result.output


def test_a_problem_in_the_genesis_app_table_is_a_warning_and_the_node_starts(config, caplog):
    # A chain's genesis cannot be edited once it runs: the node must start on it (see node.config).
    genesis = config.genesis_path
    genesis.write_text(genesis.read_text() + "\n[app]\nmax_term_month = 360\n")
    with caplog.at_level("WARNING"):
        result = check(load_node_config(config.path))
    assert result.exit_code == 0, result.output
    warning = f"warning: {genesis}: unknown key 'app.max_term_month'; did you mean 'app.max_term_months'?"
    assert warning in result.output
    assert "members change a parameter by governance (lendchain gov propose params.set" in result.output
    assert any("unknown key 'app.max_term_month'" in record.getMessage() for record in caplog.records)
