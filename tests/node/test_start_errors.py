"""A node that cannot start says why in one line and exits non-zero (no traceback)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from lendchain.node.cluster import free_port_block
from lendchain.node.testnet import generate_testnet

pytestmark = pytest.mark.slow


def _start(config) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lendchain", "start", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_taken_p2p_port_is_one_clear_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # the kernel's choice: free, and now ours
        taken.listen()
        p2p = taken.getsockname()[1] - 1
        api = free_port_block(2, start=20000)
        layout = generate_testnet(tmp_path / "net", 1, p2p_base_port=p2p, api_base_port=api)
        result = _start(layout.configs[0])
    assert result.returncode == 1
    assert "already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_data_dir_of_another_chain_is_refused(tmp_path):
    p2p = free_port_block(2)
    api = free_port_block(2, start=p2p + 10)
    first = generate_testnet(tmp_path / "a", 1, p2p_base_port=p2p, api_base_port=api, chain_id="chain-a")
    second = generate_testnet(tmp_path / "b", 1, p2p_base_port=p2p, api_base_port=api, chain_id="chain-b")
    from lendchain.node.config import load_node_config
    from lendchain.node.store import ChainStore

    ChainStore.open(load_node_config(first.configs[0]).data_dir, first.genesis).close()
    config = second.configs[0]
    config.write_text(
        config.read_text().replace('data_dir = "data/bank1"', f'data_dir = "{tmp_path}/a/data/bank1"')
    )
    result = _start(config)
    assert result.returncode == 1
    assert "cannot start" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_empty_api_token_file_is_refused_rather_than_leaving_the_api_open(tmp_path):
    p2p = free_port_block(2)
    api = free_port_block(2, start=p2p + 10)
    layout = generate_testnet(tmp_path / "net", 1, p2p_base_port=p2p, api_base_port=api)
    config = layout.configs[0]
    token = tmp_path / "net" / "api.token"
    token.write_text("\n")
    config.write_text(config.read_text().replace("[api]\n", '[api]\ntoken_file = "api.token"\n'))
    result = _start(config)
    assert result.returncode == 1
    assert f"cannot start: api token file {token} holds no token" in result.stderr
    assert "Traceback" not in result.stderr
