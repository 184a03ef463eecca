"""Every loan transition, every refused one, nonces and replay (issue 2, item 5)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lendchain.ledger import lifecycle, queries
from lendchain.ledger.block import Block, InvalidBlock, check_block, tx_root
from lendchain.ledger.state import next_nonce
from tests.ledger.chain import CHAIN_ID, Chain, make_genesis, seeded_key

APPLY = {"amount": 100_000, "currency": "EUR", "term_months": 12, "purpose": "a used car"}


@pytest.fixture
def world():
    genesis, members = make_genesis()
    chain = Chain.start(genesis)
    borrower, investor, stranger = seeded_key(1), seeded_key(2), seeded_key(3)
    chain.onboard(borrower, members[3])
    assert chain.run_one(chain.tx(investor, "party.register", {"role": "investor"})).ok
    lender, lender2, regulator = members[0], members[1], members[2]
    return chain, borrower, investor, stranger, lender, lender2, regulator


def loan_state(chain, loan_id):
    return queries.lookup(chain.state, "loan", loan_id)["state"]


def advance_to(world, state: str) -> tuple[str, str | None]:
    """Drive a fresh loan to ``state``; return (loan id, accepted offer id)."""
    chain, borrower, _, _, lender, _, _ = world
    loan_id = chain.run_one(chain.tx(borrower, "loan.apply", APPLY)).tx_id.hex()
    offer_id = None
    steps = ["offered", "accepted", "disbursed", "repaying"]
    for step in steps[: steps.index(state) + 1] if state in steps else []:
        if step == "offered":
            offer_id = chain.run_one(
                chain.tx(lender, "loan.offer", {"loan_id": loan_id, "rate_bps": 1200})
            ).tx_id.hex()
        elif step == "accepted":
            assert chain.run_one(
                chain.tx(borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offer_id})
            ).ok
        elif step == "disbursed":
            assert chain.run_one(chain.tx(lender, "loan.disburse", {"loan_id": loan_id})).ok
        elif step == "repaying":
            assert chain.run_one(chain.tx(lender, "loan.repay", {"loan_id": loan_id, "amount": 1000})).ok
    assert loan_state(chain, loan_id) == state
    return loan_id, offer_id


def test_full_life_of_a_loan(world):
    chain, borrower, _, _, lender, _, _ = world
    loan_id, offer_id = advance_to(world, "disbursed")
    schedule = queries.lookup(chain.state, "loan", loan_id)["schedule"]
    for row in schedule:
        result = chain.run_one(chain.tx(lender, "loan.repay", {"loan_id": loan_id, "amount": row["payment"]}))
        assert result.ok, result
        assert result.events[0]["interest"] == row["interest"]
        assert result.events[0]["principal"] == row["principal"]
    loan = queries.lookup(chain.state, "loan", loan_id)
    assert loan["state"] == "closed"
    assert loan["principal_paid"] == 100_000 and loan["outstanding_principal"] == 0
    assert loan["interest_paid"] == sum(row["interest"] for row in schedule)
    assert loan["offers"][0]["status"] == "accepted" and loan["offer_id"] == offer_id
    assert [h["event"] for h in loan["history"]][:4] == [
        "loan.apply",
        "loan.offer",
        "loan.accept",
        "loan.disburse",
    ]
    assert len(loan["history"]) == 4 + 12
    # A closed loan takes no more payments.
    refused = chain.run_one(chain.tx(lender, "loan.repay", {"loan_id": loan_id, "amount": 1}))
    assert refused.code == "invalid_state" and "'closed'" in refused.message


def test_one_payment_can_close_a_loan(world):
    chain, _, _, _, lender, _, _ = world
    loan_id, _ = advance_to(world, "disbursed")
    owed = queries.lookup(chain.state, "loan", loan_id)["amount_owed"]
    result = chain.run_one(chain.tx(lender, "loan.repay", {"loan_id": loan_id, "amount": owed}))
    assert result.ok and result.events[0]["state"] == "closed"


def test_transition_table_names_every_reachable_state():
    states = {s for (s, _) in lifecycle.TRANSITIONS} | {n for n, _ in lifecycle.TRANSITIONS.values()}
    assert states == {
        "new",
        "applied",
        "offered",
        "accepted",
        "funding",
        "funded",
        "unfunded",
        "disbursed",
        "repaying",
        "overdue",
        "defaulted",
        "written_off",
        "closed",
        "cancelled",
    }


# (state the loan is in, who sends, kind, payload extra) -> expected code
REFUSED = [
    ("applied", "borrower", "loan.offer", {"rate_bps": 900}, "forbidden"),
    ("applied", "regulator", "loan.offer", {"rate_bps": 900}, "forbidden"),
    ("applied", "borrower", "loan.accept", {"offer_id": "00" * 32}, "invalid_state"),
    ("applied", "lender", "loan.disburse", {}, "invalid_state"),
    ("applied", "lender", "loan.repay", {"amount": 10}, "invalid_state"),
    ("offered", "stranger", "loan.accept", {"offer_id": None}, "forbidden"),
    ("offered", "lender", "loan.accept", {"offer_id": None}, "forbidden"),
    ("offered", "borrower", "loan.accept", {"offer_id": "00" * 32}, "not_found"),
    ("offered", "lender", "loan.cancel", {}, "forbidden"),
    ("accepted", "lender2", "loan.disburse", {}, "forbidden"),
    ("accepted", "borrower", "loan.disburse", {}, "forbidden"),
    ("accepted", "lender", "loan.offer", {"rate_bps": 900}, "invalid_state"),
    ("accepted", "borrower", "loan.cancel", {}, "invalid_state"),
    ("disbursed", "lender", "loan.disburse", {}, "invalid_state"),
    ("disbursed", "lender2", "loan.repay", {"amount": 10}, "forbidden"),
    ("disbursed", "borrower", "loan.repay", {"amount": 10}, "forbidden"),
    ("disbursed", "lender", "loan.repay", {"amount": 10**9}, "bad_payload"),
    ("repaying", "lender", "loan.accept", {"offer_id": None}, "invalid_state"),
]


@pytest.mark.parametrize(("state", "who", "kind", "extra", "code"), REFUSED)
def test_refused_transitions(world, state, who, kind, extra, code):
    chain, borrower, _, stranger, lender, lender2, regulator = world
    signer = {
        "borrower": borrower,
        "stranger": stranger,
        "lender": lender,
        "lender2": lender2,
        "regulator": regulator,
    }[who]
    loan_id, offer_id = advance_to(world, state)
    payload = {"loan_id": loan_id, **extra}
    if payload.get("offer_id", "") is None:
        payload["offer_id"] = offer_id
    before = queries.lookup(chain.state, "loan", loan_id)
    nonce = next_nonce(chain.state, signer.did)
    result = chain.run_one(chain.tx(signer, kind, payload))
    assert result.code == code, result
    assert loan_id[:16] in result.message or code == "bad_payload"
    if code == "invalid_state":
        assert f"'{state}'" in result.message and kind in result.message
    # The refusal changed nothing but the signer's nonce.
    assert queries.lookup(chain.state, "loan", loan_id) == before
    assert next_nonce(chain.state, signer.did) == nonce + 1


def test_cancel_withdraws_offers(world):
    chain, borrower, _, _, _, _, _ = world
    loan_id, _ = advance_to(world, "offered")
    assert chain.run_one(chain.tx(borrower, "loan.cancel", {"loan_id": loan_id})).ok
    loan = queries.lookup(chain.state, "loan", loan_id)
    assert loan["state"] == "cancelled" and loan["offers"][0]["status"] == "withdrawn"


def test_competing_offers_and_acceptance_declines_the_others(world):
    chain, borrower, _, _, lender, lender2, _ = world
    loan_id, first = advance_to(world, "offered")
    second = chain.run_one(chain.tx(lender2, "loan.offer", {"loan_id": loan_id, "rate_bps": 800})).tx_id.hex()
    assert chain.run_one(chain.tx(borrower, "loan.accept", {"loan_id": loan_id, "offer_id": second})).ok
    loan = queries.lookup(chain.state, "loan", loan_id)
    assert loan["lender"] == lender2.did and loan["rate_bps"] == 800
    assert {o["offer_id"]: o["status"] for o in loan["offers"]} == {first: "declined", second: "accepted"}
    # Now only lender2 services the loan.
    assert chain.run_one(chain.tx(lender, "loan.disburse", {"loan_id": loan_id})).code == "forbidden"
    assert chain.run_one(chain.tx(lender2, "loan.disburse", {"loan_id": loan_id})).ok


def test_parties_and_members(world):
    chain, borrower, investor, stranger, lender, _, _ = world
    assert chain.run_one(chain.tx(borrower, "party.register", {"role": "investor"})).code == "invalid_state"
    assert chain.run_one(chain.tx(lender, "party.register", {"role": "borrower"})).code == "forbidden"
    refused = chain.run_one(chain.tx(investor, "loan.apply", APPLY))
    assert refused.code == "forbidden" and "not a registered borrower" in refused.message
    assert chain.run_one(chain.tx(stranger, "loan.apply", APPLY)).code == "forbidden"
    assert queries.lookup(chain.state, "party", investor.did)["role"] == "investor"
    member = queries.lookup(chain.state, "party", lender.did)
    assert member["kind"] == "member" and member["roles"] == ["lender"]
    assert queries.lookup(chain.state, "party", stranger.did) is None


def test_apply_checks_chain_parameters(world):
    chain, borrower, *_ = world
    result = chain.run_one(chain.tx(borrower, "loan.apply", {**APPLY, "currency": "XYZ"}))
    assert result.code == "bad_payload" and "'currency'" in result.message
    result = chain.run_one(chain.tx(borrower, "loan.apply", {**APPLY, "term_months": 600}))
    assert result.code == "bad_payload" and "'term_months'" in result.message


def test_unknown_loan(world):
    chain, _, _, _, lender, _, _ = world
    result = chain.run_one(chain.tx(lender, "loan.offer", {"loan_id": "ab" * 32, "rate_bps": 100}))
    assert result.code == "not_found" and "'loan_id'" in result.message


def test_lookup_of_unknown_or_malformed_refs(world):
    chain = world[0]
    assert queries.lookup(chain.state, "loan", "ab" * 32) is None
    assert queries.lookup(chain.state, "loan", "not-hex") is None
    with pytest.raises(ValueError, match="unknown lookup kind"):
        queries.lookup(chain.state, "spaceship", "x")


# Nonces and replay -------------------------------------------------------------


def test_proposer_leaves_out_bad_nonces_and_replays(world):
    chain, borrower, *_ = world
    applied = chain.tx(borrower, "loan.apply", APPLY)
    gap = chain.tx(borrower, "loan.apply", APPLY, nonce=applied.nonce + 5)
    block, execution = chain.cut([applied, applied, gap])
    assert execution.tx_ids == [applied.id]
    assert [(d.code, d.tx_id) for d in execution.dropped] == [
        ("duplicate", applied.id),
        ("bad_nonce", gap.id),
    ]
    chain.apply(block, execution)
    # Replaying the committed tx in a later block: its nonce is used.
    _, later = chain.cut([applied])
    assert later.tx_ids == [] and later.dropped[0].code == "bad_nonce"
    assert "next nonce is" in later.dropped[0].message


def test_validator_refuses_a_block_with_a_replayed_tx(world):
    chain, borrower, *_ = world
    applied = chain.tx(borrower, "loan.apply", APPLY)
    block, execution = chain.cut([applied])
    chain.apply(block, execution)
    forged, _ = chain.cut([])
    body = [applied.encode()]
    forged = Block(replace(forged.header, tx_count=1, tx_root=tx_root(body)), body)
    with pytest.raises(InvalidBlock, match="cannot be included: bad_nonce"):
        check_block(
            forged.encode(),
            expected_height=chain.height + 1,
            parent_hash=chain.head_hash,
            parent_timestamp_ms=chain.head_ms,
            reader=chain.state,
            now_ms=None,
            max_skew_ms=0,
            chain_id=CHAIN_ID,
        )


def test_refused_tx_consumes_its_nonce_so_later_ones_proceed(world):
    chain, borrower, _, _, lender, _, _ = world
    bad = chain.tx(borrower, "loan.offer", {"loan_id": "ab" * 32, "rate_bps": 1})
    good = chain.tx(borrower, "loan.apply", APPLY)
    results = chain.run(bad, good)
    assert [r.code for r in results] == ["not_found", "ok"]
    assert next_nonce(chain.state, borrower.did) == good.nonce + 1
