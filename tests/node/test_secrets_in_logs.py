"""Unattended start with an encrypted key, and no secret in a node's log (real processes).

The passphrase comes from the node config's passphrase_file, ``--passphrase-file``
or the LENDCHAIN_PASSPHRASE environment variable (a service manager's secret
store usually hands it over as either of the last two); a node started from
the variable takes it out of its environment once its keys are open. A node run at debug
level, with an API token, serving writes and wrong-token requests, never
writes the passphrase, the key seed (hex or base64, alone or as the 64-byte
private key) or the token to its log.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from lendchain.client import NodeClient
from lendchain.crypto import SigningKey, read_key_file, write_key_file
from lendchain.node.cluster import Cluster, free_port_block
from lendchain.node.testnet import generate_testnet

pytestmark = pytest.mark.slow

PASSPHRASE = "correct horse battery staple 42"
TOKEN = "node-api-token-5e8f0c2a9b7d4631"
GUESS = "guess-token-aabbccddeeff0011"


def encrypted_node(tmp_path: Path) -> tuple[Path, SigningKey]:
    """A one-member network whose key is passphrase-encrypted, with an API token and debug logs."""
    p2p = free_port_block(2)
    api = free_port_block(2, start=p2p + 10)
    layout = generate_testnet(tmp_path / "net", 1, p2p_base_port=p2p, api_base_port=api)
    config = layout.configs[0]
    plain = tmp_path / "net" / "keys" / "bank1.key"
    key = read_key_file(plain)
    write_key_file(tmp_path / "net" / "keys" / "bank1.sealed.key", key, PASSPHRASE)
    plain.unlink()
    (tmp_path / "net" / "api.token").write_text(TOKEN + "\n")
    text = config.read_text().replace("keys/bank1.key", "keys/bank1.sealed.key")
    text = text.replace("[api]\n", '[api]\ntoken_file = "api.token"\n')
    config.write_text(text + '\n[log]\nlevel = "debug"\n')
    return config, key


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LENDCHAIN_")}
    return {**env, **extra}


def start(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lendchain", "start", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def secrets_of(key: SigningKey) -> list[str]:
    private = key.seed + key.public_key
    return [
        PASSPHRASE,
        TOKEN,
        GUESS,
        key.seed.hex(),
        private.hex(),
        base64.b64encode(key.seed).decode(),
        base64.b64encode(private).decode(),
    ]


def test_an_encrypted_key_starts_from_the_environment_and_nothing_secret_is_logged(tmp_path, monkeypatch):
    config, key = encrypted_node(tmp_path)
    for name in [k for k in os.environ if k.startswith("LENDCHAIN_")]:
        monkeypatch.delenv(name)
    cluster = Cluster([config], tmp_path / "logs")
    node = cluster["bank1"]
    node.env["LENDCHAIN_PASSPHRASE"] = PASSPHRASE
    cluster.start("bank1")
    try:
        cluster.wait_healthy()
        # Once the key is open the passphrase leaves the environment: children do not inherit it
        # and /proc/<pid>/environ (the memory the process started with) no longer shows it.
        environ = Path(f"/proc/{node.process.pid}/environ").read_bytes()
        assert b"PATH=" in environ  # the environment it was given, less the passphrase
        assert PASSPHRASE.encode() not in environ
        with NodeClient(node.url, TOKEN, timeout=10) as c:
            assert (
                c.send(SigningKey.generate(), "party.register", {"role": "borrower"})["status"] == "committed"
            )
        for headers in ({"Authorization": f"Bearer {GUESS}"}, {}):
            assert httpx.get(node.url + "/status", headers=headers, timeout=5).status_code == 401
        refused = httpx.post(node.url + "/txs", json={"tx": "00"}, timeout=5)
        assert refused.status_code == 401 and TOKEN not in refused.text
    finally:
        codes = cluster.stop_all()
    assert codes == {"bank1": 0}
    log = node.log_path.read_text()
    assert "node bank1 up" in log and "DEBUG" in log  # the log is real, and at its chattiest
    for secret in secrets_of(key):
        assert secret not in log, f"the node's log holds a secret ({secret[:6]}…)"


def test_the_config_passphrase_file_starts_it_too(tmp_path):
    config, _ = encrypted_node(tmp_path)
    (tmp_path / "net" / "pass").write_text(PASSPHRASE + "\n")
    config.write_text('passphrase_file = "pass"\n' + config.read_text())
    cluster = Cluster([config], tmp_path / "logs")
    cluster.start("bank1", extra_env={"LENDCHAIN_PASSPHRASE": "not this one"})
    try:
        cluster.wait_healthy()  # the file wins over the environment
    finally:
        assert cluster.stop_all() == {"bank1": 0}


def test_an_encrypted_next_key_opens_with_the_node_passphrase(tmp_path):
    config, _ = encrypted_node(tmp_path)
    keys = tmp_path / "net" / "keys"
    config.write_text('next_key_file = "keys/bank1.next.key"\n' + config.read_text())
    write_key_file(keys / "bank1.next.key", SigningKey.generate(), "another passphrase entirely")
    refused = start(config, clean_env(LENDCHAIN_PASSPHRASE=PASSPHRASE))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"wrong passphrase for key file {keys / 'bank1.next.key'}" in refused.stderr
    next_key = SigningKey.generate()
    (keys / "bank1.next.key").unlink()
    write_key_file(keys / "bank1.next.key", next_key, PASSPHRASE)
    cluster = Cluster([config], tmp_path / "logs")
    cluster.start("bank1", extra_env={"LENDCHAIN_PASSPHRASE": PASSPHRASE})
    try:
        cluster.wait_healthy()
    finally:
        assert cluster.stop_all() == {"bank1": 0}
    log = cluster["bank1"].log_path.read_text()
    for secret in secrets_of(next_key):
        assert secret not in log


def test_an_encrypted_key_without_a_passphrase_is_one_clear_line(tmp_path):
    config, key = encrypted_node(tmp_path)
    result = start(config, clean_env())
    assert result.returncode == 1
    assert "is encrypted and no passphrase was given" in result.stderr
    assert "passphrase_file" in result.stderr and "LENDCHAIN_PASSPHRASE" in result.stderr
    assert "Traceback" not in result.stderr
    wrong = start(config, clean_env(LENDCHAIN_PASSPHRASE="Tr0ub4dor&3 wrong guess"))
    assert wrong.returncode == 1
    assert "wrong passphrase for key file" in wrong.stderr
    assert "Tr0ub4dor" not in wrong.stderr + wrong.stdout
    for secret in secrets_of(key):
        assert secret not in result.stderr + wrong.stderr
