"""Whose book shows a written-off loan whose recovery changed servicer (rules 6; see
``ledger.exposure`` and ``writeoff.recovery_spans``).

The member that wrote the loan off keeps the write-off, each servicer the
recoveries it recorded, the servicer now what is still lost; what moved is
``handed_on`` on one side and ``taken_over`` on the other. Each book rolls
forward, and over the members each column adds up to the loan's figures,
which the borrower's exposure and the funders' positions give as before.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lendchain.ledger import queries
from lendchain.ledger.audit import export_loan, verify_export
from lendchain.ledger.exposure import book_page
from lendchain.ledger.funding import pro_rata
from tests.ledger.chain import Chain, make_genesis, seeded_key
from tests.ledger.test_domain_audit import CertifiedBlocks
from tests.ledger.test_loan_transfer import loan, ok, repay, syndicated_loan, transfer, with_borrower
from tests.ledger.test_membership import DELAY
from tests.ledger.test_recovery import recover, written_off
from tests.ledger.test_write_off import default, write_off
from tests.ledger.test_written_off_transfer import end, hand_over

LOSS_TOTALS = (
    "principal",
    "interest",
    "penalty",
    "loans",
    "recovered",
    "recovered_principal",
    "net_principal",
    "net",
)


@pytest.fixture
def world():
    return with_borrower(version=6)


def book(chain, key, currency="EUR"):
    """``key``'s written-off totals in ``currency`` (None if its book has none)."""
    return queries.lookup(chain.state, "portfolio", key.did)["written_off"].get(currency)


def rolls_forward(totals):
    """Each book's roll-forward: written off + taken over - recovered - handed on = net, in all and in principal."""
    whole = totals["principal"] + totals["interest"] + totals["penalty"]
    assert whole + totals["taken_over"] - totals["recovered"] - totals["handed_on"] == totals["net"]
    assert (
        totals["principal"]
        + totals["taken_over_principal"]
        - totals["recovered_principal"]
        - totals["handed_on_principal"]
        == totals["net_principal"]
    )


def test_the_write_off_stays_with_its_writer_and_each_servicer_counts_its_own_recoveries(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = written_off(chain, borrower, bank1)
    lost = loan(chain, loan_id)["written_off"]
    principal, whole = lost["principal"], lost["principal"] + lost["interest"] + lost["penalty"]
    assert recover(chain, bank1, loan_id, 4_000).ok
    hand_over(chain, bank1, bank2, loan_id)
    assert recover(chain, bank2, loan_id, 3_000).ok

    nothing_moved = {"taken_over": 0, "taken_over_principal": 0, "handed_on": 0, "handed_on_principal": 0}
    assert book(chain, bank1) == {
        **{name: lost[name] for name in ("principal", "interest", "penalty")},
        "loans": 1,
        "funded_by_others": 0,
        "recovered": 4_000,
        "recovered_principal": 4_000,
        "net_principal": 0,  # bank1 services nothing of it now
        "net": 0,
        "recovering_loans": 0,
        **nothing_moved,
        "handed_on": whole - 4_000,
        "handed_on_principal": principal - 4_000,
    }
    assert book(chain, bank2) == {
        "principal": 0,  # it wrote nothing off
        "interest": 0,
        "penalty": 0,
        "loans": 0,
        "funded_by_others": 0,
        "recovered": 3_000,
        "recovered_principal": 3_000,
        "net_principal": principal - 7_000,
        "net": whole - 7_000,
        "recovering_loans": 1,
        **nothing_moved,
        "taken_over": whole - 4_000,
        "taken_over_principal": principal - 4_000,
    }
    for key in (bank1, bank2):
        rolls_forward(book(chain, key))
    # The borrower's exposure gives the loan's own figures: the two books add up to them.
    whole_loan = queries.lookup(chain.state, "exposure", borrower.did)["written_off"]["EUR"]
    for name in LOSS_TOTALS:
        assert book(chain, bank1)[name] + book(chain, bank2)[name] == whole_loan[name], name
    # The loss of a loan nobody else funded is carried by the member that wrote it off.
    [row] = queries.lookup(chain.state, "exposure", borrower.did)["loans"]
    assert row["carried_by"] == [{"did": bank1.did, "written_off": principal}]
    # An audit export verifies with each step and its signer.
    document = export_loan(chain.state, CertifiedBlocks(chain, members), bytes.fromhex(loan_id))
    steps = [(e["kind"], e["signer"]) for e in document["entries"]][-4:]
    assert steps == [
        ("loan.recover", bank1.did),
        ("loan.transfer", bank1.did),
        ("loan.transfer_accept", bank2.did),
        ("loan.recover", bank2.did),
    ]
    assert verify_export(json.loads(json.dumps(document)), chain.genesis)["loan_id"] == loan_id


def test_a_recovery_that_crosses_the_principal_is_split_at_the_handover(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = written_off(chain, borrower, bank1)
    principal = loan(chain, loan_id)["written_off"]["principal"]
    assert recover(chain, bank1, loan_id, principal - 100).ok
    hand_over(chain, bank1, bank2, loan_id)
    assert recover(chain, bank2, loan_id, 300).ok  # 100 of principal, then 200 of interest
    first, second = book(chain, bank1), book(chain, bank2)
    assert (first["recovered_principal"], first["handed_on_principal"]) == (principal - 100, 100)
    assert (second["recovered"], second["recovered_principal"], second["taken_over_principal"]) == (
        300,
        100,
        100,
    )
    assert second["net_principal"] == 0
    for totals in (first, second):
        rolls_forward(totals)


def test_a_lender_only_offered_the_recovery_has_none_of_it_in_its_book(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = written_off(chain, borrower, bank1)
    assert transfer(chain, bank1, loan_id, bank2).ok
    assert book(chain, bank2) is None
    pending = {
        "loan_id": loan_id,
        "lender": bank1.did,
        "to": bank2.did,
        "lender_name": "bank1",
        "to_name": "bank2",
        "offered_height": chain.height,
    }
    for key in (bank1, bank2):
        assert queries.lookup(chain.state, "portfolio", key.did)["pending_transfers"] == [pending]


def test_funders_keep_their_shares_of_the_loss_and_of_every_recovery_whoever_records_it(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id, commitments = syndicated_loan(chain, borrower, bank1)
    ok(chain, bank1, "loan.disburse", {"loan_id": loan_id})
    assert repay(chain, bank1, loan_id, 12_000).ok
    default(chain, loan_id)
    assert write_off(chain, bank1, loan_id).ok
    principal = loan(chain, loan_id)["written_off"]["principal"]
    weights = [amount for _, amount in commitments]
    assert recover(chain, bank1, loan_id, 10_001).ok
    hand_over(chain, bank1, bank2, loan_id)
    assert recover(chain, bank2, loan_id, 20_002).ok

    shares = pro_rata(principal, weights)
    recovered = pro_rata(30_003, weights)
    net = pro_rata(principal - 30_003, weights)
    for (funder, _), share, back, left in zip(commitments, shares, recovered, net, strict=True):
        positions = queries.lookup(chain.state, "positions", funder.did)
        [position] = positions["positions"]
        assert (position["lender"], position["share"], position["recovered"]) == (bank2.did, share, back)
        assert positions["written_off"]["EUR"] == {
            "principal": share,
            "loans": 1,
            "recovered": back,
            "net_principal": left,
        }
    # The writer's book keeps what the other funders carried of the loss; the new servicer's has none of it.
    assert book(chain, bank1)["funded_by_others"] == shares[0] + shares[2]
    assert book(chain, bank2)["funded_by_others"] == 0
    [row] = queries.lookup(chain.state, "exposure", borrower.did)["loans"]
    assert [c["did"] for c in row["carried_by"]] == [funder.did for funder, _ in commitments]


def test_the_book_page_lists_the_recoveries_a_lender_services_when_asked(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    open_recovery = written_off(chain, borrower, bank1)
    ended = written_off(chain, borrower, bank1)
    assert end(chain, bank1, ended).ok
    paid_back = written_off(chain, borrower, bank1)
    assert recover(chain, bank1, paid_back, loan(chain, paid_back)["net_loss"]["total"]).ok

    def rows(key, written_off=True):
        return book_page(chain.state, key.did, 0, 100, written_off)["loans"]

    assert rows(bank1, written_off=False) == []  # as before rules 6: the live loans only
    [row] = rows(bank1)
    assert (row["loan_id"], row["state"], row["lender"], row["transfer"]) == (
        open_recovery,
        "written_off",
        bank1.did,
        None,
    )
    assert transfer(chain, bank1, open_recovery, bank2).ok
    offer = {"to": bank2.did, "height": chain.height, "written_off": True, "to_name": "bank2"}
    assert [r["transfer"] for r in rows(bank1)] == [offer]
    assert [(r["loan_id"], r["transfer"]) for r in rows(bank2)] == [(open_recovery, offer)]
    assert rows(bank2, written_off=False) == []


def test_a_recovery_over_three_servicers_adds_up_in_every_book():
    genesis, members = make_genesis([("lender",), ("lender",), ("regulator",), ("kyc",), ("lender",)])
    chain = Chain.start(replace(genesis, app={"key_rotation_delay_blocks": DELAY, "rules_version": 6}))
    bank1, bank2, bank5 = members[0], members[1], members[4]
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    loan_id = written_off(chain, borrower, bank1)
    assert recover(chain, bank1, loan_id, 1_000).ok
    hand_over(chain, bank1, bank2, loan_id)
    assert recover(chain, bank2, loan_id, 2_000).ok
    hand_over(chain, bank2, bank5, loan_id)
    assert recover(chain, bank5, loan_id, 4_000).ok
    hand_over(chain, bank5, bank1, loan_id)  # back to the bank that wrote it off
    assert recover(chain, bank1, loan_id, 8_000).ok
    books = [book(chain, key) for key in (bank1, bank2, bank5)]
    assert [totals["recovered"] for totals in books] == [9_000, 2_000, 4_000]
    assert [totals["recovering_loans"] for totals in books] == [1, 0, 0]
    assert books[0]["loans"] == 1 and books[1]["loans"] == books[2]["loans"] == 0
    for totals in books:
        rolls_forward(totals)
    whole_loan = queries.lookup(chain.state, "exposure", borrower.did)["written_off"]["EUR"]
    for name in LOSS_TOTALS:
        assert sum(totals[name] for totals in books) == whole_loan[name], name
    assert sum(t["taken_over"] for t in books) == sum(t["handed_on"] for t in books)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(st.integers(0, 40_000), st.booleans()), min_size=1, max_size=5))
def test_every_book_rolls_forward_and_the_books_add_up_to_the_loan(steps):
    """Recoveries of random sizes, each followed or not by a handover to the other lender."""
    chain, members, borrower = with_borrower(version=6)
    lenders = [members[0], members[1]]
    loan_id = written_off(chain, borrower, lenders[0])
    servicer = 0
    for amount, hand_on in steps:
        amount = min(amount, loan(chain, loan_id)["net_loss"]["total"])
        if amount:
            assert recover(chain, lenders[servicer], loan_id, amount).ok
        if hand_on and loan(chain, loan_id)["net_loss"]["total"]:
            hand_over(chain, lenders[servicer], lenders[1 - servicer], loan_id)
            servicer = 1 - servicer
    books = [totals for totals in (book(chain, key) for key in lenders) if totals is not None]
    for totals in books:
        rolls_forward(totals)
    whole_loan = queries.lookup(chain.state, "exposure", borrower.did)["written_off"]["EUR"]
    for name in LOSS_TOTALS:
        assert sum(totals[name] for totals in books) == whole_loan[name], name
