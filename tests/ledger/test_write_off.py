"""Writing off a defaulted loan (``loan.write_off``, rules 4; see ``ledger.writeoff``).

The chains start on rules 4 from the genesis unless a test says otherwise.
bank1 and bank2 are the lenders (``make_genesis``'s roles), bank3 a
regulator and bank4 the kyc member; a loan defaults once a block's due-loan
pass finds its first instalment unpaid past ``default_days`` (90).
"""

from __future__ import annotations

import json

import pytest

from lendchain.ledger import due, queries
from lendchain.ledger.audit import export_loan, verify_export
from lendchain.ledger.exposure import book_page
from lendchain.ledger.funding import pro_rata
from lendchain.ledger.servicing import DAY_MS, MONTH_MS
from lendchain.ledger.state import loan_key, read_value
from lendchain.ledger.transfers import servicing_duties
from tests.ledger.chain import domain_events, seeded_key
from tests.ledger.test_admission import rules_world
from tests.ledger.test_domain_audit import CertifiedBlocks
from tests.ledger.test_loan_transfer import (
    APPLY,
    loan,
    ok,
    open_loan,
    repay,
    syndicated_loan,
    transfer,
    with_borrower,
)
from tests.ledger.test_membership import propose, vote_through
from tests.ledger.test_removal import demote

REASON = "recovery ended: the borrower's estate was settled"


@pytest.fixture
def world():
    return with_borrower()


RECOVERIES = (
    "the loan was written off, which is final; recoveries after a write-off are not recorded on chain"
)


def default(chain, loan_id):
    """Run a block 200 days after the loan's disbursement: its due-loan pass defaults the loan."""
    chain.head_ms = loan(chain, loan_id)["disbursed_ms"] + 200 * DAY_MS
    chain.run()
    assert loan(chain, loan_id)["state"] == "defaulted"


def write_off(chain, key, loan_id, reason=REASON):
    return chain.run_one(chain.tx(key, "loan.write_off", {"loan_id": loan_id, "reason": reason}))


def score(chain, did):
    return queries.lookup(chain.state, "score", did)["score"]


def test_a_defaulted_loan_is_written_off_with_what_was_owed_and_leaves_servicing_for_good(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    assert repay(chain, bank1, loan_id, 10_000).ok
    default(chain, loan_id)
    before = loan(chain, loan_id)
    score_before = score(chain, borrower.did)
    principal = before["outstanding_principal"]
    penalty = before["penalty_owed"] - before.get("penalty_paid", 0)
    assert 0 < principal < APPLY["amount"] and penalty > 0

    result = write_off(chain, bank1, loan_id)
    assert result.ok, result.message
    recorded = {
        "principal": principal,
        "interest": before["amount_owed"] - principal,
        "penalty": penalty,
        "reason": REASON,
    }
    unpaid_interest = sum(row["interest"] for row in before["schedule"][before["instalments_paid"] :])
    assert recorded["interest"] == unpaid_interest - before["progress"][1] > 0
    assert domain_events(result.events) == [
        {"event": "loan.written_off", "loan_id": loan_id, "currency": "EUR", **recorded}
    ]
    after = loan(chain, loan_id)
    assert after["state"] == "written_off"
    assert after["written_off"] == {"height": chain.height, "time_ms": chain.head_ms, **recorded}
    assert after["defaulted_ms"] == before["defaulted_ms"]  # still the default it was
    assert (after["outstanding_principal"], after["amount_owed"]) == (0, 0)
    entry = after["history"][-1]
    assert entry["event"] == "loan.write_off" and entry["tx_id"] == result.tx_id.hex()
    assert {name: entry[name] for name in recorded} == recorded

    # The due-loan pass never touches it again, however much time passes.
    assert due.index_size(lambda k: read_value(chain.state, k)) == 0
    stored = read_value(chain.state, loan_key(bytes.fromhex(loan_id)))
    assert stored["next_check_ms"] is None
    chain.head_ms += 400 * DAY_MS
    chain.run()
    assert chain.ledger_events == ()
    assert read_value(chain.state, loan_key(bytes.fromhex(loan_id))) == stored

    # The score counts it as the default it was; the write-off does not improve it.
    history = queries.lookup(chain.state, "party", borrower.did)["repayment_history"]
    assert (history["defaults"], history["written_off"], history["closed"]) == (1, 1, 0)
    assert score(chain, borrower.did) == score_before
    factors = queries.lookup(chain.state, "score", borrower.did)["factors"]
    assert next(f for f in factors if f["factor"] == "defaults") | {"source": None} == {
        "factor": "defaults",
        "value": 1,
        "points": -200,
        "source": None,
    }
    assert queries.lookup(chain.state, "reminders", bank1.did)["loans"] == []
    # No open loan; its recovery is counted apart (it keeps bank1 from leaving from rules 6: removal)
    assert servicing_duties(lambda k: read_value(chain.state, k), bank1.did) == (0, 0, 1)


def test_a_loan_written_off_is_no_longer_outstanding_and_each_view_reports_the_loss(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    syndicated, commitments = syndicated_loan(chain, borrower, bank1)
    (alice, _), _, (bob, _) = commitments
    ok(chain, bank1, "loan.disburse", {"loan_id": syndicated})
    assert repay(chain, bank1, syndicated, 12_000).ok
    default(chain, syndicated)
    live = open_loan(chain, borrower, bank2)  # disbursed after the default: nothing of it is late
    assert write_off(chain, bank1, syndicated).ok
    lost = loan(chain, syndicated)["written_off"]
    shares = pro_rata(lost["principal"], [amount for _, amount in commitments])
    assert sum(shares) == lost["principal"]
    totals = {name: lost[name] for name in ("principal", "interest", "penalty")}
    # Nothing recovered yet: the net loss is what was written off.
    totals |= {"recovered": 0, "recovered_principal": 0, "net_principal": lost["principal"]}
    totals["net"] = lost["principal"] + lost["interest"] + lost["penalty"]

    exposure = queries.lookup(chain.state, "exposure", borrower.did)
    eur = exposure["currencies"]["EUR"]
    assert (eur["outstanding"], eur["loans"], eur["defaulted_loans"]) == (
        APPLY["amount"],
        1,
        0,
    )  # the live one
    assert exposure["written_off"] == {"EUR": {**totals, "loans": 1}}
    assert [c["did"] for c in exposure["carriers"]] == [bank2.did]
    row = next(r for r in exposure["loans"] if r["loan_id"] == syndicated)
    assert (row["state"], row["written_off"], row["penalty_due"]) == ("written_off", lost["principal"], 0)
    assert row["carried_by"] == [
        {"did": funder.did, "written_off": share}
        for (funder, _), share in zip(commitments, shares, strict=True)
    ]
    assert [r["loan_id"] for r in exposure["loans"]] == [syndicated, live]

    book = queries.lookup(chain.state, "portfolio", bank1.did)
    assert book["currencies"] == {} and book["largest_borrowers"] == {}
    never_moved = {"taken_over": 0, "taken_over_principal": 0, "handed_on": 0, "handed_on_principal": 0}
    assert book["written_off"] == {
        "EUR": {
            **totals,
            "loans": 1,
            "funded_by_others": shares[0] + shares[2],
            "recovering_loans": 1,
            **never_moved,
        }
    }
    assert queries.lookup(chain.state, "portfolio", bank2.did)["written_off"] == {}
    assert book_page(chain.state, bank1.did, 0, 10)["loans"] == []  # nothing left to hand on

    for (funder, commitment), share in zip(commitments, shares, strict=True):
        positions = queries.lookup(chain.state, "positions", funder.did)
        [position] = positions["positions"]
        assert (position["state"], position["share_of"]) == ("written_off", "written_off")
        assert (position["share"], position["commitment"]) == (share, commitment)
        assert positions["written_off"] == {
            "EUR": {"principal": share, "loans": 1, "recovered": 0, "net_principal": share}
        }
        assert positions["currencies"]["EUR"]["outstanding"] == 0


def test_a_lending_policy_no_longer_counts_a_written_off_loan_against_its_exposure_limit(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    default(chain, loan_id)
    policy = {
        "currency": "EUR",
        "min_amount": 1,
        "max_amount": 200_000,
        "max_term_months": 24,
        "bands": "0:1500",
        "max_exposure": 150_000,
    }
    ok(chain, bank1, "policy.publish", policy)
    blocked = ok(chain, borrower, "loan.apply", APPLY).tx_id.hex()
    assert loan(chain, blocked)["offers"] == []  # 120,000 defaulted plus 120,000 would pass 150,000
    assert write_off(chain, bank1, loan_id).ok
    offered = ok(chain, borrower, "loan.apply", APPLY).tx_id.hex()
    assert [o["rate_bps"] for o in loan(chain, offered)["offers"]] == [1500]


def test_nothing_is_recorded_on_a_written_off_loan_any_more(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    default(chain, loan_id)
    assert write_off(chain, bank1, loan_id).ok
    attempts = [
        chain.tx(bank1, "loan.repay", {"loan_id": loan_id, "amount": 5_000}),
        chain.tx(bank1, "loan.prepay", {"loan_id": loan_id, "amount": 5_000}),
        chain.tx(bank1, "loan.transfer", {"loan_id": loan_id, "to": bank2.did}),
        chain.tx(bank2, "loan.service", {"loan_id": loan_id}),
        chain.tx(bank1, "loan.write_off", {"loan_id": loan_id, "reason": "again"}),
    ]
    stored = read_value(chain.state, loan_key(bytes.fromhex(loan_id)))
    for tx in attempts:
        refused = chain.run_one(tx)
        assert refused.code == "invalid_state", refused
        assert f"({tx.kind}) on loan {loan_id[:16]} in state 'written_off'" in refused.message
        assert RECOVERIES in refused.message
    assert read_value(chain.state, loan_key(bytes.fromhex(loan_id))) == stored


def test_a_transfer_pending_when_the_loan_is_written_off_lapses(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    default(chain, loan_id)
    assert transfer(chain, bank1, loan_id, bank2).ok
    assert servicing_duties(lambda k: read_value(chain.state, k), bank2.did) == (0, 1, 0)
    assert write_off(chain, bank1, loan_id).ok
    assert loan(chain, loan_id)["transfer"]["status"] == "lapsed"
    refused = chain.run_one(chain.tx(bank2, "loan.transfer_accept", {"loan_id": loan_id}))
    assert refused.code == "invalid_state" and RECOVERIES in refused.message
    assert servicing_duties(lambda k: read_value(chain.state, k), bank2.did) == (0, 0, 0)
    assert queries.lookup(chain.state, "portfolio", bank2.did)["pending_transfers"] == []
    assert queries.lookup(chain.state, "portfolio", bank1.did)["pending_transfers"] == []


def test_an_audit_export_of_a_written_off_loan_verifies_with_the_write_off_and_its_signer(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    default(chain, loan_id)
    assert write_off(chain, bank1, loan_id).ok
    document = export_loan(chain.state, CertifiedBlocks(chain, members), bytes.fromhex(loan_id))
    assert [(e["kind"], e["signer"]) for e in document["entries"]][-1] == ("loan.write_off", bank1.did)
    assert verify_export(json.loads(json.dumps(document)), chain.genesis)["loan_id"] == loan_id


# Refusals ---------------------------------------------------------------------------------


def test_only_the_loans_servicer_writes_it_off(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    default(chain, loan_id)
    for sender in (bank2, borrower, members[2]):  # another lender, the borrower, the regulator
        refused = write_off(chain, sender, loan_id)
        assert refused.code == "forbidden", sender
        assert "in state 'defaulted' is refused: only the lender whose offer was accepted" in refused.message
    assert loan(chain, loan_id)["state"] == "defaulted"


@pytest.mark.parametrize("state", ["accepted", "disbursed", "repaying", "overdue", "closed"])
def test_a_loan_that_has_not_defaulted_cannot_be_written_off(world, state):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1, disburse=state != "accepted")
    if state == "repaying":
        assert repay(chain, bank1, loan_id, 10_000).ok
    if state == "overdue":
        chain.head_ms = loan(chain, loan_id)["disbursed_ms"] + MONTH_MS + 10 * DAY_MS
        chain.run()
    if state == "closed":
        assert repay(chain, bank1, loan_id, loan(chain, loan_id)["amount_owed"]).ok
    assert loan(chain, loan_id)["state"] == state
    refused = write_off(chain, bank1, loan_id)
    assert refused.code == "invalid_state" and f"in state '{state}'" in refused.message
    assert "loan.write_off is only allowed in state defaulted" in refused.message
    assert "written_off" not in loan(chain, loan_id)


def test_an_unknown_loan_cannot_be_written_off(world):
    chain, members, _ = world
    refused = write_off(chain, members[0], "ab" * 32)
    assert refused.code == "not_found"
    assert "loan.write_off field 'loan_id' names no known loan" in refused.message


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("", "must be at least 1"), ("x" * 201, "must be at most 200"), (None, "'reason'")],
)
def test_a_write_off_without_a_reason_of_1_to_200_characters_is_malformed(world, reason, expected):
    chain, members, borrower = world
    loan_id = open_loan(chain, borrower, members[0])
    default(chain, loan_id)
    payload = {"loan_id": loan_id} if reason is None else {"loan_id": loan_id, "reason": reason}
    _, execution = chain.cut([chain.tx(members[0], "loan.write_off", payload)])
    assert execution.dropped[0].code == "bad_payload"
    assert "'reason'" in execution.dropped[0].message and expected in execution.dropped[0].message


def test_a_reason_of_spaces_is_refused_and_one_of_200_characters_is_kept(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    default(chain, loan_id)
    blank = write_off(chain, bank1, loan_id, reason="   ")
    assert blank.code == "bad_payload"
    assert "loan.write_off field 'reason' must say why the loan is written off" in blank.message
    longest = "r" * 200
    assert write_off(chain, bank1, loan_id, reason=longest).ok
    assert loan(chain, loan_id)["written_off"]["reason"] == longest


def test_under_rules_3_loan_write_off_is_an_unknown_kind():
    chain, members = rules_world(version=3)
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    loan_id = open_loan(chain, borrower, members[0])
    default(chain, loan_id)
    tx = chain.tx(members[0], "loan.write_off", {"loan_id": loan_id, "reason": REASON})
    block, execution = chain.cut([tx])
    assert not block.txs
    assert [(d.code, d.tx_id) for d in execution.dropped] == [("unknown_kind", tx.id)]
    assert "exists from rules version 4; block" in execution.dropped[0].message


# Removing a member ------------------------------------------------------------------------


def test_a_member_whose_only_loans_are_written_off_can_be_removed(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank2)
    default(chain, loan_id)
    demote(chain, members, bank2)
    refused = propose(chain, bank1, "member.remove", bank2.did, "leaves")
    assert refused.code == "bad_payload" and "bank2 is the lender of 1 open loan," in refused.message
    assert write_off(chain, bank2, loan_id).ok
    removed = vote_through(chain, bank1, [], "member.remove", bank2.did, "leaves")
    assert any(e["event"] == "member.removed" for e in removed.events)
    assert loan(chain, loan_id)["state"] == "written_off"
