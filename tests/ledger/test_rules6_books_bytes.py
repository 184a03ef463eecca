"""A rules-6 chain's bytes, part two: the kinds rules 6 gained after its guard rails (``test_rules6_bytes``)
— a written-off loan's recovery handed on and ended (``transfers``, ``recovery_end``), the collateral
register (``collateral``), a funder's share sold (``assignment``) and a chain parameter changed by
governance (``params_change``) — execute to the head hash recorded when rules 6 was closed.

Fixed keys and block times; refusals are in it too (their sentences are hashed). A change that alters
what rules 6 store or say fails here; it belongs to rules 7. Reading every view after every step
leaves the state as it was.
"""

from __future__ import annotations

import pytest

from lendchain.collateral_ids import asset_id
from lendchain.ledger import queries
from lendchain.ledger.servicing import DAY_MS
from tests.ledger.chain import seeded_key
from tests.ledger.test_collateral import pledge, release, revalue
from tests.ledger.test_forbearance_bytes import at
from tests.ledger.test_loan_transfer import APPLY, loan, open_loan, repay
from tests.ledger.test_params_change import set_param
from tests.ledger.test_recovery import recover
from tests.ledger.test_restructure_consent import ALICE, BOB, CAROL, funders_world, syndicate
from tests.ledger.test_share_assignment import offer, sell, take, withdraw
from tests.ledger.test_write_off import default, write_off
from tests.ledger.test_written_off_transfer import end, hand_over

# The head hash of ``scenario`` when rules 6 was closed (2026-12-06, after the collateral merge).
RULES_6_BOOKS_HEAD = "911aebf482bab8f551d834fc8400501b66c2275655167b55f83f813452ea2366"

VAN = asset_id("vehicle", "WVWZZZ1JZXW000777")
FLAT = asset_id("real_estate", "GB:XY987654")


def scenario(after_step=None):
    """Three loans through the later rules-6 kinds; ``after_step(chain, loans)`` runs after each step."""
    chain, members, borrower = funders_world(version=6)
    bank1, bank2, bank3 = members[0], members[1], members[2]
    lost = open_loan(chain, borrower, bank1)  # secured, defaults, written off, handed on, recovery ended
    shared = syndicate(chain, borrower, bank2, [(ALICE, 30_000), (bank2, 40_000), (BOB, 50_000)])
    loans = [lost, shared]

    def step():
        if after_step is not None:
            after_step(chain, loans)

    # The collateral register: a first lien, a refused double pledge, a second lien, a revaluation.
    assert pledge(chain, bank1, lost, asset=VAN, value=70_000).ok
    assert pledge(chain, bank2, shared, asset=VAN, value=10_000).code == "duplicate"
    assert pledge(chain, bank2, shared, asset=VAN, value=10_000, rank=2).ok
    assert pledge(chain, bank2, shared, asset=FLAT, kind="real_estate", value=150_000).ok
    assert revalue(chain, bank1, lost, 60_000, asset=VAN).ok
    step()
    # A funder's share sold in part, an offer withdrawn, one refused, one taken whole.
    sell(chain, BOB, CAROL, shared, 20_000, price=19_000)
    assert offer(chain, ALICE, shared, CAROL, 30_000).ok
    assert withdraw(chain, ALICE, shared).ok
    assert offer(chain, ALICE, shared, borrower, 30_000).code == "bad_payload"  # not to the borrower
    assert offer(chain, ALICE, shared, bank3, 30_000).code == "bad_payload"  # bank3 lends nothing
    assert offer(chain, ALICE, shared, bank1, 30_000).ok and take(chain, bank1, shared).ok
    assert repay(chain, bank2, shared, 9_000).ok  # split among bank1, bank2, bob and carol
    step()
    # A chain parameter changed by governance: a currency added, lent in from the next block.
    in_sek = {**APPLY, "currency": "SEK"}
    assert chain.run_one(chain.tx(borrower, "loan.apply", in_sek)).code == "bad_payload"
    assert set_param(chain, members, "currencies", "CHF,EUR,GBP,INR,KES,SEK,USD").ok
    assert chain.run_one(chain.tx(borrower, "loan.apply", in_sek)).ok
    step()
    # The secured loan defaults and is written off; its recovery is handed on, partly recovered, ended.
    default(chain, lost)
    assert write_off(chain, bank1, lost).ok
    assert recover(chain, bank1, lost, 5_000).ok
    hand_over(chain, bank1, bank2, lost)
    assert recover(chain, bank1, lost, 1_000).code == "forbidden"
    assert recover(chain, bank2, lost, 20_000).ok
    assert release(chain, bank2, lost, asset=FLAT).code == "not_found"  # never pledged on this loan
    assert end(chain, bank2, lost).ok  # releases the van's first lien
    step()
    # The syndicated loan's second lien is released by its servicer, the flat stays; time runs on.
    assert release(chain, bank2, shared, asset=VAN).ok
    at(chain, chain.head_ms + 40 * DAY_MS)
    step()
    states = [loan(chain, loan_id)["state"] for loan_id in loans]
    assert states == ["written_off", "defaulted"], states  # the default's months ran on the shared loan too
    assert queries.lookup(chain.state, "collateral", VAN) is None  # both liens released
    assert [lien["loan_id"] for lien in queries.lookup(chain.state, "collateral", FLAT)["liens"]] == [shared]
    return chain, loans


@pytest.mark.parametrize("read_views", [False, True])
def test_a_rules_6_chain_with_collateral_shares_recoveries_and_params_has_its_recorded_head(read_views):
    def read_every_view(chain, loans):
        before = dict(chain.state.values)
        for loan_id in loans:
            queries.lookup(chain.state, "loan", loan_id, as_of_ms=chain.head_ms)
        for kind, key in (("exposure", 1), ("portfolio", 100), ("portfolio", 102), ("positions", 11)):
            queries.lookup(chain.state, kind, seeded_key(key).did, as_of_ms=chain.head_ms)
        queries.lookup(chain.state, "collateral", VAN)
        assert chain.state.values == before

    chain, _ = scenario(read_every_view if read_views else None)
    assert chain.head_hash.hex() == RULES_6_BOOKS_HEAD
