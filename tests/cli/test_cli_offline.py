"""CLI commands that need no running node: keys, testnet, and the errors a user can cause."""

from __future__ import annotations

import gc
import json
import os
import stat

import pytest
from click.testing import CliRunner

from lendchain.cli import main, network
from lendchain.crypto import read_key_file
from lendchain.ledger.rules import RULES_VERSION
from lendchain.node.config import load_genesis


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def test_keys_new_writes_a_private_key_file_and_prints_its_did(run, tmp_path):
    result = run("keys", "new", "alice.key")
    assert result.exit_code == 0, result.output
    did = result.output.strip()
    assert did.startswith("did:key:z6Mk")
    assert stat.S_IMODE(os.stat(tmp_path / "alice.key").st_mode) == 0o600
    assert read_key_file(tmp_path / "alice.key").did == did
    shown = run("--json", "keys", "show", "alice.key")
    assert json.loads(shown.output)["did"] == did


def test_keys_new_refuses_to_overwrite(run):
    assert run("keys", "new", "alice.key").exit_code == 0
    result = run("keys", "new", "alice.key")
    assert result.exit_code == 1
    assert "alice.key" in result.output
    assert "Traceback" not in result.output


def test_encrypted_key_needs_its_passphrase(run, tmp_path):
    (tmp_path / "pass").write_text("correct horse\n")
    assert run("keys", "new", "bob.key", "--passphrase-file", "pass").exit_code == 0
    shown = json.loads(run("--json", "keys", "show", "bob.key").output)
    assert shown["encrypted"] is True
    key = read_key_file(tmp_path / "bob.key", "correct horse")
    assert key.did == shown["did"]


def test_propose_rotate_key_opens_an_encrypted_new_key_with_its_passphrase(run, tmp_path, monkeypatch):
    monkeypatch.delenv("LENDCHAIN_PASSPHRASE", raising=False)
    (tmp_path / "pass").write_text("next key passphrase\n")
    assert run("keys", "new", "me.key").exit_code == 0
    assert run("keys", "new", "next.key", "--passphrase-file", "pass").exit_code == 0
    base = (
        "gov",
        "propose-rotate-key",
        "bank2",
        "next.key",
        "--key",
        "me.key",
        "--node",
        "http://127.0.0.1:9",
    )
    locked = run(*base)
    assert locked.exit_code == 1 and "next.key is encrypted and no passphrase was given" in locked.output
    # Opened, it gets as far as asking the node (none answers here).
    opened = run(*base, "--new-key-passphrase-file", "pass")
    assert opened.exit_code == 1 and "cannot reach node" in opened.output, opened.output
    monkeypatch.setenv("LENDCHAIN_PASSPHRASE", "next key passphrase")
    assert "cannot reach node" in run(*base).output


def test_testnet_writes_genesis_and_configs(run, tmp_path):
    result = run("--json", "testnet", "--out", "net", "--nodes", "4", "--observers", "1")
    assert result.exit_code == 0, result.output
    value = json.loads(result.output)
    assert value["n"] == 4 and value["f"] == 1
    assert len(value["configs"]) == 5
    assert load_genesis(tmp_path / "net" / "genesis.toml").app == {
        "rules_version": RULES_VERSION
    }  # the newest
    again = run("testnet", "--out", "net")
    assert again.exit_code == 1
    assert "already holds a network" in again.output
    older = run("testnet", "--out", "net2", "--rules-version", "2")
    assert older.exit_code == 0, older.output
    assert load_genesis(tmp_path / "net2" / "genesis.toml").app == {"rules_version": 2}
    unknown = str(RULES_VERSION + 1)
    assert run("testnet", "--out", "net3", "--rules-version", unknown).exit_code == 2  # no such rules


def test_start_with_a_config_typo_names_the_key(run, tmp_path):
    run("testnet", "--out", "net", "--nodes", "4")
    config = tmp_path / "net" / "bank1.toml"
    config.write_text(config.read_text().replace("data_dir", "data_dri"))
    result = run("start", "--config", str(config))
    assert result.exit_code == 1
    assert "data_dri" in result.output
    assert "Traceback" not in result.output


def test_start_refuses_a_world_readable_key(run, tmp_path):
    run("testnet", "--out", "net", "--nodes", "4")
    key = tmp_path / "net" / "keys" / "bank1.key"
    key.chmod(0o644)
    result = run("start", "--config", str(tmp_path / "net" / "bank1.toml"))
    assert result.exit_code == 1
    assert "chmod 600" in result.output


def test_client_commands_say_when_no_node_answers(run):
    result = run("status", "--node", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert "cannot reach node" in result.output


def test_tx_send_rejects_a_non_object_payload(run):
    run("keys", "new", "alice.key")
    result = run(
        "tx", "send", "party.register", "[1, 2]", "--key", "alice.key", "--node", "http://127.0.0.1:9"
    )
    assert result.exit_code == 1
    assert "JSON object" in result.output


def test_a_node_process_freezes_its_start_up_objects_and_collects_garbage_less_often():
    before = gc.get_threshold()
    try:
        network.tune_gc()
        assert gc.get_threshold() == network.GC_THRESHOLDS and network.GC_THRESHOLDS[0] > before[0]
        assert gc.get_freeze_count() > 1000  # at least the imported modules' objects
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


class KeysClient:
    """Answers what load_signer asks a node: its head height and bank1's key schedule."""

    def __init__(self, height: int, genesis_key: bytes, rotations: list[tuple[int, bytes]]) -> None:
        self.answers = {
            "/status": {"height": height},
            "/node-keys/bank1": {
                "members": [
                    {
                        "name": "bank1",
                        "genesis_key": genesis_key.hex(),
                        "rotations": [{"effective_height": h, "public_key": k.hex()} for h, k in rotations],
                    }
                ]
            },
        }

    def get(self, path: str) -> dict:
        return self.answers[path]


def test_a_node_config_signs_with_its_next_key_once_the_rotation_is_in_effect(tmp_path):
    from lendchain.cli._common import load_signer
    from lendchain.crypto import SigningKey, write_key_file
    from lendchain.node.testnet import generate_testnet

    config = generate_testnet(tmp_path / "net", 1).configs[0]
    config.write_text('next_key_file = "keys/bank1.next.key"\n' + config.read_text())
    node_key = read_key_file(tmp_path / "net" / "keys" / "bank1.key")
    genesis = node_key.public_key
    # Before any rotation the next key file is not even read (here it does not exist yet).
    assert load_signer(None, str(config), None, KeysClient(10, genesis, [])).seed == node_key.seed
    next_key = SigningKey.generate()
    write_key_file(tmp_path / "net" / "keys" / "bank1.next.key", next_key)
    # Scheduled for height 12: the next block is 11, so the node key still signs; from 11 on, the next key.
    assert (
        load_signer(None, str(config), None, KeysClient(10, genesis, [(12, next_key.public_key)])).seed
        == node_key.seed
    )
    assert (
        load_signer(None, str(config), None, KeysClient(11, genesis, [(12, next_key.public_key)])).seed
        == next_key.seed
    )
    # A rotation to some other key leaves the config's key (the ledger will say it was replaced).
    other = SigningKey.generate().public_key
    assert load_signer(None, str(config), None, KeysClient(11, genesis, [(12, other)])).seed == node_key.seed
    # --key always wins.
    assert (
        load_signer(
            str(tmp_path / "net" / "keys" / "bank1.key"),
            str(config),
            None,
            KeysClient(11, genesis, [(12, next_key.public_key)]),
        ).seed
        == node_key.seed
    )
