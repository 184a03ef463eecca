"""A rules-7 chain's bytes: a seeded scenario that uses every kind and parameter rules 7 added executes
to the head hash recorded when rules 7 were closed (``share_decline``, ``min_share_part_bps``,
``disputes``, ``guarantees``).

Like ``test_rules6_bytes`` for rules 6: fixed keys and block times, and the
last block's hash commits to every state root and results root before it
(refusals included: their sentences are hashed). A change that alters what
rules 7 store or say fails here; it belongs to a new rules version. Reading
every view after every step leaves the state as it was.
"""

from __future__ import annotations

import pytest

from lendchain.ledger import queries
from tests.ledger.chain import GENESIS_MS
from tests.ledger.test_disputes import CORRECTION, answer, dispute, report
from tests.ledger.test_forbearance_bytes import at
from tests.ledger.test_guarantees import GINA, HAL, act, guaranteed_by, propose
from tests.ledger.test_loan_transfer import loan, ok, open_loan, transfer
from tests.ledger.test_restructure_consent import ALICE, BOB, CAROL
from tests.ledger.test_share_assignment import offer, take
from tests.ledger.test_share_decline import decline, decline_world
from tests.ledger.test_share_part_param import set_part
from tests.ledger.test_write_off import default, write_off
from tests.ledger.test_written_off_transfer import end

# The head hash of ``scenario`` when rules 7 were closed.
RULES_7_HEAD = "acb1ace373de4ce71761cf1aedcfd0235694f4f5c3a3916f042affb41ddc9f8c"

FAR = GENESIS_MS + 10**12


def scenario(after_step=None):
    """A syndicated loan's shares offered, declined and sold under a changed least part, a credit
    report disputed three ways, and a loan's guarantees proposed, withdrawn, released, called and let go
    by the ledger; ``after_step(chain, loans, dids)`` runs after each step."""
    chain, members, borrower, shared = decline_world(version=7)
    bank1, bank2 = members[0], members[1]
    loans = [shared]
    dids = [borrower.did, bank1.did, bank2.did, ALICE.did, BOB.did, CAROL.did]

    def step():
        if after_step is not None:
            after_step(chain, loans, dids)

    # Shares: the least part raised to 2.5 %, an offer below it refused, one declined, one taken.
    assert set_part(chain, members, 250)
    assert offer(chain, ALICE, shared, CAROL, 2_999).code == "bad_payload"
    assert offer(chain, ALICE, shared, CAROL, 5_000, price=4_500).ok
    assert decline(chain, BOB, shared).code == "forbidden"
    assert decline(chain, CAROL, shared, note="price too high").ok
    assert decline(chain, CAROL, shared).code == "invalid_state"
    assert offer(chain, ALICE, shared, CAROL, 6_000).ok
    assert take(chain, CAROL, shared).ok
    step()

    # Disputes: bank2 (a bureau) reports; the borrower disputes; the deadline passes; a late confirm.
    grant = {"member": bank2.did, "scopes": "credit", "until_ms": FAR}
    assert chain.run_one(chain.tx(borrower, "consent.grant", grant)).ok
    assert report(chain, bank2, borrower).ok
    first = chain.height
    assert dispute(chain, borrower, bank2, first, signer=bank1).code == "forbidden"
    assert dispute(chain, borrower, bank2, first).ok
    assert dispute(chain, borrower, bank2, first).code == "duplicate"
    [open_dispute] = queries.lookup(chain.state, "disputes", borrower.did, as_of_ms=chain.head_ms)["shown"]
    at(chain, open_dispute["deadline_ms"])
    step()
    assert answer(chain, bank2, borrower, first, "confirmed").ok
    # A second report, disputed and corrected; the correction disputed and withdrawn.
    assert report(chain, bank2, borrower, income_band=4).ok
    second = chain.height
    assert dispute(chain, borrower, bank2, second).ok
    assert answer(chain, bank1, borrower, second, "withdrawn").code == "forbidden"
    assert answer(chain, bank2, borrower, second, "corrected", **CORRECTION).ok
    corrected = chain.height
    assert dispute(chain, borrower, bank2, corrected).ok
    assert answer(chain, bank2, borrower, corrected, "withdrawn").ok
    assert answer(chain, bank2, borrower, corrected, "confirmed").code == "invalid_state"
    step()

    # Guarantees: gina's accepted, hal's withdrawn, bank2's bank guarantee bars a transfer to bank2
    # and is released; the loan defaults, gina's is called twice (the second over what is left), the
    # loan is written off and its recovery ended, which releases gina's.
    for party in (GINA, HAL):
        ok(chain, party, "party.register", {"role": "borrower"})
    secured = open_loan(chain, borrower, bank1)
    loans.append(secured)
    dids += [GINA.did, HAL.did]
    gina = guaranteed_by(chain, bank1, secured, amount=50_000)
    hal = propose(chain, bank1, secured, HAL, amount=30_000, expires_ms=chain.head_ms + 10**9)
    assert act(chain, HAL, "accept", secured, gina).code == "forbidden"
    assert act(chain, bank1, "withdraw", secured, hal.tx_id.hex()).ok
    bank = guaranteed_by(chain, bank1, secured, bank2, amount=20_000, kind="bank")
    assert transfer(chain, bank1, secured, bank2).code == "invalid_state"  # bank2 guarantees it
    assert act(chain, bank1, "release", secured, bank).ok
    step()
    default(chain, secured)
    assert act(chain, bank1, "call", secured, gina, amount=30_000).ok
    assert act(chain, bank1, "call", secured, gina, amount=20_001).code == "bad_payload"
    assert write_off(chain, bank1, secured).ok
    assert end(chain, bank1, secured).ok
    step()
    assert loan(chain, shared)["funding"]["share_declines"][0]["note"] == "price too high"
    assert [g["status"] for g in loan(chain, secured)["guarantees"]] == ["released", "withdrawn", "released"]
    return chain, loans


def read_every_view(chain, loans, dids):
    before = dict(chain.state.values)
    for loan_id in loans:
        queries.lookup(chain.state, "loan", loan_id, as_of_ms=chain.head_ms)
    for did in dids:
        for kind in ("party", "score", "disputes", "exposure", "portfolio", "positions"):
            queries.lookup(chain.state, kind, did, as_of_ms=chain.head_ms)
    assert chain.state.values == before


@pytest.mark.parametrize("read_views", [False, True])
def test_a_rules_7_chain_has_the_head_hash_recorded_when_rules_7_were_closed(read_views):
    chain, _ = scenario(read_every_view if read_views else None)
    assert chain.head_hash.hex() == RULES_7_HEAD
