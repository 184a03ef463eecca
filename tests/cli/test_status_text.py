"""``lendchain status`` in words: the node key line, before and after a rotation."""

from __future__ import annotations

from click.testing import CliRunner

from lendchain.cli import chain as chain_cli
from lendchain.cli import main

GENESIS_DID = "did:key:z6MkGenesisKeyOfBank2"
ROTATED_DID = "did:key:z6MkRotatedKeyOfBank2"


class StatusClient:
    def __init__(self, status: dict) -> None:
        self.answer = status

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def status(self) -> dict:
        return self.answer


def shown(monkeypatch, **fields) -> str:
    status = {
        "name": "bank2",
        "role": "member",
        "chain_id": "lendchain-test-1",
        "height": 12,
        "head_hash": "ab" * 32,
        "view": 0,
        "primary": "bank1",
        "peers": ["bank1", "bank3"],
        "mempool": {"txs": 0},
        "backup": {},
        **fields,
    }
    monkeypatch.setattr(chain_cli, "client_from", lambda kw: StatusClient(status))
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 0, result.output
    return result.output


def test_status_names_the_key_the_node_runs_on(monkeypatch):
    genesis = shown(monkeypatch, did=GENESIS_DID, key_did=GENESIS_DID, peer_id="12D3KooWold")
    assert "key      genesis key, peer 12D3KooWold" in genesis
    rotated = shown(monkeypatch, did=GENESIS_DID, key_did=ROTATED_DID, peer_id="12D3KooWnew")
    assert f"key      rotated: signs as {ROTATED_DID}, peer 12D3KooWnew" in rotated
    older = shown(monkeypatch, did=GENESIS_DID, key_did=GENESIS_DID)  # a node without peer_id
    assert "key " not in older and "node     bank2 (voting member)" in older


def test_status_names_the_voters_at_the_height_in_flight_and_what_they_tolerate(monkeypatch):
    five = shown(monkeypatch, members=["bank1", "bank2", "bank3", "bank4", "regulator1"])
    assert "voters   bank1, bank2, bank3, bank4, regulator1 (n 5, tolerates 1 faulty)" in five
    three = shown(monkeypatch, members=["bank1", "bank2", "bank3"])
    assert "voters   bank1, bank2, bank3 (n 3, tolerates 0 faulty)" in three
    assert "voters" not in shown(monkeypatch)  # an older node without the field


def test_status_says_whether_the_node_votes_follows_or_awaits_its_admission(monkeypatch):
    assert "node     bank2 (voting member) on lendchain-test-1" in shown(monkeypatch)
    assert "node     bank2 (observer)" in shown(monkeypatch, role="observer")
    joining = shown(monkeypatch, role="joining", height=0, peers=[])
    assert "node     bank2 (joining: not admitted yet) on lendchain-test-1" in joining
    assert "node     bank2 (removed member)" in shown(monkeypatch, role="removed")
