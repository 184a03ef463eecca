"""A rules-8 chain's bytes: seeded scenarios that use what rules 8 changed execute to recorded head hashes
(``guarantees.LIVE_LIST_SINCE``: the cap counts live guarantees and an ended one leaves the loan record;
``lifecycle.DECLINE_BY_ANY_BUYER_SINCE``: a buyer that lost its lender role declines a share offer).

Like ``test_rules7_bytes`` for rules 7: fixed keys and block times, and the last block's hash commits to
every state root and results root before it (refusals included: their sentences are hashed). Rules 8 is
closed: a change that alters these hashes belongs to rules 9, and they are never re-recorded. Reading
every view after every step leaves the state as it was.
"""

from __future__ import annotations

import pytest

from lendchain.ledger.guarantees import MAX_PER_LOAN
from lendchain.ledger.rules import MIN_NOTICE_BLOCKS
from tests.ledger.test_guarantees import GINA, HAL, act, guarantee_world, guaranteed_by, propose
from tests.ledger.test_guarantees_rules8 import churn, live_ids
from tests.ledger.test_loan_transfer import loan, ok, open_loan
from tests.ledger.test_membership import advance_to, vote_through
from tests.ledger.test_restructure_consent import ALICE, BOB, CAROL
from tests.ledger.test_rules7_bytes import read_every_view
from tests.ledger.test_share_assignment import offer
from tests.ledger.test_share_decline import decline, decline_world
from tests.ledger.test_write_off import default, write_off
from tests.ledger.test_written_off_transfer import end

# The head hashes of ``scenario`` and ``upgraded`` under rules 8 (closed).
RULES_8_HEAD = "510ed8e52c460181adff7e8de093d26fb4cacc1bca6c79020e13a15c85e33e14"
RULES_8_UPGRADED_HEAD = "411c01fbca7c0d649344256ac7be718fba9d9dffd9717830669ec7cb547ec91f"


def scenario(after_step=None):
    """A share offer declined by a buyer whose lender role was removed since, and a loan whose guarantor
    changed ``MAX_PER_LOAN`` times taking another guarantee, called, released, and one let lapse by the
    ledger; ``after_step(chain, loans, dids)`` runs after each step."""
    chain, members, borrower, shared = decline_world(version=8)
    bank1, bank2 = members[0], members[1]
    loans = [shared]
    dids = [borrower.did, bank1.did, bank2.did, ALICE.did, BOB.did, CAROL.did]

    def step():
        if after_step is not None:
            after_step(chain, loans, dids)

    # Shares: alice offers to bank2, which governance then makes a bureau only; bank2 declines.
    assert offer(chain, ALICE, shared, bank2, 5_000, price=4_500).ok
    vote_through(chain, bank1, members[2:4], "member.roles", bank2.did, "bureau")
    assert decline(chain, ALICE, shared).code == "forbidden"
    assert decline(chain, BOB, shared).code == "forbidden"
    assert chain.run_one(chain.tx(bank2, "loan.share_accept", {"loan_id": shared})).code == "forbidden"
    assert decline(chain, bank2, shared, note="no longer lending").ok
    assert decline(chain, bank2, shared).code == "forbidden"  # no offer names it now, and it lends no more
    step()

    # Guarantees: gina's proposed and withdrawn sixteen times, then a seventeenth accepted; hal's
    # accepted and released; the loan defaults, gina's is called and released (the claim ends); hal's
    # second is proposed, and lapses when the written-off loan's recovery ends.
    for party in (GINA, HAL):
        ok(chain, party, "party.register", {"role": "borrower"})
    secured = open_loan(chain, borrower, bank1)
    loans.append(secured)
    dids += [GINA.did, HAL.did]
    churn(chain, bank1, secured, MAX_PER_LOAN)
    assert live_ids(chain, secured) == []
    gina = guaranteed_by(chain, bank1, secured, amount=50_000)
    hal = guaranteed_by(chain, bank1, secured, HAL, amount=30_000)
    assert act(chain, bank1, "release", secured, hal).ok
    assert act(chain, bank1, "release", secured, hal).code == "invalid_state"
    step()
    default(chain, secured)
    assert act(chain, bank1, "call", secured, gina, amount=20_000).ok
    assert act(chain, bank1, "release", secured, gina).ok
    assert act(chain, bank1, "call", secured, gina, amount=1).code == "invalid_state"
    assert propose(chain, bank1, secured, HAL, amount=10_000).ok
    assert write_off(chain, bank1, secured).ok
    assert end(chain, bank1, secured).ok
    step()
    assert live_ids(chain, secured) == []
    statuses = [g["status"] for g in loan(chain, secured)["guarantees"]]
    assert statuses == ["withdrawn"] * MAX_PER_LOAN + ["released", "released", "lapsed"]
    return chain, loans


def upgraded(after_step=None):
    """A rules-7 loan whose guarantees ended ``MAX_PER_LOAN - 1`` times and has one active, upgraded to
    rules 8, taking another guarantee (its list moves to rules 8's layout)."""
    chain, members, borrower, loan_id = guarantee_world(version=7)
    bank1 = members[0]
    dids = [borrower.did, bank1.did, GINA.did, HAL.did]
    churn(chain, bank1, loan_id, MAX_PER_LOAN - 1)
    guaranteed_by(chain, bank1, loan_id, HAL, amount=10_000)
    assert propose(chain, bank1, loan_id, amount=1).code == "invalid_state"
    if after_step is not None:
        after_step(chain, [loan_id], dids)
    activation = chain.height + 4 + MIN_NOTICE_BLOCKS
    assert vote_through(chain, bank1, members[1:3], "rules.upgrade", "8", str(activation)).ok
    advance_to(chain, activation)
    assert propose(chain, bank1, loan_id, amount=1).ok
    if after_step is not None:
        after_step(chain, [loan_id], dids)
    assert len(live_ids(chain, loan_id)) == 2
    return chain, [loan_id]


@pytest.mark.parametrize("read_views", [False, True])
@pytest.mark.parametrize(("build", "head"), [(scenario, RULES_8_HEAD), (upgraded, RULES_8_UPGRADED_HEAD)])
def test_a_rules_8_chain_has_the_head_hash_recorded_for_rules_8(build, head, read_views):
    chain, _ = build(read_every_view if read_views else None)
    assert chain.head_hash.hex() == head
