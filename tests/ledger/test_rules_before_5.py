"""A chain under rules 1 to 4 executes exactly as before rules version 5 existed.

Rules 5 (``restructuring``) generalised what servicing, amortization and the
views read from a loan (due dates, its schedule, its outstanding principal)
so that a restructured loan is read right; a loan never restructured must
be read as before, or a node replaying an older chain would compute other
state roots. The scenario below walks loans through every older kind
(annuity and equal-principal schedules, syndicated funding, repayments,
partial and full prepayments, overdue, penalty, default, the due-loan pass,
a policy's auto-offers, and under rules 4 transfers and a write-off) with
fixed keys and block times, and the hash of its last block, which commits
to every state root and results root before it, is the one the release
before rules 5 computed for the same blocks.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from lendchain.ledger import queries
from lendchain.ledger.amortization import loan_schedule
from lendchain.ledger.servicing import DAY_MS, payoff
from lendchain.ledger.state import loan_key, read_value
from tests.ledger.chain import Chain, make_genesis
from tests.ledger.test_domain_determinism import BORROWER, FAR, INVESTOR, ROLES

# The head hashes the release before rules 5 (main at a7b12a2) computed for ``scenario``.
BEFORE_RULES_5 = {
    1: "ffa0874afc8f911dd1a9907105b68420945106fd01e55e3771a6365d90e5cf01",
    4: "a8d0530431836c1ccea3315896e1f92b83a4fd1a879be905473f397844e8b9be",
}
LOANS = 10


def scenario(version: int) -> Chain:
    """Loans with seeded terms and payments over two years of block time, under rules ``version``."""
    genesis, members = make_genesis(ROLES)
    chain = Chain.start(replace(genesis, app={"rules_version": version}))
    lender, other, _, bureau = members
    rng = random.Random(5)

    def send(key, kind, payload):
        return chain.run_one(chain.tx(key, kind, payload))

    send(BORROWER, "party.register", {"role": "borrower"})
    send(INVESTOR, "party.register", {"role": "investor"})
    send(
        bureau,
        "kyc.attest",
        {"subject": BORROWER.did, "level": 2, "expires_ms": FAR, "evidence_hash": "11" * 32},
    )
    policy = {
        "currency": "EUR",
        "min_amount": 1,
        "max_amount": 10**6,
        "max_term_months": 36,
        "bands": "0:1700",
        "max_exposure": 400_000,
    }
    send(other, "policy.publish", policy)
    loans = []
    for number in range(LOANS):
        apply = {
            "amount": rng.randrange(10_000, 200_000),
            "currency": "EUR",
            "term_months": rng.randrange(3, 25),
            "purpose": "p",
        }
        loan_id = send(BORROWER, "loan.apply", apply).tx_id.hex()
        terms = {"loan_id": loan_id, "rate_bps": rng.randrange(0, 3000)}
        terms["schedule"] = ("annuity", "equal_principal")[number % 2]
        if number % 3 == 0:
            terms["funding_window_ms"] = 60_000
        offer_id = send(lender, "loan.offer", terms).tx_id.hex()
        send(BORROWER, "loan.accept", {"loan_id": loan_id, "offer_id": offer_id})
        if "funding_window_ms" in terms:
            share = apply["amount"] // 3
            send(INVESTOR, "loan.fund", {"loan_id": loan_id, "amount": share})
            send(lender, "loan.fund", {"loan_id": loan_id, "amount": apply["amount"] - share})
        send(lender, "loan.disburse", {"loan_id": loan_id})
        loans.append(loan_id)
    for month in range(24):
        chain.head_ms += rng.randrange(15, 40) * DAY_MS
        chain.run()
        if version >= 4 and month == 0:
            send(lender, "loan.transfer", {"loan_id": loans[1], "to": other.did})
            send(other, "loan.transfer_accept", {"loan_id": loans[1]})
            send(lender, "loan.transfer", {"loan_id": loans[2], "to": other.did})
        for loan_id in loans:
            _pay(chain, members, rng, send, loan_id)
    if version >= 4:
        for loan_id in loans:
            loan = queries.lookup(chain.state, "loan", loan_id)
            if loan["state"] == "defaulted":
                servicer = lender if loan["lender"] == lender.did else other
                send(servicer, "loan.write_off", {"loan_id": loan_id, "reason": "recovery ended"})
    return chain


def _pay(chain: Chain, members, rng: random.Random, send, loan_id: str) -> None:
    """One seeded servicing step on a loan: a repayment, a prepayment, a check, or nothing."""
    loan = queries.lookup(chain.state, "loan", loan_id)
    if loan["state"] not in ("disbursed", "repaying", "overdue", "defaulted"):
        return
    servicer = next(key for key in members if key.did == loan["lender"])
    stored = read_value(chain.state, loan_key(bytes.fromhex(loan_id)))
    payoff_now = sum(payoff(stored, loan_schedule(stored), chain.head_ms + 1000))
    choice = rng.random()
    if choice < 0.5:
        instalment = loan["schedule"][min(loan["instalments_paid"], len(loan["schedule"]) - 1)]["payment"]
        send(
            servicer,
            "loan.repay",
            {"loan_id": loan_id, "amount": max(1, instalment * rng.randrange(5, 25) // 10)},
        )
    elif choice < 0.6:
        send(
            servicer,
            "loan.prepay",
            {"loan_id": loan_id, "amount": max(1, payoff_now * rng.randrange(3, 9) // 10)},
        )
    elif choice < 0.65:
        send(servicer, "loan.prepay", {"loan_id": loan_id, "amount": payoff_now})
    elif choice < 0.75:
        send(members[2], "loan.service", {"loan_id": loan_id})


@pytest.mark.parametrize("version", sorted(BEFORE_RULES_5))
def test_a_chain_under_older_rules_computes_the_roots_it_computed_before_rules_5(version):
    chain = scenario(version)
    assert chain.head_hash.hex() == BEFORE_RULES_5[version]
