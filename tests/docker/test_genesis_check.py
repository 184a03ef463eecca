"""The docker network's genesis: checked strictly until a node has run its chain (no Docker needed).

``lendchain docker up`` writes a new network's genesis as ``lendchain testnet
--param`` does, refusing a bad ``[app]`` parameter. A genesis already in the
directory that no node has run yet (the compose project has no data volume)
gets the same strict check, before any container starts; once a node has a
store, the genesis is the chain's and is taken as it is. Docker is stood in
for by a fake ``docker volume ls``.
"""

from __future__ import annotations

import subprocess

import pytest
from click.testing import CliRunner

from lendchain.cli import main
from lendchain.node import dockernet
from lendchain.node.config import genesis_warnings, load_genesis


@pytest.fixture
def volumes(monkeypatch):
    """The data volumes ``docker volume ls`` lists (set ``.names``); ``.asked`` records each call."""

    class FakeDocker:
        names: list[str] = []
        answers = True
        asked: list[list[str]] = []

        def __call__(self, args, *, check=True, timeout_s=120):
            self.asked.append(args)
            if not self.answers:
                raise dockernet.DockerNetError("'docker volume ls' did not finish within 30 s")
            return subprocess.CompletedProcess(args, 0, stdout="".join(f"{n}\n" for n in self.names))

    fake = FakeDocker()
    monkeypatch.setattr(dockernet, "run_docker", fake)
    return fake


@pytest.fixture
def net(tmp_path):
    return dockernet.DockerNet(tmp_path / "network", project="lendchain-unit")


def add_to_app(net: dockernet.DockerNet, line: str) -> None:
    genesis = net.network_dir / "genesis.toml"
    genesis.write_text(genesis.read_text().replace("[app]\n", f"[app]\n{line}\n"))


def test_a_genesis_no_node_has_run_is_refused_for_a_misspelt_parameter(net, volumes):
    net.prepare()
    add_to_app(net, "max_term_month = 360")
    with pytest.raises(dockernet.DockerNetError) as refused:
        net.prepare()
    message = str(refused.value)
    assert "unknown key 'app.max_term_month'" in message and "max_term_months" in message
    assert "no node of this network has run its chain yet" in message and str(net.network_dir) in message
    assert volumes.asked[-1] == [
        "docker", "volume", "ls", "--quiet", "--filter", "label=com.docker.compose.project=lendchain-unit",
    ]  # fmt: skip


def test_a_genesis_no_node_has_run_is_refused_for_a_value_out_of_range(net, volumes):
    net.prepare()
    add_to_app(net, "grace_days = -3")
    with pytest.raises(dockernet.DockerNetError, match="'app.grace_days'.*no node of this network has run"):
        net.prepare()


def test_the_check_is_strict_when_docker_cannot_say_whether_a_node_ran(net, volumes):
    net.prepare()
    add_to_app(net, "max_term_month = 360")
    volumes.answers = False  # then no node of it runs either
    with pytest.raises(dockernet.DockerNetError, match="unknown key 'app.max_term_month'"):
        net.prepare()


def test_a_genesis_a_node_has_run_is_taken_as_it_is_and_its_nodes_warn(net, volumes):
    net.prepare()
    add_to_app(net, "max_term_month = 360")
    volumes.names = ["lendchain-unit_bank1-backups", "lendchain-unit_bank1-data"]
    net.prepare()  # the chain runs on it: refusing it would strand the network
    genesis_path = net.network_dir / "genesis.toml"
    warnings = genesis_warnings(load_genesis(genesis_path), genesis_path)
    assert len(warnings) == 1 and "unknown key 'app.max_term_month'" in warnings[0]


def test_a_backups_volume_alone_is_no_chain(net, volumes):
    net.prepare()
    add_to_app(net, "max_term_month = 360")
    volumes.names = ["lendchain-unit_bank1-backups"]
    with pytest.raises(dockernet.DockerNetError, match="no node of this network has run its chain yet"):
        net.prepare()


def test_param_goes_into_a_new_networks_genesis_and_not_into_an_existing_one(tmp_path, volumes):
    directory = tmp_path / "network"
    dockernet.DockerNet(directory, params={"max_term_months": 360, "grace_days": 7}).prepare()
    app = load_genesis(directory / "genesis.toml", strict=True).app
    assert (app["max_term_months"], app["grace_days"]) == (360, 7)
    with pytest.raises(dockernet.DockerNetError, match="holds a network already, so --param has no genesis"):
        dockernet.DockerNet(directory, params={"grace_days": 8}).prepare()
    assert load_genesis(directory / "genesis.toml").app["grace_days"] == 7


def test_docker_up_refuses_a_bad_param_before_touching_docker(tmp_path, volumes):
    result = CliRunner().invoke(
        main, ["docker", "up", "--dir", str(tmp_path / "n"), "--param", "max_term_month=360"]
    )
    assert result.exit_code == 2 and "max_term_months" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "n").exists() and volumes.asked == []


def test_docker_up_names_the_bad_parameter_of_an_edited_genesis_before_any_container(net, volumes):
    net.prepare()
    add_to_app(net, "max_term_month = 360")
    result = CliRunner().invoke(main, ["docker", "up", "--dir", str(net.network_dir), "--no-build"])
    assert result.exit_code == 1, result.output
    assert "unknown key 'app.max_term_month'" in result.output and "Traceback" not in result.output
    assert all(args[:3] == ["docker", "volume", "ls"] for args in volumes.asked)  # nothing else ran
