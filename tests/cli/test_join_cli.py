"""``lendchain join``: a joining bank's key, config and admission request in one new directory."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lendchain.cli import main
from lendchain.cli.admission import read_request
from lendchain.crypto import KeyFileError, read_key_file
from lendchain.node.config import load_node_config
from lendchain.node.testnet import generate_testnet

ADDRESS = "/dns4/node.bank5.example/tcp/47101"


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_join_writes_a_config_that_loads_and_a_request_that_verifies(tmp_path):
    layout = generate_testnet(tmp_path / "net", 4, rules_version=3)
    out = tmp_path / "bank5"
    result = run(
        "join", "bank5", "--genesis", str(layout.out / "genesis.toml"), "--address", ADDRESS,
        "--listen", "/ip4/0.0.0.0/tcp/47101", "--roles", "lender,kyc", "--api-listen", "127.0.0.1:8105",
        "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "lendchain gov propose-admit bank5-admission.json" in result.output
    config = load_node_config(out / "bank5.toml")
    assert (config.name, config.joining, config.p2p_listen, config.api_port) == (
        "bank5",
        True,
        "/ip4/0.0.0.0/tcp/47101",
        8105,
    )
    assert config.genesis.hash() == layout.genesis.hash()
    request = read_request(str(out / "bank5-admission.json"))
    key = read_key_file(out / "keys" / "bank5.key")
    assert (request.name, request.public_key, request.address, request.roles) == (
        "bank5",
        key.public_key,
        ADDRESS,
        ("kyc", "lender"),
    )
    assert request.chain_id == layout.genesis.chain_id
    assert key.did in result.output


def test_join_with_a_passphrase_encrypts_the_key_and_names_the_file(tmp_path):
    layout = generate_testnet(tmp_path / "net", 4)
    secret = tmp_path / "secret"
    secret.write_text("a long enough passphrase\n")
    out = tmp_path / "bank5"
    result = run(
        "--json", "join", "bank5", "--genesis", str(layout.out / "genesis.toml"), "--address", ADDRESS,
        "--passphrase-file", str(secret), "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["config"] == str(out / "bank5.toml")
    config = load_node_config(out / "bank5.toml")
    assert config.passphrase_file == secret.resolve()
    with pytest.raises(KeyFileError, match="is encrypted and no passphrase was given"):
        read_key_file(out / "keys" / "bank5.key")
    key = read_key_file(out / "keys" / "bank5.key", "a long enough passphrase")
    assert read_request(str(out / "bank5-admission.json")).public_key == key.public_key


def test_join_refuses_a_genesis_name_a_full_directory_and_bad_options(tmp_path):
    layout = generate_testnet(tmp_path / "net", 4)
    genesis = str(layout.out / "genesis.toml")
    taken = run("join", "bank1", "--genesis", genesis, "--address", ADDRESS, "--out", str(tmp_path / "a"))
    assert taken.exit_code == 2 and "'bank1' is already a member" in taken.output
    assert not (tmp_path / "a").exists()
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    refused = run("join", "bank5", "--genesis", genesis, "--address", ADDRESS, "--out", str(full))
    assert refused.exit_code == 1 and "is not empty" in refused.output
    assert sorted(p.name for p in full.iterdir()) == ["keep.txt"]
    for option, value, message in (
        ("--address", "10.0.0.1:47101", "must be a multiaddr"),
        ("--roles", "banker", "'banker' is no role"),
        ("--api-listen", "8105", "must be 'host:port'"),
        ("--listen", "/ip4/1.2.3.4/udp/1", "must be a multiaddr"),
    ):
        args = {"--address": ADDRESS, option: value}
        flat = [item for pair in args.items() for item in pair]
        bad = run("join", "bank5", "--genesis", genesis, *flat, "--out", str(tmp_path / "b"))
        assert bad.exit_code == 2 and message in bad.output, (option, bad.output)
        assert not (tmp_path / "b").exists()
