"""``POST /txs/check``: what the next block would do with a tx, with nothing kept.

In-process, on a real store and mempool: the answers for a tx that would
commit, one that would be refused, one no block can take now, and ones
refused at the door; the sender's pending txs are applied before it; the
API route and ``lendchain tx check`` say the same.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from lendchain.cli import chain as chain_cli
from lendchain.cli import main
from lendchain.crypto import write_key_file
from lendchain.ledger import queries
from lendchain.ledger.keyrotation import MemberSigner
from lendchain.ledger.state import next_nonce
from lendchain.node.api import build_app
from lendchain.node.config import ApiLimits, MempoolConfig
from lendchain.node.mempool import Mempool, PendingTx
from lendchain.node.store import ChainStore
from lendchain.node.views import NodeViews
from tests.ledger.chain import Chain, make_genesis, seeded_key
from tests.node.test_api_protection import call

REGISTER = {"role": "borrower"}


class Viewer(NodeViews):
    """What ``check_tx`` reads of a node: its store, mempool and genesis."""

    metrics_registry = CollectorRegistry()

    def __init__(self, store: ChainStore, genesis: Any) -> None:
        self.store, self.genesis = store, genesis
        self.mempool = Mempool(MempoolConfig())
        self.signers: dict = {}  # no member has rotated its key


@pytest.fixture
def node(tmp_path):
    genesis = make_genesis()[0]
    store = ChainStore.open(tmp_path / "db", genesis, create=True)
    yield Viewer(store, genesis), Chain.start(genesis)
    store.close()


def test_a_tx_that_would_commit_says_so_and_changes_nothing(node):
    viewer, chain = node
    alice = seeded_key(1)
    answer = viewer.check_tx(chain.tx(alice, "party.register", REGISTER).encode())
    assert answer["outcome"] == "ok" and answer["result"]["ok"] and answer["height"] == 1
    assert answer["after_pending"] == 0
    assert [e["event"] for e in answer["result"]["events"]] == ["party.registered"]
    assert viewer.store.head().height == 0 and next_nonce(viewer.store, alice.did) == 0
    assert queries.lookup(viewer.store, "party", alice.did) is None and len(viewer.mempool) == 0


def test_refused_left_out_and_rejected_answers_name_the_reason(node):
    viewer, chain = node
    bob = seeded_key(2)
    apply = {"amount": 1000, "currency": "EUR", "term_months": 3, "purpose": "a bike"}
    refused = viewer.check_tx(chain.tx(bob, "loan.apply", apply).encode())
    assert refused["outcome"] == "refused" and not refused["result"]["ok"]
    assert "borrower" in refused["result"]["message"]  # not a registered borrower
    ahead = viewer.check_tx(chain.tx(bob, "party.register", REGISTER, nonce=5).encode())
    assert ahead["outcome"] == "left_out" and ahead["code"] == "bad_nonce"
    tx = chain.tx(bob, "party.register", REGISTER, nonce=0)
    forged = replace(tx, signature=bytes(64), _encoded=b"")
    bad = viewer.check_tx(forged.encode())
    assert bad["outcome"] == "rejected" and bad["code"] == "bad_signature" and bad["id"] == forged.id.hex()
    old_key = seeded_key(6)  # a member key replaced by a rotation: refused before it could be included
    viewer.signers = {old_key.did: MemberSigner("bank2", "did:key:z6Mkbank2", (0, 1), 0)}
    stale = viewer.check_tx(chain.tx(old_key, "party.register", REGISTER).encode())
    assert (
        stale["outcome"] == "rejected" and stale["code"] == "forbidden" and "replaced key" in stale["message"]
    )
    garbage = viewer.check_tx(b"\x93not a tx")
    assert garbage["outcome"] == "rejected" and garbage["code"] == "malformed" and garbage["id"] is None


def test_the_senders_pending_txs_run_first_and_a_taken_nonce_is_refused(node):
    viewer, chain = node
    carol = seeded_key(3)
    first = chain.tx(carol, "party.register", REGISTER, nonce=0)
    viewer.mempool.add(PendingTx(first, 0))
    # nonce 1 runs after the pending registration: a second registration is what refuses it.
    again = viewer.check_tx(chain.tx(carol, "party.register", {"role": "investor"}, nonce=1).encode())
    assert again["outcome"] == "refused" and again["after_pending"] == 1
    assert "already registered" in again["result"]["message"]
    other = viewer.check_tx(chain.tx(carol, "party.register", {"role": "investor"}, nonce=0).encode())
    assert other["outcome"] == "rejected" and other["code"] == "duplicate_nonce"
    same = viewer.check_tx(first.encode())  # the pending tx itself: checked, not refused as a duplicate
    assert same["outcome"] == "ok"


def test_the_route_takes_one_tx_and_the_cli_prints_the_verdict(node, monkeypatch, tmp_path):
    viewer, chain = node
    app = build_app(viewer, None, ApiLimits())
    tx = chain.tx(seeded_key(4), "party.register", REGISTER)
    one, many = call(
        app,
        [
            ("POST", "/txs/check", {"json": {"tx": tx.encode().hex()}}),
            ("POST", "/txs/check", {"json": {"txs": [tx.encode().hex()]}}),
        ],
    )
    assert one.status_code == 200 and one.json()["outcome"] == "ok"
    assert many.status_code == 400 and "one transaction per check" in many.json()["message"]

    class CheckingClient:
        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            pass

        def build(self, key, kind, payload):
            return chain.tx(key, kind, payload, nonce=0)

        def check(self, built):
            return viewer.check_tx(built.encode())

    monkeypatch.setattr(chain_cli, "client_from", lambda kw: CheckingClient())
    key_file = tmp_path / "dave.key"
    write_key_file(key_file, seeded_key(5))
    runner = CliRunner()
    ok = runner.invoke(main, ["tx", "check", "party.register", json.dumps(REGISTER), "--key", str(key_file)])
    assert ok.exit_code == 0 and "would commit in block 1: ok (party.registered)" in ok.output, ok.output
    apply = {"amount": 1000, "currency": "EUR", "term_months": 3, "purpose": "a bike"}
    no = runner.invoke(main, ["tx", "check", "loan.apply", json.dumps(apply), "--key", str(key_file)])
    assert no.exit_code == 1 and "would be refused in block 1" in no.output, no.output
    as_json = runner.invoke(
        main, ["--json", "tx", "check", "loan.apply", json.dumps(apply), "--key", str(key_file)]
    )
    assert as_json.exit_code == 1 and json.loads(as_json.output)["outcome"] == "refused"
    for bad, says in [("{bad", "payload is not JSON"), ("[1, 2]", "payload must be a JSON object")]:
        refused = runner.invoke(main, ["tx", "check", "party.register", bad, "--key", str(key_file)])
        assert refused.exit_code == 1 and says in refused.output, refused.output
