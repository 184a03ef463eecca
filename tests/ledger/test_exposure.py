"""A borrower's exposure across lenders: outstanding and committed principal, by currency and carrier."""

from __future__ import annotations

import json

from click.testing import CliRunner

from lendchain.cli import loans as loans_cli
from lendchain.cli import main
from lendchain.ledger import queries
from lendchain.ledger.funding import pro_rata
from lendchain.ledger.servicing import DAY_MS, MONTH_MS
from tests.ledger.chain import KYC_MEMBER, Chain, make_genesis, member_key, seeded_key
from tests.ledger.test_domain_cli import FakeClient
from tests.ledger.test_domain_due import GRACE_MS, at, unrelated

EUR = {"amount": 120_000, "currency": "EUR", "term_months": 12, "purpose": "a kitchen"}
USD = {"amount": 50_000, "currency": "USD", "term_months": 6, "purpose": "a van"}
SYNDICATED = {"amount": 100_000, "currency": "EUR", "term_months": 6, "purpose": "a shop fit-out"}


def apply(chain: Chain, borrower, loan: dict) -> str:
    return chain.run_one(chain.tx(borrower, "loan.apply", loan)).tx_id.hex()


def offer_and_accept(chain: Chain, borrower, lender, loan_id: str, **terms) -> None:
    offered = chain.run_one(chain.tx(lender, "loan.offer", {"loan_id": loan_id, "rate_bps": 900, **terms}))
    accept = {"loan_id": loan_id, "offer_id": offered.tx_id.hex()}
    assert chain.run_one(chain.tx(borrower, "loan.accept", accept)).ok


def ok(chain: Chain, key, kind: str, payload: dict) -> None:
    result = chain.run_one(chain.tx(key, kind, payload))
    assert result.ok, result.message


def exposure(chain: Chain, did: str) -> dict | None:
    return queries.lookup(chain.state, "exposure", did)


def loan(chain: Chain, loan_id: str) -> dict:
    return queries.lookup(chain.state, "loan", loan_id)


def test_exposure_adds_up_a_borrowers_live_loans_across_lenders_and_currencies():
    genesis, members = make_genesis()
    chain = Chain.start(genesis)
    bank1, bank2 = members[0], members[1]
    borrower, alice, bob, other = seeded_key(1), seeded_key(2), seeded_key(3), seeded_key(4)
    chain.onboard(borrower, member_key(KYC_MEMBER))
    chain.onboard(other, member_key(KYC_MEMBER))
    for investor in (alice, bob):
        ok(chain, investor, "party.register", {"role": "investor"})
    assert exposure(chain, borrower.did) == {
        "did": borrower.did,
        "name": None,  # a party: only a member (a guarantor) has a name on chain
        "currencies": {},
        "written_off": {},
        "forborne": {},
        "stages": {},
        "ageing": {},
        "commitment_stages": {},
        "collateral": {},
        "carriers": [],
        "loans": [],
        "guaranteed": {},
        "guarantees": {"currencies": {}, "by_lender": [], "guarantees": []},
    }
    assert exposure(chain, seeded_key(9).did) is None  # nobody: 404 at the API

    # bank1 lends EUR and is repaid a little; a syndicate led by bank2 lends EUR, half committed.
    bilateral = apply(chain, borrower, EUR)
    offer_and_accept(chain, borrower, bank1, bilateral)
    ok(chain, bank1, "loan.disburse", {"loan_id": bilateral})
    ok(chain, bank1, "loan.repay", {"loan_id": bilateral, "amount": 10_000})
    syndicated = apply(chain, borrower, SYNDICATED)
    offer_and_accept(chain, borrower, bank2, syndicated, funding_window_ms=10**9)
    ok(chain, alice, "loan.fund", {"loan_id": syndicated, "amount": 30_001})
    funding = exposure(chain, borrower.did)
    assert funding["currencies"]["EUR"]["committed"] == 30_001  # what is committed so far, by alice
    assert [c for c in funding["carriers"] if c["did"] == alice.did][0]["committed"] == 30_001
    ok(chain, bob, "loan.fund", {"loan_id": syndicated, "amount": 69_999})
    # bank1 also committed USD it has not paid out; an application and a cancelled loan carry nothing.
    committed = apply(chain, borrower, USD)
    offer_and_accept(chain, borrower, bank1, committed)
    apply(chain, borrower, USD)
    cancelled = apply(chain, borrower, EUR)
    ok(chain, borrower, "loan.cancel", {"loan_id": cancelled})
    apply(chain, other, EUR)  # another borrower's loan is not this one's

    view = exposure(chain, borrower.did)
    bilateral_left = loan(chain, bilateral)["outstanding_principal"]
    assert 110_000 < bilateral_left < 120_000
    assert view["currencies"] == {
        "EUR": {
            "outstanding": bilateral_left,
            "committed": 100_000,
            "loans": 2,
            "overdue_loans": 0,
            "defaulted_loans": 0,
            "penalty_due": 0,
        },
        "USD": {
            "outstanding": 0,
            "committed": 50_000,
            "loans": 1,
            "overdue_loans": 0,
            "defaulted_loans": 0,
            "penalty_due": 0,
        },
    }
    carriers = {(c["name"] or c["did"], c["currency"]): c for c in view["carriers"]}
    assert set(carriers) == {("bank1", "EUR"), ("bank1", "USD"), (alice.did, "EUR"), (bob.did, "EUR")}
    assert carriers["bank1", "EUR"]["outstanding"] == bilateral_left
    assert carriers["bank1", "USD"]["committed"] == 50_000
    assert (carriers[alice.did, "EUR"]["committed"], carriers[bob.did, "EUR"]["committed"]) == (
        30_001,
        69_999,
    )
    assert [row["loan_id"] for row in view["loans"]] == [bilateral, syndicated, committed]

    # Disbursed and repaid: the syndicate's outstanding principal splits pro rata, to the unit.
    ok(chain, bank2, "loan.disburse", {"loan_id": syndicated})
    ok(chain, bank2, "loan.repay", {"loan_id": syndicated, "amount": 20_000})
    syndicated_left = loan(chain, syndicated)["outstanding_principal"]
    shares = pro_rata(syndicated_left, [30_001, 69_999])
    view = exposure(chain, borrower.did)
    carriers = {(c["name"] or c["did"], c["currency"]): c for c in view["carriers"]}
    assert (carriers[alice.did, "EUR"]["outstanding"], carriers[bob.did, "EUR"]["outstanding"]) == tuple(
        shares
    )
    assert view["currencies"]["EUR"]["outstanding"] == bilateral_left + syndicated_left
    assert "bank2" not in {c["name"] for c in view["carriers"]}  # it arranged and services, funded nothing

    # Nobody pays bank1's loan: once it is overdue the exposure says so, with the penalty accrued.
    first_due = loan(chain, bilateral)["disbursed_ms"] + MONTH_MS
    at(chain, first_due + GRACE_MS + 20 * DAY_MS)
    unrelated(chain, 1)
    assert loan(chain, bilateral)["state"] == "overdue"
    eur = exposure(chain, borrower.did)["currencies"]["EUR"]
    assert eur["overdue_loans"] == 1 and eur["defaulted_loans"] == 0 and eur["penalty_due"] > 0

    # The lenders' side: each one's book, what others fund of it, and its largest borrowers.
    book1 = queries.lookup(chain.state, "portfolio", bank1.did)
    assert book1["name"] == "bank1" and set(book1["currencies"]) == {"EUR", "USD"}
    assert book1["currencies"]["EUR"] == {
        **eur,
        "outstanding": bilateral_left,
        "loans": 1,
        "funded_by_others": 0,
    }
    assert book1["currencies"]["USD"]["committed"] == 50_000
    assert book1["largest_borrowers"]["EUR"] == [{"did": borrower.did, "principal": bilateral_left}]
    book2 = queries.lookup(chain.state, "portfolio", bank2.did)["currencies"]["EUR"]
    assert book2["outstanding"] == book2["funded_by_others"] == syndicated_left  # alice and bob carry it all
    idle = queries.lookup(chain.state, "portfolio", members[2].did)
    assert idle == {
        "did": members[2].did,
        "name": "bank3",
        "currencies": {},
        "written_off": {},
        "forborne": {},
        "stages": {},
        "ageing": {},
        "commitment_stages": {},
        "collateral": {},
        "largest_borrowers": {},
        "pending_transfers": [],
    }
    assert queries.lookup(chain.state, "portfolio", alice.did) is None  # an investor services no loan


def test_cli_loan_portfolio_prints_a_lenders_book(monkeypatch):
    totals = {"outstanding": 300, "committed": 50, "loans": 2, "overdue_loans": 0, "defaulted_loans": 1}
    view = {
        "did": "did:key:z6Mkbank1",
        "name": "bank1",
        "currencies": {"EUR": {**totals, "penalty_due": 4, "funded_by_others": 100}},
        "largest_borrowers": {"EUR": [{"did": "did:key:z6Mkalice", "principal": 250}]},
    }
    monkeypatch.setattr(
        loans_cli, "client_from", lambda kw: FakeClient({"/portfolio/did:key:z6Mkbank1": view})
    )
    shown = CliRunner().invoke(main, ["loan", "portfolio", "did:key:z6Mkbank1"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines() == [
        "portfolio of bank1",
        "  EUR  outstanding 300 (funded by others 100)  committed 50  loans 2  overdue 0  defaulted 1"
        "  penalty due 4",
        "    did:key:z6Mkalice  250",
    ]


def test_cli_party_exposure_prints_totals_and_carriers(monkeypatch):
    totals = {"outstanding": 110_500, "committed": 0, "loans": 1}
    view = {
        "did": "did:key:z6Mkborrower",
        "currencies": {"EUR": {**totals, "overdue_loans": 1, "defaulted_loans": 0, "penalty_due": 12}},
        "carriers": [{"did": "did:key:z6Mkbank1", "name": "bank1", "currency": "EUR", **totals}],
        "loans": [],
    }
    answers = {"/exposure/did:key:z6Mkborrower": view}
    monkeypatch.setattr(loans_cli, "client_from", lambda kw: FakeClient(answers))
    human = CliRunner().invoke(main, ["party", "exposure", "did:key:z6Mkborrower"])
    assert human.exit_code == 0, human.output
    assert (
        "EUR  outstanding 110500  committed 0  loans 1  overdue 1  defaulted 0  penalty due 12"
        in human.output
    )
    assert "bank1                    EUR  outstanding 110500  committed 0  loans 1" in human.output
    as_json = CliRunner().invoke(main, ["--json", "party", "exposure", "did:key:z6Mkborrower"])
    assert json.loads(as_json.output) == view
