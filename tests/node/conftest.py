"""Fixtures shared by the node tests."""

from __future__ import annotations

import pytest

from lendchain.crypto import read_key_file
from lendchain.node.config import load_node_config
from lendchain.node.daemon import Node
from lendchain.node.testnet import generate_testnet


@pytest.fixture
def node(tmp_path):
    """bank1 of a 4-member test network, built but not started: no network, no API."""
    config = load_node_config(generate_testnet(tmp_path / "net", 4).configs[0])
    node = Node(config, read_key_file(config.key_file))
    yield node
    node.store.close()
