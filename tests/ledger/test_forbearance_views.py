"""Forborne exposures in the views a supervisor reads: a borrower's exposure, each lender's book, a
funder's positions and the consortium's books (``exposure``, ``forbearance``, ``cli.reports``).

One borrower, two lenders, two currencies: bank1 restructured a loan while
it was overdue (non-performing) and one while it was current (performing),
and closed another restructured one; bank2 restructured a syndicated loan
while it was overdue and a USD loan while it was current; a loan of bank1's
was never restructured. Every figure is checked against the loans' own
views, and the totals of each view against the others'.
"""

from __future__ import annotations

import pytest

from lendchain.cli.reports import FORBORNE_COLUMNS, consortium_books
from lendchain.ledger import queries
from lendchain.ledger.forbearance import FORBORNE_TOTALS
from lendchain.ledger.funding import pro_rata
from tests.ledger.test_forbearance_bytes import owed_now, payoff_now
from tests.ledger.test_loan_transfer import APPLY, ok, open_loan, repay, syndicated_loan, with_borrower
from tests.ledger.test_restructure import accept_terms, overdue, propose


def view(chain, kind, ref):
    return queries.lookup(chain.state, kind, ref, as_of_ms=chain.head_ms)


def usd_loan(chain, borrower, lender):
    loan_id = ok(chain, borrower, "loan.apply", {**APPLY, "currency": "USD"}).tx_id.hex()
    offer_id = ok(chain, lender, "loan.offer", {"loan_id": loan_id, "rate_bps": 700}).tx_id.hex()
    ok(chain, borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offer_id})
    ok(chain, lender, "loan.disburse", {"loan_id": loan_id})
    return loan_id


@pytest.fixture
def book():
    """The loans described above, restructured; (chain, members, borrower, {name: loan id}, funders)."""
    chain, members, borrower = with_borrower(version=5)
    bank1, bank2 = members[0], members[1]
    loans = {
        "late": open_loan(chain, borrower, bank1),
        "current": open_loan(chain, borrower, bank1),
        "plain": open_loan(chain, borrower, bank1),
        "closed": open_loan(chain, borrower, bank1),
        "usd": usd_loan(chain, borrower, bank2),
    }
    loans["shared"], commitments = syndicated_loan(chain, borrower, bank2)
    ok(chain, bank2, "loan.disburse", {"loan_id": loans["shared"]})
    servicer = {name: bank2 if name in ("usd", "shared") else bank1 for name in loans}
    for name in ("current", "plain", "closed", "usd"):  # their first instalment, on time
        assert repay(chain, servicer[name], loans[name], owed_now(chain, loans[name])).ok
    overdue(chain, loans["late"])  # and the syndicated loan with it
    terms = {"rate_bps": 600, "term_months": 36}
    for name in ("late", "current", "closed", "usd", "shared"):
        assert propose(chain, servicer[name], loans[name], **terms).ok
        if name == "shared":  # its funders' majority consents (``funder_consent``)
            for funder, _ in commitments:
                if funder is not bank2:
                    ok(chain, funder, "loan.restructure_consent", {"loan_id": loans[name]})
        assert accept_terms(chain, borrower, loans[name]).ok
    ok(
        chain,
        bank1,
        "loan.prepay",
        {"loan_id": loans["closed"], "amount": payoff_now(chain, loans["closed"])},
    )
    return chain, members, borrower, loans, [funder for funder, _ in commitments]


def test_each_loan_is_counted_by_its_status_and_the_views_agree(book):
    chain, members, borrower, loans, _ = book
    bank1, bank2 = members[0], members[1]
    shown = {name: view(chain, "loan", loan_id) for name, loan_id in loans.items()}
    statuses = {name: v["forbearance"] and v["forbearance"]["status"] for name, v in shown.items()}
    assert statuses == {
        "late": "non_performing",
        "current": "performing",
        "plain": None,
        "closed": "ended",
        "usd": "performing",
        "shared": "non_performing",
    }
    principal = {name: v["outstanding_principal"] for name, v in shown.items()}

    def totals(performing, non_performing):
        return {
            "loans": len(performing) + len(non_performing),
            "outstanding": sum(principal[n] for n in (*performing, *non_performing)),
            "performing_loans": len(performing),
            "performing_outstanding": sum(principal[n] for n in performing),
            "non_performing_loans": len(non_performing),
            "non_performing_outstanding": sum(principal[n] for n in non_performing),
        }

    exposure = view(chain, "exposure", borrower.did)
    assert exposure["forborne"] == {
        "EUR": totals(["current"], ["late", "shared"]),
        "USD": totals(["usd"], []),
    }
    rows = {row["loan_id"]: row["forbearance"] for row in exposure["loans"]}
    assert rows == {loans[name]: statuses[name] for name in loans if name != "closed"}  # closed: no row
    eur = exposure["currencies"]["EUR"]
    assert eur["loans"] == 4 and eur["outstanding"] == sum(
        principal[n] for n in ("late", "current", "plain", "shared")
    )

    first, second = view(chain, "portfolio", bank1.did), view(chain, "portfolio", bank2.did)
    assert first["forborne"] == {"EUR": totals(["current"], ["late"])}
    assert second["forborne"] == {"EUR": totals([], ["shared"]), "USD": totals(["usd"], [])}
    for currency, whole in exposure["forborne"].items():  # the borrower's loans are these two books
        for name in FORBORNE_TOTALS:
            parts = [b["forborne"].get(currency, {}).get(name, 0) for b in (first, second)]
            assert sum(parts) == whole[name]


def test_a_funders_positions_carry_its_pro_rata_share_of_a_forborne_loan(book):
    chain, members, _, loans, funders = book
    outstanding = view(chain, "loan", loans["shared"])["outstanding_principal"]
    commitments = view(chain, "loan", loans["shared"])["funding"]["commitments"]
    shares = pro_rata(outstanding, [c["amount"] for c in commitments])
    assert sum(shares) == outstanding
    for funder, share in zip(funders, shares, strict=True):
        positions = view(chain, "positions", funder.did)
        [position] = [p for p in positions["positions"] if p["loan_id"] == loans["shared"]]
        assert (position["share"], position["share_of"], position["forbearance"]) == (
            share,
            "outstanding",
            "non_performing",
        )
        assert positions["forborne"] == {
            "EUR": {
                "loans": 1,
                "outstanding": share,
                "performing_loans": 0,
                "performing_outstanding": 0,
                "non_performing_loans": 1,
                "non_performing_outstanding": share,
            }
        }


def test_the_consortium_books_total_every_lenders_forborne_loans(book):
    chain, members, borrower, _, _ = book
    lenders = [m for m in view(chain, "members", "*")["members"] if "lender" in m["roles"]]
    books = consortium_books([(m, view(chain, "portfolio", m["did"])) for m in lenders], None)
    exposure = view(chain, "exposure", borrower.did)["forborne"]
    for currency, total in books["totals"].items():
        assert {column: total[column] for column in FORBORNE_COLUMNS} == {
            column: exposure[currency][name] for column, name in FORBORNE_COLUMNS.items()
        }
    [usd] = [row for row in books["books"] if row["currency"] == "USD"]
    assert (usd["member"], usd["forborne_loans"], usd["forborne_performing_loans"]) == ("bank2", 1, 1)
    assert usd["forborne"] == usd["forborne_performing"] == usd["outstanding"]  # its one loan


def test_views_of_a_chain_without_restructurings_have_no_forborne_exposure():
    chain, members, borrower = with_borrower(version=4)  # before rules 5: nothing can be restructured
    loan_id = open_loan(chain, borrower, members[0])
    assert view(chain, "loan", loan_id)["forbearance"] is None
    assert view(chain, "exposure", borrower.did)["forborne"] == {}
    assert view(chain, "exposure", borrower.did)["loans"][0]["forbearance"] is None
    assert view(chain, "portfolio", members[0].did)["forborne"] == {}
