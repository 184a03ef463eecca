"""A funder's positions in syndicated loans, from the funder index ``loan.fund`` keeps from rules 2."""

from __future__ import annotations

from click.testing import CliRunner

from lendchain.cli import domain as domain_cli
from lendchain.cli import main
from lendchain.ledger import pagedlist, queries
from lendchain.ledger.funding import pro_rata
from lendchain.ledger.staging import AGEING_TOTALS, STAGE_TOTALS
from lendchain.ledger.state import funder_loans_key, read_value
from tests.ledger.chain import KYC_MEMBER, Chain, make_genesis, member_key, seeded_key
from tests.ledger.test_domain_cli import FakeClient
from tests.ledger.test_exposure import SYNDICATED, apply, loan, offer_and_accept, ok
from tests.ledger.test_membership import upgrade_to_rules_2


def positions(chain: Chain, did: str) -> dict | None:
    return queries.lookup(chain.state, "positions", did)


def syndicate(chain, borrower, lender, shares) -> str:
    loan_id = apply(chain, borrower, SYNDICATED)
    offer_and_accept(chain, borrower, lender, loan_id, funding_window_ms=10**9)
    for funder, amount in shares:
        ok(chain, funder, "loan.fund", {"loan_id": loan_id, "amount": amount})
    return loan_id


def world():
    genesis, members = make_genesis()
    chain = Chain.start(genesis)
    borrower, alice, bob = seeded_key(1), seeded_key(2), seeded_key(3)
    chain.onboard(borrower, member_key(KYC_MEMBER))
    for investor in (alice, bob):
        ok(chain, investor, "party.register", {"role": "investor"})
    return chain, members, borrower, alice, bob


def test_under_rules_1_loan_fund_keeps_no_funder_index():
    chain, members, borrower, alice, bob = world()
    syndicate(chain, borrower, members[1], [(alice, 40_000), (bob, 60_000)])
    assert read_value(chain.state, funder_loans_key(alice.did)) is None  # rules 1 state is unchanged
    assert positions(chain, alice.did) is None  # 404 at the API


def test_a_funders_positions_list_its_commitments_receipts_and_share_of_the_principal():
    chain, members, borrower, alice, bob = world()
    bank1, bank2 = members[0], members[1]
    upgrade_to_rules_2(chain, members)
    first = syndicate(chain, borrower, bank2, [(alice, 30_001), (bob, 50_000), (alice, 19_999)])
    index = list(pagedlist.items(lambda key: read_value(chain.state, key), funder_loans_key(alice.did)))
    assert index == [bytes.fromhex(first)]  # once per loan, not per commitment
    ok(chain, bank2, "loan.disburse", {"loan_id": first})
    ok(chain, bank2, "loan.repay", {"loan_id": first, "amount": 20_000})
    # A second syndicate that never fills: alice's commitment is released.
    second = apply(chain, borrower, SYNDICATED)
    offer_and_accept(chain, borrower, bank1, second, funding_window_ms=1)
    chain.run()
    assert not chain.run_one(chain.tx(alice, "loan.fund", {"loan_id": second, "amount": 1})).ok  # too late
    ok(chain, bank1, "loan.fund_expire", {"loan_id": second})

    view = positions(chain, alice.did)
    left = loan(chain, first)["outstanding_principal"]
    share = pro_rata(left, [50_000, 50_000])[0]
    [mine] = [c for c in loan(chain, first)["funding"]["commitments"] if c["funder"] == alice.did]
    assert mine["received"] > 0
    assert view == {
        "did": alice.did,
        "member_names": {bank2.did: "bank2"},  # its loan's lender, named at read time
        "currencies": {
            "EUR": {
                "committed": 50_000,
                "received": mine["received"],
                "outstanding": share,
                "loans": 1,
                "overdue_loans": 0,
                "defaulted_loans": 0,
            }
        },
        "written_off": {},
        "forborne": {},
        "stages": {
            "EUR": {**dict.fromkeys(STAGE_TOTALS, 0), "stage_1_loans": 1, "stage_1_outstanding": share}
        },
        "ageing": {"EUR": {**dict.fromkeys(AGEING_TOTALS, 0), "dpd_0_loans": 1, "dpd_0_outstanding": share}},
        "collateral": {"EUR": {"secured": 0, "unsecured": share, "collateral_value": 0, "secured_loans": 0}},
        "commitment_stages": {},
        "guaranteed": {},  # rules 7: no guarantee covers its loans
        "consents_requested": [],
        "share_offers_to": [],
        "positions": [
            {
                "loan_id": first,
                "state": "repaying",
                "currency": "EUR",
                "lender": bank2.did,
                "borrower": borrower.did,
                "commitment": 50_000,
                "status": "committed",
                "received": mine["received"],
                "share": share,
                "share_of": "outstanding",
                "recovered": 0,
                "secured": 0,
                "guaranteed": 0,  # rules 7: no guarantee covers the loan
                "forbearance": None,
                "stage": 1,
                "days_past_due": 0,
                "consent_requested": None,
                "bought": 0,
                "sold": 0,
                "share_offer": None,
                "offers_declined": [],
            }
        ],
    }
    assert positions(chain, bob.did)["positions"][0]["share"] == pro_rata(left, [50_000, 50_000])[1]


def test_cli_fund_positions_prints_totals_and_each_loan(monkeypatch):
    view = {
        "did": "did:key:zAlice",
        "currencies": {
            "EUR": {
                "committed": 50_000,
                "received": 9_000,
                "outstanding": 41_000,
                "loans": 1,
                "overdue_loans": 0,
                "defaulted_loans": 0,
            }
        },  # fmt: skip
        "positions": [
            {
                "loan_id": "ab" * 32,
                "state": "repaying",
                "currency": "EUR",
                "lender": "did:key:zBank2",
                "borrower": "did:key:zBorrower",
                "commitment": 50_000,
                "status": "committed",
                "received": 9_000,
                "share": 41_000,
                "share_of": "outstanding",
            },  # fmt: skip
        ],
    }
    monkeypatch.setattr(domain_cli, "client_from", lambda kw: FakeClient({"/positions/did:key:zAlice": view}))
    result = CliRunner().invoke(main, ["fund", "positions", "did:key:zAlice"])
    assert result.exit_code == 0, result.output
    assert "EUR: committed 50000 in 1 loans, received 9000, outstanding share 41000" in result.output
    assert (
        f"{'ab' * 8}…  repaying  committed 50000, received 9000, share 41000 of outstanding" in result.output
    )
