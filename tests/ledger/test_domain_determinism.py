"""The same domain transactions on two fresh states give identical roots (issue 6, tests)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lendchain.ledger import pagedlist, queries
from lendchain.ledger.amortization import loan_schedule
from lendchain.ledger.context import decode_state_value
from lendchain.ledger.servicing import DAY_MS, payoff
from lendchain.ledger.state import borrower_loans_key, loan_key, read_value
from tests.ledger.chain import GENESIS_MS, Chain, make_genesis, seeded_key

ROLES = [("lender",), ("lender", "bureau"), ("regulator",), ("kyc", "bureau")]
FAR = GENESIS_MS + 10**13
BORROWER, INVESTOR = seeded_key(1), seeded_key(2)

OPS = st.sampled_from(
    [
        "kyc",
        "consent",
        "report",
        "policy",
        "apply",
        "offer",
        "syndicated_offer",
        "accept",
        "fund",
        "disburse",
        "repay",
        "service",
        "expire",
        "prepay",
        "month",
    ]
)


def step(chain: Chain, members, op: str, amount: int) -> str:
    """Run one op against the newest loan; return its result code."""
    ids = loan_ids(chain)
    loan_id = ids[-1] if ids else None
    lender, bureau = members[0], members[3]
    if op == "month":
        chain.head_ms += 31 * DAY_MS
        op = "service"
    payloads = {
        "kyc": (
            bureau,
            "kyc.attest",
            {"subject": BORROWER.did, "level": 2, "expires_ms": FAR, "evidence_hash": "11" * 32},
        ),
        "consent": (BORROWER, "consent.grant", {"member": bureau.did, "scopes": "credit", "until_ms": FAR}),
        "report": (
            bureau,
            "credit.report",
            {
                "subject": BORROWER.did,
                "income_band": 1 + amount % 10,
                "dti_bps": amount % 7000,
                "history_months": amount % 100,
                "obligations": amount % 4,
                "evidence_hash": "22" * 32,
            },
        ),
        "policy": (
            members[1],
            "policy.publish",
            {
                "currency": "EUR",
                "min_amount": 1,
                "max_amount": 10**6,
                "max_term_months": 36,
                "bands": f"{300 + amount % 2 * 300}:{amount % 2000}",
                "max_exposure": 10**6,
            },
        ),
        "apply": (
            BORROWER,
            "loan.apply",
            {"amount": 1000 + amount, "currency": "EUR", "term_months": 1 + amount % 12, "purpose": "p"},
        ),
    }
    if op in payloads:
        key, kind, payload = payloads[op]
    elif loan_id is None:
        return "no loan"
    else:
        loan = queries.lookup(chain.state, "loan", loan_id)
        offers = loan["offers"]
        by_op = {
            "offer": (lender, "loan.offer", {"loan_id": loan_id, "rate_bps": amount % 3000}),
            "syndicated_offer": (
                lender,
                "loan.offer",
                {"loan_id": loan_id, "rate_bps": amount % 3000, "funding_window_ms": 5000},
            ),
            "accept": (
                BORROWER,
                "loan.accept",
                {
                    "loan_id": loan_id,
                    "offer_id": offers[amount % len(offers)]["offer_id"] if offers else "00" * 32,
                },
            ),
            "fund": (INVESTOR, "loan.fund", {"loan_id": loan_id, "amount": fund_amount(loan, amount)}),
            "disburse": (lender, "loan.disburse", {"loan_id": loan_id}),
            "repay": (lender, "loan.repay", {"loan_id": loan_id, "amount": 1 + amount}),
            "service": (members[2], "loan.service", {"loan_id": loan_id}),
            "expire": (members[2], "loan.fund_expire", {"loan_id": loan_id}),
            "prepay": (lender, "loan.prepay", {"loan_id": loan_id, "amount": prepay_amount(chain, loan)}),
        }
        key, kind, payload = by_op[op]
    return chain.run_one(chain.tx(key, kind, payload)).code


def fund_amount(loan: dict, amount: int) -> int:
    """What is still missing (even ``amount``) or a part of it, so that funding completes often."""
    missing = loan["amount"] - loan.get("funding", {}).get("funded", 0)
    return max(missing, 1) if amount % 2 == 0 else 1 + amount % max(missing, 1)


def prepay_amount(chain: Chain, loan: dict) -> int:
    """The exact payoff at the next block's time, when the loan is being repaid (else 1)."""
    if loan["state"] not in ("disbursed", "repaying", "overdue"):
        return 1
    stored = decode_state_value(chain.state.get(loan_key(bytes.fromhex(loan["loan_id"]))))
    return max(1, sum(payoff(stored, loan_schedule(stored), chain.head_ms + 1000)))


def loan_ids(chain: Chain) -> list[str]:
    ids = pagedlist.items(lambda key: read_value(chain.state, key), borrower_loans_key(BORROWER.did))
    return [loan_id.hex() for loan_id in ids]


def fresh():
    genesis, members = make_genesis(ROLES)
    chain = Chain.start(genesis)
    chain.run_one(chain.tx(BORROWER, "party.register", {"role": "borrower"}))
    chain.run_one(chain.tx(INVESTOR, "party.register", {"role": "investor"}))
    return chain, members


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(OPS, st.integers(0, 50_000)), min_size=1, max_size=25))
def test_same_domain_txs_on_two_fresh_states_give_identical_roots(ops):
    (one, members_one), (two, members_two) = fresh(), fresh()
    for op, amount in ops:
        assert step(one, members_one, op, amount) == step(two, members_two, op, amount)
        assert one.blocks[-1][1].state_root == two.blocks[-1][1].state_root
    assert one.state.values == two.state.values
    for loan_id in loan_ids(one):
        loan = queries.lookup(one.state, "loan", loan_id)
        repaid = sum(entry["amount"] for entry in loan["history"] if entry["event"] == "loan.repay")
        assert 0 <= loan["principal_paid"] <= loan["amount"]
        assert repaid == loan["principal_paid"] + loan["interest_paid"] + loan.get("penalty_paid", 0)
        if "funding" in loan:
            assert sum(c["received"] for c in loan["funding"]["commitments"]) == repaid
