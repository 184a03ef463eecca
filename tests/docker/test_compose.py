"""The compose file and the network's configs, checked without starting containers."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tomllib

import pytest

from lendchain.node import dockerimages, dockernet
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


def test_a_second_network_has_its_own_subnet_project_and_ports_and_its_directory_remembers_them(tmp_path):
    second = dockernet.DockerNet(
        tmp_path / "b",
        project="lendchain-b",
        subnet="172.29.0.0/16",
        api_ports=(18201, 18202, 18203, 18204, 18205),
    )
    second.prepare()
    genesis = load_genesis(second.network_dir / "genesis.toml")
    addresses = [m.address for m in (*genesis.members, *genesis.observers)]
    assert addresses == [f"/ip4/172.29.0.{11 + i}/tcp/47100" for i in range(5)]
    env = second.compose_env()
    assert env["LENDCHAIN_SUBNET"] == "172.29.0.0/16" and env["LENDCHAIN_PROJECT"] == "lendchain-b"
    assert [env[f"LENDCHAIN_{n.upper()}_IP"] for n in (*dockernet.NODES, "regulator1")] == [
        f"172.29.0.{11 + i}" for i in range(5)
    ]
    found = dockernet.DockerNet.for_dir(tmp_path / "b", observer=True)
    assert (found.project, found.subnet, found.api_ports) == (
        "lendchain-b",
        "172.29.0.0/16",
        (18201, 18202, 18203, 18204, 18205),
    )
    assert found.api_url("regulator1") == "http://127.0.0.1:18205" and found.ip("bank2") == "172.29.0.12"
    # A directory made for one subnet is refused on another: its genesis names the old addresses.
    with pytest.raises(dockernet.DockerNetError, match="on another subnet than 172.30.0.0/16"):
        dockernet.DockerNet.for_dir(tmp_path / "b", subnet="172.30.0.0/16").prepare()
    (tmp_path / "b" / "docker.toml").write_text("project = [")
    with pytest.raises(dockernet.DockerNetError, match="docker.toml is unreadable"):
        dockernet.DockerNet.for_dir(tmp_path / "b")


@pytest.mark.parametrize("subnet", ["172.29.0.0/30", "172.29.0.1/16", "not a subnet"])
def test_a_subnet_that_cannot_hold_the_network_is_refused(tmp_path, subnet):
    with pytest.raises(dockernet.DockerNetError, match=f"subnet '{subnet}' cannot hold the network"):
        dockernet.DockerNet(tmp_path / "n", subnet=subnet)


def test_docker_up_names_a_bad_subnet_before_touching_docker(tmp_path):
    from click.testing import CliRunner

    from lendchain.cli import main

    result = CliRunner().invoke(
        main, ["docker", "up", "--dir", str(tmp_path / "n"), "--subnet", "10.1.2.0/29"]
    )
    assert result.exit_code == 1 and "subnet '10.1.2.0/29' cannot hold the network" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "n").exists()


def test_unknown_node_names_the_known_ones(net):
    with pytest.raises(dockernet.DockerNetError, match="no node 'bank9'.*bank1, bank2, bank3, bank4"):
        net.container("bank9")


def test_source_digest_follows_the_package_sources(tmp_path):
    (tmp_path / "lendchain").mkdir()
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    module = tmp_path / "lendchain" / "m.py"
    module.write_text("A = 1\n")
    before = dockerimages.source_digest(tmp_path)
    assert dockerimages.source_digest(tmp_path) == before
    module.write_text("A = 2\n")
    assert dockerimages.source_digest(tmp_path) != before


def test_compose_file_puts_each_bank_on_the_private_network_with_its_own_key_only(tmp_path):
    yaml = pytest.importorskip("yaml", reason="reading compose's output needs PyYAML")
    if shutil.which("docker") is None:
        pytest.skip("the docker command is not installed")
    # Not the default subnet, so the file's variables are what puts the addresses there.
    net = dockernet.DockerNet(
        tmp_path / "network",
        project="lendchain-unit",
        api_ports=(18101, 18102, 18103, 18104),
        subnet="10.77.0.0/24",
    )
    net.prepare()
    try:
        cmd = dockerimages.compose_command()
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
    assert doc["networks"]["ledger"]["ipam"]["config"] == [{"subnet": net.subnet}]
    assert sorted(doc["services"]) == [*dockernet.NODES, dockernet.OBSERVER]
    assert doc["services"][dockernet.OBSERVER]["profiles"] == ["observer"]
    for i, node in enumerate(dockernet.NODES):
        service = doc["services"][node]
        assert service["container_name"] == f"lendchain-unit-{node}"
        assert service["networks"]["ledger"]["ipv4_address"] == net.ip(node)
        ports = json.dumps(service["ports"])
        assert "127.0.0.1" in ports and str(18101 + i) in ports
        assert service["restart"] == "on-failure" and "healthcheck" in service
        keys = [v for v in map(json.dumps, service["volumes"]) if "/keys/" in v]
        assert len(keys) == 1 and f"{node}.key" in keys[0]
