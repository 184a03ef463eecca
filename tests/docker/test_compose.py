"""The compose file and the network's configs, checked without starting containers."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tomllib

import pytest

from lendchain.node import dockernet
from lendchain.node.config import load_genesis


@pytest.fixture
def net(tmp_path):
    return dockernet.DockerNet(
        tmp_path / "network", project="lendchain-unit", api_ports=(18101, 18102, 18103, 18104)
    )


def test_prepare_writes_a_docker_network_with_one_key_per_bank_and_a_private_token(net):
    net.prepare()
    genesis = load_genesis(net.network_dir / "genesis.toml")
    assert [m.name for m in genesis.members] == list(dockernet.NODES)
    assert [(m.name, m.address) for m in genesis.observers] == [("regulator1", "/ip4/172.28.0.15/tcp/47100")]
    assert [m.address for m in genesis.members] == [f"/ip4/172.28.0.{11 + i}/tcp/47100" for i in range(4)]
    for node in dockernet.NODES:
        doc = tomllib.loads((net.network_dir / f"{node}.toml").read_text())
        assert doc["key_file"] == f"/config/keys/{node}.key" and doc["data_dir"] == "/data"
        assert doc["api"]["listen"] == "0.0.0.0:8100" and doc["api"]["token_file"] == "/config/api.token"
    token = net.network_dir / "api.token"
    assert len(net.token()) == 64
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    if os.geteuid() == 0:
        assert token.stat().st_uid == dockernet.IMAGE_UID
    first = net.token()
    net.prepare()  # idempotent: a second up keeps the same keys and token
    assert net.token() == first


def test_prepare_refuses_a_directory_made_for_another_member_list(net):
    from lendchain.node.testnet import generate_testnet

    generate_testnet(net.network_dir, nodes=3, docker=True)
    with pytest.raises(
        dockernet.DockerNetError, match="lists members bank1, bank2, bank3 and observers none"
    ):
        net.prepare()


def test_observer_adds_the_regulator_with_its_own_port_and_profile(tmp_path):
    net = dockernet.DockerNet(tmp_path / "n", observer=True)
    assert net.nodes == (*dockernet.NODES, "regulator1")
    assert net.api_url("regulator1") == "http://127.0.0.1:8105" and net.ip("regulator1") == "172.28.0.15"
    assert net.compose_env()["COMPOSE_PROFILES"] == "observer"
    assert "COMPOSE_PROFILES" not in dockernet.DockerNet(tmp_path / "m").compose_env()


def test_unknown_node_names_the_known_ones(net):
    with pytest.raises(dockernet.DockerNetError, match="no node 'bank9'.*bank1, bank2, bank3, bank4"):
        net.container("bank9")


def test_source_digest_follows_the_package_sources(tmp_path):
    (tmp_path / "lendchain").mkdir()
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    module = tmp_path / "lendchain" / "m.py"
    module.write_text("A = 1\n")
    before = dockernet.source_digest(tmp_path)
    assert dockernet.source_digest(tmp_path) == before
    module.write_text("A = 2\n")
    assert dockernet.source_digest(tmp_path) != before


def test_compose_file_puts_each_bank_on_the_private_network_with_its_own_key_only(net):
    yaml = pytest.importorskip("yaml", reason="reading compose's output needs PyYAML")
    if dockernet.shutil.which("docker") is None:
        pytest.skip("the docker command is not installed")
    net.prepare()
    try:
        cmd = dockernet.compose_command()
    except dockernet.DockerNetError as e:
        pytest.skip(str(e))
    result = subprocess.run(
        [*cmd, "-p", net.project, "-f", str(dockernet.COMPOSE_FILE), "config"],
        env={**os.environ, **net.compose_env()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    doc = yaml.safe_load(result.stdout)
    assert doc["networks"]["ledger"]["ipam"]["config"] == [{"subnet": "172.28.0.0/16"}]
    assert sorted(doc["services"]) == [*dockernet.NODES, dockernet.OBSERVER]
    assert doc["services"][dockernet.OBSERVER]["profiles"] == ["observer"]
    for i, node in enumerate(dockernet.NODES):
        service = doc["services"][node]
        assert service["container_name"] == f"lendchain-unit-{node}"
        assert service["networks"]["ledger"]["ipv4_address"] == f"172.28.0.{11 + i}"
        ports = json.dumps(service["ports"])
        assert "127.0.0.1" in ports and str(18101 + i) in ports
        assert service["restart"] == "on-failure" and "healthcheck" in service
        keys = [v for v in map(json.dumps, service["volumes"]) if "/keys/" in v]
        assert len(keys) == 1 and f"{node}.key" in keys[0]
