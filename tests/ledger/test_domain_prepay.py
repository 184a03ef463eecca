"""Partial prepayment: penalty and begun interest first, then principal; same term, lower instalments."""

from __future__ import annotations

import pytest

from lendchain.ledger import queries
from lendchain.ledger.servicing import DAY_MS, MONTH_MS
from tests.ledger.chain import KYC_MEMBER, Chain, make_genesis, member_key, seeded_key

# 120 000 at 12 % over 12 months: instalments of 10 662 (1 200 interest in month 1, 1 105 in month 2).
APPLY = {"amount": 120_000, "currency": "EUR", "term_months": 12, "purpose": "a kitchen"}
GRACE_MS = 5 * DAY_MS


@pytest.fixture
def world():
    genesis, members = make_genesis()
    chain = Chain.start(genesis)
    borrower, lender = seeded_key(1), members[0]
    chain.onboard(borrower, member_key(KYC_MEMBER))
    loan_id = chain.run_one(chain.tx(borrower, "loan.apply", APPLY)).tx_id.hex()
    offer_id = chain.run_one(
        chain.tx(lender, "loan.offer", {"loan_id": loan_id, "rate_bps": 1200})
    ).tx_id.hex()
    chain.run_one(chain.tx(borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offer_id}))
    chain.run_one(chain.tx(lender, "loan.disburse", {"loan_id": loan_id}))
    return chain, lender, loan_id


def loan(chain, loan_id):
    return queries.lookup(chain.state, "loan", loan_id)


def at(chain, ms: int) -> None:
    chain.head_ms = ms - 1000


def prepay(chain, lender, loan_id, amount):
    return chain.run_one(chain.tx(lender, "loan.prepay", {"loan_id": loan_id, "amount": amount}))


def test_partial_prepayment_pays_begun_interest_then_principal_and_lowers_the_instalments(world):
    chain, lender, loan_id = world
    disbursed = loan(chain, loan_id)["disbursed_ms"]
    at(chain, disbursed + MONTH_MS - DAY_MS)
    assert chain.run_one(chain.tx(lender, "loan.repay", {"loan_id": loan_id, "amount": 10_662})).ok
    # Three days into period 2: its interest (1 105) has begun, the rest of 50 000 is principal.
    at(chain, disbursed + MONTH_MS + 3 * DAY_MS)
    result = prepay(chain, lender, loan_id, 50_000)
    assert result.ok
    assert result.events[0] == {
        "event": "loan.rescheduled",
        "loan_id": loan_id,
        "settled_instalments": 2,
        "outstanding_principal": 61_643,
        "next_instalment": 6_509,
    }
    assert result.events[1] == {
        "event": "loan.prepaid",
        "loan_id": loan_id,
        "penalty": 0,
        "interest": 1_105,
        "principal": 48_895,
        "state": "repaying",
    }
    view = loan(chain, loan_id)
    assert view["reschedules"] == [[2, 61_643]]
    assert (view["principal_paid"], view["interest_paid"]) == (9_462 + 48_895, 1_200 + 1_105)
    assert view["outstanding_principal"] == 61_643 and view["instalments_paid"] == 2
    # Same term and due dates: instalments 3..12 now amortize 61 643 at 12 %, 6 509 each, the last 6 497.
    rest = view["schedule"][2:]
    assert [row["number"] for row in rest] == list(range(3, 13))
    assert rest[0] == {
        "number": 3,
        "payment": 6_509,
        "interest": 616,
        "principal": 5_893,
        "outstanding_after": 55_750,
        "due_ms": disbursed + 3 * MONTH_MS,
    }
    assert rest[-1]["payment"] == 6_497 and rest[-1]["outstanding_after"] == 0
    assert sum(row["principal"] for row in rest) == 61_643
    assert view["amount_owed"] == sum(row["payment"] for row in rest) == 65_078
    # Due dates did not move: the ledger next checks instalment 3.
    assert view["next_check_ms"] == disbursed + 3 * MONTH_MS + GRACE_MS + 1
    for row in rest:
        at(chain, disbursed + row["number"] * MONTH_MS - DAY_MS)
        paid = chain.run_one(chain.tx(lender, "loan.repay", {"loan_id": loan_id, "amount": row["payment"]}))
        assert paid.ok, paid
    view = loan(chain, loan_id)
    assert view["state"] == "closed" and view["principal_paid"] == 120_000
    assert view["interest_paid"] == 1_200 + 1_105 + 3_435


def test_two_partial_prepayments_stack(world):
    chain, lender, loan_id = world
    disbursed = loan(chain, loan_id)["disbursed_ms"]
    at(chain, disbursed + 2 * DAY_MS)
    assert prepay(chain, lender, loan_id, 20_000).ok  # period 1: 1 200 interest, 18 800 principal
    second = loan(chain, loan_id)["schedule"][1]
    at(chain, disbursed + 2 * MONTH_MS - DAY_MS)
    assert chain.run_one(chain.tx(lender, "loan.repay", {"loan_id": loan_id, "amount": second["payment"]})).ok
    at(chain, disbursed + 2 * MONTH_MS + 2 * DAY_MS)  # period 3 has begun; nothing is past due
    third = loan(chain, loan_id)["schedule"][2]
    assert prepay(chain, lender, loan_id, third["interest"] + 10_000).ok
    view = loan(chain, loan_id)
    left = second["outstanding_after"] - 10_000
    assert view["reschedules"] == [[1, 101_200], [3, left]]
    assert sum(row["principal"] for row in view["schedule"][3:]) == view["outstanding_principal"] == left
    assert [row["number"] for row in view["schedule"]] == list(range(1, 13))


def test_full_payoff_is_unchanged_and_overpayment_names_the_payoff(world):
    chain, lender, loan_id = world
    disbursed = loan(chain, loan_id)["disbursed_ms"]
    at(chain, disbursed + 3 * DAY_MS)
    refused = prepay(chain, lender, loan_id, 121_201)
    assert refused.code == "bad_payload"
    assert "more than the 121200 that settles" in refused.message and "interest 1200" in refused.message
    closed = prepay(chain, lender, loan_id, 121_200)
    assert closed.ok and closed.events[0]["state"] == "closed"
    assert [e["event"] for e in closed.events] == ["loan.prepaid", "loan.history"]


@pytest.mark.parametrize(
    ("days", "amount", "code", "names"),
    [
        (3, 1_200, "bad_payload", "more than the 1200 of penalty and interest"),
        (30 + 10, 20_000, "invalid_state", "arrears"),  # instalment 1 unpaid past grace
        (11 * 30 + 2, 5_000, "bad_payload", "last period"),
    ],
)
def test_partial_prepayment_refusals(world, days, amount, code, names):
    chain, lender, loan_id = world
    disbursed = loan(chain, loan_id)["disbursed_ms"]
    if days > 11 * 30:  # bring the loan to its last period without arrears
        for row in loan(chain, loan_id)["schedule"][:11]:
            at(chain, disbursed + row["number"] * MONTH_MS - DAY_MS)
            chain.run_one(chain.tx(lender, "loan.repay", {"loan_id": loan_id, "amount": row["payment"]}))
    at(chain, disbursed + days * DAY_MS)
    refused = prepay(chain, lender, loan_id, amount)
    assert refused.code == code and names in refused.message and "'amount'" in refused.message


def test_cli_loan_prepay_builds_a_payload_the_schema_accepts(monkeypatch):
    from click.testing import CliRunner

    from lendchain.cli import loans as loan_cli
    from lendchain.ledger.kinds import lookup_kind
    from lendchain.ledger.schema import check_payload

    sent = []
    monkeypatch.setattr(loan_cli, "send_tx", lambda ctx, kw, kind, payload: sent.append((kind, payload)))
    args = ["prepay", "aa" * 32, "--amount", "50000", "--key", "k", "--node", "http://127.0.0.1:9"]
    result = CliRunner().invoke(loan_cli.loan, args)
    assert result.exit_code == 0, result.output
    assert sent == [("loan.prepay", {"loan_id": "aa" * 32, "amount": 50_000})]
    check_payload("loan.prepay", lookup_kind("loan.prepay").schema, sent[0][1])
