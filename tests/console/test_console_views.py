"""What the console reads beyond the ledger's views: signers of a loan's history, members' heights.

No network and no processes: a real ChainStore with real blocks for the loan
timeline, and the consensus driver stepped with real signed messages (its
replica stubbed) for the members' heights.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import replace
from types import SimpleNamespace
from unittest import mock

import pytest

from lendchain.consensus import messages
from lendchain.consensus.events import Fault, Receive
from lendchain.ledger.servicing import DAY_MS, MONTH_MS
from lendchain.node.config import StoreConfig
from lendchain.node.driver import ConsensusDriver, MemberSighting
from lendchain.node.store import ChainStore
from lendchain.node.views import NodeViews
from tests.ledger.chain import CHAIN_ID, GENESIS_MS, Chain, make_genesis, seeded_key

APPLY = {"amount": 120_000, "currency": "EUR", "term_months": 12, "purpose": "a kitchen"}


class NoMempool:
    size_bytes = 0

    def __len__(self) -> int:
        return 0

    def __contains__(self, tx_id: object) -> bool:
        return False

    def recent_outcome(self, tx_id: bytes) -> None:
        return None


class Views(NodeViews):
    """The views of a node called ``name``, over a store and whatever the driver has seen."""

    def __init__(self, store, genesis, name="bank1", driver=None, connected=()):
        self.store = store
        self.genesis = genesis
        self.config = SimpleNamespace(name=name, store=StoreConfig())
        self.key = seeded_key(100)
        self.voting = True
        self.voters = [member.name for member in genesis.members]
        self.replica = None
        self.driver = driver
        self.network = SimpleNamespace(
            connected_members=lambda: set(connected),
            peer_id="12D3KooWfake",
            member_names=lambda: [m.name for m in (*genesis.members, *genesis.observers)],
        )
        self.member_keys = {m.name: [m.public_key] for m in (*genesis.members, *genesis.observers)}
        self.mempool = NoMempool()
        self._observer_target = 0
        self._catch_up_asks = {}  # no member's node asked this one for blocks
        self._started = time.monotonic()
        self._recent_commits = []
        self.signers = {}  # no member has rotated its key
        self.backups = SimpleNamespace(newest=None)


@pytest.fixture
def loan_on_store(tmp_path):
    """A loan applied, offered, accepted, disbursed, repaid once, then serviced into overdue."""
    genesis, members = make_genesis()
    lender, kyc = members[0], members[3]
    borrower = seeded_key(1)
    chain = Chain.start(genesis)
    store = ChainStore.open(tmp_path / "db", genesis)

    def run(tx, now_ms=None):
        if now_ms is not None:
            chain.head_ms = now_ms - 1000
        block, execution = chain.cut([tx])
        assert execution.results[0].ok, execution.results[0]
        store.commit_block(block.encode(), b"certificate", execution)
        chain.apply(block, execution)
        return tx.id.hex()

    run(chain.tx(borrower, "party.register", {"role": "borrower"}))
    attest = {
        "subject": borrower.did,
        "level": 2,
        "expires_ms": GENESIS_MS + 10**13,
        "evidence_hash": "ab" * 32,
    }
    run(chain.tx(kyc, "kyc.attest", attest))
    loan_id = run(chain.tx(borrower, "loan.apply", APPLY))
    offer_id = run(chain.tx(lender, "loan.offer", {"loan_id": loan_id, "rate_bps": 1200}))
    run(chain.tx(borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offer_id}))
    run(chain.tx(lender, "loan.disburse", {"loan_id": loan_id}))
    loan = Views(store, genesis).query("loan", loan_id)
    run(chain.tx(lender, "loan.repay", {"loan_id": loan_id, "amount": loan["schedule"][0]["payment"]}))
    overdue_at = loan["disbursed_ms"] + 2 * MONTH_MS + 15 * DAY_MS
    service_id = run(chain.tx(members[1], "loan.service", {"loan_id": loan_id}), now_ms=overdue_at)
    yield SimpleNamespace(
        store=store, genesis=genesis, loan_id=loan_id, borrower=borrower, service_id=service_id
    )
    store.close()


def test_every_history_entry_names_its_signer_block_and_time(loan_on_store):
    net = loan_on_store
    loan = Views(net.store, net.genesis).query("loan", net.loan_id)
    events = [
        (e["event"], e["signer"] and (e["signer"]["name"] or e["signer"]["did"])) for e in loan["history"]
    ]
    assert events == [
        ("loan.apply", net.borrower.did),
        ("loan.offer", "bank1"),
        ("loan.accept", net.borrower.did),
        ("loan.disburse", "bank1"),
        ("loan.repay", "bank1"),
        ("loan.overdue", None),  # the chain's own doing: the start-of-block servicing pass
    ]
    for entry in loan["history"][:-1]:
        block = net.store.block(entry["height"])
        assert entry["timestamp_ms"] == block.header.timestamp_ms
        assert entry["tx_kind"] == entry["event"]
    # The ledger marked the loan overdue at the start of the block that carried
    # bank2's loan.service, before any tx ran: no tx made it, so nobody signed it.
    overdue = loan["history"][-1]
    service_height = net.store.tx_location(bytes.fromhex(net.service_id))[0]
    assert overdue["height"] == service_height
    assert overdue["timestamp_ms"] == net.store.block(service_height).header.timestamp_ms
    assert overdue["tx_id"] == "00" * 32
    assert overdue["tx_kind"] is None and overdue["tx_sender"] is None
    assert loan["history"][0]["signer"] == {"did": net.borrower.did, "name": None}


def test_a_committed_tx_status_says_its_kind_sender_and_time(loan_on_store):
    net = loan_on_store
    views = Views(net.store, net.genesis)
    applied = views.tx_status(bytes.fromhex(net.loan_id))
    assert (applied["kind"], applied["sender"], applied["sender_name"]) == (
        "loan.apply",
        net.borrower.did,
        None,
    )
    assert applied["timestamp_ms"] == net.store.block(applied["height"]).header.timestamp_ms
    serviced = views.tx_status(bytes.fromhex(net.service_id))
    assert (serviced["kind"], serviced["sender_name"]) == ("loan.service", "bank2")
    assert views.tx_status(b"\x00" * 32) == {"id": "00" * 32, "status": "unknown"}
    # A member the genesis does not list (one admitted since) is named from its record on chain:
    # before, its txs and history entries showed its DID alone.
    bank2_unlisted = replace(net.genesis, members=tuple(m for m in net.genesis.members if m.name != "bank2"))
    serviced = Views(net.store, bank2_unlisted).tx_status(bytes.fromhex(net.service_id))
    assert serviced["sender_name"] == "bank2"


@contextmanager
def disbursed_on_a_store(tmp_path, version: int = 1):
    """A loan lent by ``members[0]`` and disbursed on a real ChainStore under rules ``version``:
    ``(store, genesis, run, members, borrower, loan_id)``; ``run(key, kind, payload, now_ms=None)``
    commits one tx in a block (at ``now_ms`` if given) and returns its id."""
    genesis, members = make_genesis()
    genesis = replace(genesis, app={"rules_version": version}) if version != 1 else genesis
    lender, borrower = members[0], seeded_key(1)
    chain = Chain.start(genesis)
    with ChainStore.open(tmp_path / "db", genesis) as store:

        def run(key, kind, payload, now_ms=None):
            if now_ms is not None:
                chain.head_ms = now_ms - 1000
            block, execution = chain.cut([chain.tx(key, kind, payload)])
            assert execution.results[0].ok, execution.results[0]
            store.commit_block(block.encode(), b"certificate", execution)
            chain.apply(block, execution)
            return execution.results[0].tx_id.hex()

        run(borrower, "party.register", {"role": "borrower"})
        attest = {
            "subject": borrower.did,
            "level": 2,
            "expires_ms": GENESIS_MS + 10**13,
            "evidence_hash": "ab" * 32,
        }
        run(members[3], "kyc.attest", attest)
        loan_id = run(borrower, "loan.apply", APPLY)
        offer_id = run(lender, "loan.offer", {"loan_id": loan_id, "rate_bps": 1200})
        run(borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offer_id})
        run(lender, "loan.disburse", {"loan_id": loan_id})
        yield store, genesis, run, members, borrower, loan_id


def test_the_node_judges_a_loans_forbearance_at_its_head_blocks_time(tmp_path):
    """``GET /loans/{id}`` and ``/portfolio/{did}`` judge a restructured loan as of the head block."""
    with disbursed_on_a_store(tmp_path, version=5) as (store, genesis, run, members, borrower, loan_id):
        lender = members[0]
        head_ms = store.head().timestamp_ms
        terms = {"loan_id": loan_id, "rate_bps": 600, "term_months": 24}
        run(
            lender, "loan.restructure", terms, now_ms=head_ms + 1000 + MONTH_MS + 10 * DAY_MS
        )  # it is overdue
        run(borrower, "loan.restructure_accept", {"loan_id": loan_id})
        views = Views(store, genesis)
        status = views.query("loan", loan_id)["forbearance"]
        assert (status["status"], status["as_of_ms"]) == ("non_performing", store.head().timestamp_ms)

        later = store.head().timestamp_ms + 20 * DAY_MS  # a block for someone else moves the head on
        run(seeded_key(2), "party.register", {"role": "investor"}, now_ms=later)
        assert views.query("loan", loan_id)["forbearance"]["as_of_ms"] == later
        book = views.query("portfolio", lender.did)["forborne"]["EUR"]
        assert (book["loans"], book["non_performing_loans"]) == (1, 1)


class StubReplica:
    """Answers every step with the actions a test sets (the real replica's checks are its own tests)."""

    view = 0
    in_view_change = False

    def __init__(self) -> None:
        self.actions: list[object] = []

    def step(self, event: object) -> list[object]:
        return list(self.actions)


def signed(cls, signer: str, **fields) -> bytes:
    key = seeded_key(100 + int(signer.removeprefix("bank")) - 1)
    return messages.sign(key, CHAIN_ID, cls, signer, **fields).encode()


def test_the_driver_records_each_members_highest_height_from_accepted_messages_only():
    replica = StubReplica()
    driver = ConsensusDriver(replica, None, None, None, None, None, mock.Mock(), logging.getLogger("t"))
    vote = {"view": 0, "digest": b"d" * 32}
    driver._step(Receive("bank2", signed(messages.Commit, "bank2", height=7, **vote)))
    driver._step(Receive("bank2", signed(messages.Prepare, "bank2", height=5, **vote)))
    assert driver.member_sightings["bank2"].height == 7  # the highest, not the latest

    seen = driver.member_sightings["bank2"].seen_at
    driver._step(Receive("bank3", signed(messages.PrePrepare, "bank3", height=9, block=b"b", **vote)))
    assert driver.member_sightings["bank3"].height == 0  # alive, height left to its votes

    replica.actions = [Fault("bank2", "bad-signature", "commit signature does not verify")]
    driver._step(Receive("bank2", signed(messages.Commit, "bank2", height=50, **vote)))
    assert driver.member_sightings["bank2"] == MemberSighting(7, seen)

    replica.actions = [Fault("bank4", "equivocation", "two commits at height 8")]  # signed all the same
    driver._step(Receive("bank4", signed(messages.Checkpoint, "bank4", height=8, state_root=b"r" * 32)))
    assert driver.member_sightings["bank4"].height == 8


def test_status_gives_every_members_height_connection_and_silence(tmp_path):
    genesis, _ = make_genesis()
    now = time.monotonic()
    driver = SimpleNamespace(
        sync_target=0,
        member_sightings={"bank2": MemberSighting(3, now - 1), "bank3": MemberSighting(2, now - 60)},
    )
    with ChainStore.open(tmp_path / "db", genesis) as store:
        status = Views(store, genesis, driver=driver, connected={"bank2"}).status()
    assert status["members"] == ["bank1", "bank2", "bank3", "bank4"]  # unchanged for older readers
    rows = {row["name"]: row for row in status["member_heights"]}
    assert rows["bank1"] == {
        "name": "bank1",
        "height": 0,
        "last_seen_s": 0.0,
        "connected": True,
        "self": True,
        "silent": False,
        "catching_up": False,
    }
    assert (rows["bank2"]["height"], rows["bank2"]["connected"], rows["bank2"]["silent"]) == (3, True, False)
    assert 0.5 <= rows["bank2"]["last_seen_s"] < 30
    assert (rows["bank3"]["height"], rows["bank3"]["connected"], rows["bank3"]["silent"]) == (2, False, True)
    assert rows["bank4"] == {
        "name": "bank4",
        "height": None,
        "last_seen_s": None,
        "connected": False,
        "self": False,
        "silent": False,
        "catching_up": False,
    }


def test_a_block_shows_what_the_ledger_did_by_itself_at_its_start(loan_on_store, monkeypatch):
    net = loan_on_store
    monkeypatch.setattr(net.store, "certificate", lambda height: None)  # the fixture's are placeholders
    views = Views(net.store, net.genesis)
    service_height = net.store.tx_location(bytes.fromhex(net.service_id))[0]
    events = views.block(str(service_height))["ledger_events"]
    overdue = [e for e in events if e["event"] == "loan.overdue"]
    assert len(overdue) == 1 and overdue[0]["loan_id"] == net.loan_id
    # A block whose start changed nothing shows an empty list, not a missing field.
    assert views.block("1")["ledger_events"] == []
