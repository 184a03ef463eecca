"""``lendchain loan offer``: a lender's offer, whole-funded or syndicated, and its repayment schedule.

The command's payload is executed on a ledger test chain, signed by the lender member, as in
``test_loan_transfer_cli``; what the chain makes of it is what a node would.
"""

from __future__ import annotations

import pytest

from lendchain.cli import loans as loans_cli
from lendchain.ledger.loans import MAX_FUNDING_WINDOW_MS
from lendchain.ledger.rules import RULES_VERSION
from tests.cli.test_loan_transfer_cli import cli, execute
from tests.ledger.chain import seeded_key
from tests.ledger.test_admission import rules_world
from tests.ledger.test_loan_transfer import APPLY, loan, ok

WEEK_MS = 7 * 86_400_000


@pytest.fixture
def applied(monkeypatch):
    """A chain with a loan applied for; the CLI records what it would send (and says it committed)."""
    chain, members = rules_world(version=RULES_VERSION)
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    loan_id = ok(chain, borrower, "loan.apply", APPLY).tx_id.hex()
    sent = []

    def send_tx(ctx, kw, kind, payload):
        sent.append((kind, payload))
        return {"status": "committed", "id": "ab" * 32}

    monkeypatch.setattr(loans_cli, "send_tx", send_tx)
    return chain, members, borrower, loan_id, sent


def accept_offer(chain, borrower, loan_id, result):
    ok(chain, borrower, "loan.accept", {"loan_id": loan_id, "offer_id": result.tx_id.hex()})
    return loan(chain, loan_id)


def test_an_offer_with_a_funding_window_makes_a_syndicated_loan(applied):
    chain, members, borrower, loan_id, sent = applied
    result = cli("loan", "offer", loan_id, "--rate-bps", "700", "--funding-window-ms", str(WEEK_MS))
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(f"offer id: {'ab' * 32}")
    assert sent[-1] == ("loan.offer", {"loan_id": loan_id, "rate_bps": 700, "funding_window_ms": WEEK_MS})
    offered = execute(chain, members[0], sent)
    assert offered.ok, offered.message
    accepted = accept_offer(chain, borrower, loan_id, offered)
    assert accepted["state"] == "funding"
    assert accepted["funding"]["target"] == APPLY["amount"]


def test_an_offer_without_a_window_is_funded_by_its_lender_on_the_schedule_it_names(applied):
    chain, members, borrower, loan_id, sent = applied
    result = cli("loan", "offer", loan_id, "--rate-bps", "650", "--schedule", "equal_principal")
    assert result.exit_code == 0, result.output
    assert sent[-1] == ("loan.offer", {"loan_id": loan_id, "rate_bps": 650, "schedule": "equal_principal"})
    offered = execute(chain, members[0], sent)
    assert offered.ok, offered.message
    accepted = accept_offer(chain, borrower, loan_id, offered)
    assert accepted["state"] == "accepted" and "funding" not in accepted
    assert accepted["schedule_kind"] == "equal_principal"


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("--funding-window-ms", "0", "'--funding-window-ms': 0 is not in the range 1<=x<="),
        ("--funding-window-ms", str(MAX_FUNDING_WINDOW_MS + 1), "is not in the range"),
        ("--schedule", "balloon", "'balloon' is not one of 'annuity', 'equal_principal'"),
    ],
)
def test_a_bad_window_or_schedule_is_refused_before_anything_is_sent(applied, option, value, error):
    *_, loan_id, sent = applied
    result = cli("loan", "offer", loan_id, "--rate-bps", "700", option, value)
    assert result.exit_code == 2
    assert error in result.output
    assert sent == []
