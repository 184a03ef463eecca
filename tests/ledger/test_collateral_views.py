"""What the views show of the collateral register (rules 6; see ``ledger.collateral_views``): a loan's
collateral and loan-to-value, an asset's liens by rank, the coverage totals of a borrower's exposure and
a lender's book, and an audit export that covers pledges and releases.
"""

from __future__ import annotations

import json

import pytest

from lendchain.collateral_ids import asset_id
from lendchain.ledger import queries
from lendchain.ledger.audit import export_loan, verify_export
from lendchain.ledger.collateral_views import ltv_bps, principal_at_risk
from lendchain.ledger.funding import pro_rata
from tests.ledger.test_collateral import AGREEMENT, HOUSE, VAN, pledge, release, revalue, second_borrower
from tests.ledger.test_domain_audit import CertifiedBlocks
from tests.ledger.test_loan_transfer import accept, loan, open_loan, repay, transfer, with_borrower
from tests.ledger.test_restructure_consent import ALICE, BOB
from tests.ledger.test_share_assignment import sell, share_world
from tests.ledger.test_write_off import default, write_off


@pytest.fixture
def world():
    return with_borrower(version=6)


def asset(chain, ref):
    return queries.lookup(chain.state, "collateral", ref)


@pytest.mark.parametrize(
    ("principal", "value", "expected"),
    [
        (60_000, 80_000, 7_500),
        (120_000, 80_000, 15_000),  # under water: more owed than pledged
        (1, 3, 3_334),  # 3,333.3 bps rounded up: never better covered than it is
        (2, 3, 6_667),
        (0, 80_000, 0),
        (60_000, 0, None),  # nothing pledged: no ratio
        (None, 80_000, None),  # no claim
    ],
)
def test_loan_to_value_is_integer_basis_points_rounded_up(principal, value, expected):
    assert ltv_bps(principal, value) == expected


def test_a_loans_view_gives_its_collateral_the_liens_ahead_and_its_loan_to_value(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    senior = open_loan(chain, borrower, bank2)
    loan_id = open_loan(chain, borrower, bank1)  # 120,000 at 900 bps over 12 months
    plain = loan(chain, loan_id)
    assert (plain["collateral"], plain["collateral_value"], plain["ltv_bps"], plain["combined_ltv_bps"]) == (
        [],
        0,
        None,
        None,
    )

    assert pledge(chain, bank2, senior, value=50_000).ok
    senior_at = chain.height
    assert pledge(chain, bank1, loan_id, value=30_000, rank=2, agreement_hash=AGREEMENT).ok
    pledged_at, pledged_ms = chain.height, chain.head_ms
    assert pledge(chain, bank1, loan_id, asset=HOUSE, kind="real_estate", value=100_000).ok
    view = loan(chain, loan_id)
    van, house = view["collateral"]
    assert van == {
        "asset": VAN,
        "kind": "vehicle",
        "rank": 2,
        "loan_id": loan_id,
        "value": 30_000,
        "pledged_by": bank1.did,
        "height": pledged_at,
        "time_ms": pledged_ms,
        "agreement_hash": AGREEMENT,
        "revalued_height": None,
        "ahead": [
            {
                "rank": 1,
                "loan_id": senior,
                "value": 50_000,
                "pledged_by": bank2.did,
                "height": senior_at,
                "time_ms": van["ahead"][0]["time_ms"],
                "agreement_hash": None,
                "revalued_height": None,
                "lender": bank2.did,
                "lender_name": "bank2",
                "state": "disbursed",
            }
        ],
    }
    assert (house["asset"], house["rank"], house["ahead"]) == (HOUSE, 1, [])
    assert view["collateral_value"] == 130_000
    assert view["ltv_bps"] == -(-120_000 * 10_000 // 130_000) == 9_231  # 9,230.77 rounded up

    assert repay(chain, bank1, loan_id, 30_000).ok
    outstanding = loan(chain, loan_id)["outstanding_principal"]
    assert outstanding < 120_000
    assert loan(chain, loan_id)["ltv_bps"] == -(-outstanding * 10_000 // 130_000)
    assert revalue(chain, bank1, loan_id, 70_000, asset=HOUSE).ok
    view = loan(chain, loan_id)
    assert view["collateral_value"] == 100_000 and view["collateral"][1]["revalued_height"] == chain.height
    assert view["ltv_bps"] == -(-outstanding * 10_000 // 100_000)


def test_a_junior_liens_combined_loan_to_value_adds_the_principal_and_value_of_the_liens_ahead(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    senior = open_loan(chain, borrower, bank2)  # 120,000 drawn, ahead on the van and the house
    middle = open_loan(chain, borrower, bank1, disburse=False)  # 120,000 to be lent, ahead on the van
    junior = open_loan(chain, borrower, bank1)
    assert pledge(chain, bank2, senior, value=50_000).ok
    assert pledge(chain, bank2, senior, asset=HOUSE, kind="real_estate", value=90_000).ok
    assert pledge(chain, bank1, middle, value=20_000, rank=2).ok
    assert pledge(chain, bank1, junior, value=10_000, rank=3).ok
    assert pledge(chain, bank1, junior, asset=HOUSE, kind="real_estate", value=30_001, rank=2).ok
    assert repay(chain, bank1, junior, 15_000).ok
    mine = loan(chain, junior)["outstanding_principal"]
    senior_left = loan(chain, senior)["outstanding_principal"]

    view = loan(chain, junior)
    assert view["ltv_bps"] == -(-mine * 10_000 // 40_001)
    # The senior loan is ahead on both assets: its principal counts once, both its liens' values count.
    principal = mine + senior_left + 120_000
    value = 40_001 + 50_000 + 20_000 + 90_000
    assert view["combined_ltv_bps"] == -(-principal * 10_000 // value)
    assert view["combined_ltv_bps"] * value >= principal * 10_000 > (view["combined_ltv_bps"] - 1) * value

    first = loan(chain, senior)  # nothing ahead: the two ratios agree
    assert first["combined_ltv_bps"] == first["ltv_bps"] == -(-senior_left * 10_000 // 140_000)
    assert loan(chain, middle)["combined_ltv_bps"] == -(-(120_000 + senior_left) * 10_000 // 70_000)

    assert release(chain, bank2, senior).ok  # the van's first lien goes: only the house's stays ahead
    view = loan(chain, junior)
    assert view["combined_ltv_bps"] == -(
        -(mine + senior_left + 120_000) * 10_000 // (40_001 + 20_000 + 90_000)
    )
    assert release(chain, bank2, senior, asset=HOUSE).ok and release(chain, bank1, middle).ok
    view = loan(chain, junior)
    assert view["combined_ltv_bps"] == view["ltv_bps"]  # ranks 2 and 3 keep their number, nothing ahead


def test_a_rank_below_charges_held_outside_the_consortium_sees_nothing_ahead(world):
    chain, members, borrower = world
    loan_id = open_loan(chain, borrower, members[0], disburse=False)
    assert pledge(chain, members[0], loan_id, value=60_000, rank=2).ok
    view = loan(chain, loan_id)
    assert view["combined_ltv_bps"] == view["ltv_bps"] == 20_000  # 120,000 to be lent over 60,000


def test_the_principal_at_risk_is_the_amount_before_drawing_and_the_principal_still_lost_after_a_write_off(
    world,
):
    chain, members, borrower = world
    bank1 = members[0]
    accepted = open_loan(chain, borrower, bank1, disburse=False)
    assert pledge(chain, bank1, accepted, value=240_000).ok
    assert loan(chain, accepted)["ltv_bps"] == 5_000  # 120,000 to be lent
    loan_id = open_loan(chain, borrower, bank1)
    assert pledge(chain, bank1, loan_id, asset=HOUSE, kind="real_estate", value=40_000).ok
    default(chain, loan_id)
    assert write_off(chain, bank1, loan_id).ok
    view = loan(chain, loan_id)
    assert view["outstanding_principal"] == 0
    assert view["ltv_bps"] == -(-view["net_loss"]["principal"] * 10_000 // 40_000)
    stored = {"state": "closed", "amount": 1, "principal_paid": 1}
    assert principal_at_risk(stored) is None


def test_an_assets_view_lists_every_lien_by_rank_with_its_loan_servicer_and_state(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    other = second_borrower(chain, members)
    first = open_loan(chain, borrower, bank1)
    second = open_loan(chain, other, bank2, disburse=False)
    assert pledge(chain, bank1, first).ok
    assert pledge(chain, bank2, second, value=20_000, rank=3).ok
    assert transfer(chain, bank1, first, bank2).ok and accept(chain, bank2, first).ok
    view = asset(chain, VAN)
    assert view["asset"] == VAN and view["kind"] == "vehicle"
    assert [
        (
            lien["rank"],
            lien["loan_id"],
            lien["lender_name"],
            lien["pledged_by"],
            lien["borrower"],
            lien["state"],
        )
        for lien in view["liens"]
    ] == [
        (1, first, "bank2", bank1.did, borrower.did, "disbursed"),  # its servicer now; bank1 pledged it
        (3, second, "bank2", bank2.did, other.did, "accepted"),
    ]
    assert [(lien["currency"], lien["principal"], lien["value"]) for lien in view["liens"]] == [
        ("EUR", 120_000, 80_000),
        ("EUR", 120_000, 20_000),
    ]
    assert asset(chain, HOUSE) is None  # never pledged
    for ref in (VAN.upper(), VAN[:10], "WVWZZZ1JZXW000001"):
        assert asset(chain, ref) is None
    assert release(chain, bank2, first).ok and release(chain, bank2, second).ok
    assert asset(chain, VAN) is None  # every lien released


def test_a_borrowers_exposure_and_a_lenders_book_say_how_much_collateral_covers_what_is_outstanding(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    covered = open_loan(chain, borrower, bank1)  # over-collateralised: secured up to its principal
    half = open_loan(chain, borrower, bank1)
    open_loan(chain, borrower, bank2)  # no collateral: all unsecured
    committed = open_loan(chain, borrower, bank2, disburse=False)  # not outstanding: not counted
    assert pledge(chain, bank1, covered, value=500_000).ok
    assert pledge(chain, bank1, half, asset=HOUSE, kind="real_estate", value=60_000).ok
    deposit = asset_id("deposit", "DE89 3704 0044 0532 0130 00")
    assert pledge(chain, bank2, committed, asset=deposit, kind="deposit", value=9_000).ok
    assert repay(chain, bank1, half, 20_000).ok
    half_left = loan(chain, half)["outstanding_principal"]

    exposure = queries.lookup(chain.state, "exposure", borrower.did)
    coverage = exposure["collateral"]["EUR"]
    assert coverage == {
        "secured": 120_000 + 60_000,
        "unsecured": half_left - 60_000 + 120_000,
        "collateral_value": 560_000,
        "secured_loans": 2,
    }
    assert coverage["secured"] + coverage["unsecured"] == exposure["currencies"]["EUR"]["outstanding"]
    book1 = queries.lookup(chain.state, "portfolio", bank1.did)["collateral"]
    assert book1 == {
        "EUR": {
            "secured": 180_000,
            "unsecured": half_left - 60_000,
            "collateral_value": 560_000,
            "secured_loans": 2,
        }
    }
    book2 = queries.lookup(chain.state, "portfolio", bank2.did)["collateral"]
    assert book2 == {"EUR": {"secured": 0, "unsecured": 120_000, "collateral_value": 0, "secured_loans": 0}}


def test_a_funders_positions_give_its_pro_rata_part_of_the_coverage_and_the_parts_add_up():
    chain, members, borrower, loan_id = share_world()  # alice 30,000, bank1 40,000, bob 50,000
    bank1 = members[0]
    assert pledge(chain, bank1, loan_id, value=70_001).ok
    assert repay(chain, bank1, loan_id, 12_345).ok
    sell(chain, ALICE, BOB, loan_id, 10_000)  # alice 20,000, bob 60,000
    outstanding = loan(chain, loan_id)["outstanding_principal"]
    funders = (ALICE.did, bank1.did, BOB.did)
    views = [queries.lookup(chain.state, "positions", did) for did in funders]

    secured = pro_rata(70_001, [20_000, 40_000, 60_000])
    shares = pro_rata(outstanding, [20_000, 40_000, 60_000])
    for view, secured_part, share in zip(views, secured, shares, strict=True):
        [position] = [p for p in view["positions"] if p["loan_id"] == loan_id]
        assert (position["share"], position["secured"]) == (share, secured_part)
        assert view["collateral"] == {
            "EUR": {
                "secured": secured_part,
                "unsecured": share - secured_part,
                "collateral_value": secured_part,  # the pledged value is all secured here
                "secured_loans": 1,
            }
        }
    exposure = queries.lookup(chain.state, "exposure", borrower.did)["collateral"]["EUR"]
    for field in ("secured", "unsecured", "collateral_value"):  # the parts add up to the loan's figures
        assert sum(view["collateral"]["EUR"][field] for view in views) == exposure[field]
    assert exposure["secured"] == 70_001 and exposure["unsecured"] == outstanding - 70_001
    alice = views[0]["collateral"]["EUR"]
    assert alice["secured"] + alice["unsecured"] == views[0]["currencies"]["EUR"]["outstanding"]


def test_reading_the_collateral_views_changes_nothing(world):
    chain, members, borrower = world
    loan_id = open_loan(chain, borrower, members[0])
    assert pledge(chain, members[0], loan_id).ok
    before = dict(chain.state.values)
    loan(chain, loan_id)
    asset(chain, VAN)
    queries.lookup(chain.state, "exposure", borrower.did)
    queries.lookup(chain.state, "portfolio", members[0].did)
    assert chain.state.values == before


def test_an_audit_export_covers_pledges_revaluations_and_releases_by_the_servicer_and_the_ledger(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    assert pledge(chain, bank1, loan_id, agreement_hash=AGREEMENT).ok
    assert pledge(chain, bank1, loan_id, asset=HOUSE, kind="real_estate", value=10_000).ok
    assert revalue(chain, bank1, loan_id, 75_000).ok
    assert release(chain, bank1, loan_id, asset=HOUSE).ok
    assert repay(chain, bank1, loan_id, loan(chain, loan_id)["amount_owed"]).ok  # closes: the van goes
    document = export_loan(chain.state, CertifiedBlocks(chain, members), bytes.fromhex(loan_id))
    kinds = [(e["kind"], e["signer"]) for e in document["entries"]]
    assert kinds[-5:] == [
        ("collateral.pledge", bank1.did),
        ("collateral.pledge", bank1.did),
        ("collateral.revalue", bank1.did),
        ("collateral.release", bank1.did),
        ("loan.repay", bank1.did),
    ]
    events = [entry["event"] for entry in loan(chain, loan_id)["history"][-2:]]
    assert events == ["loan.repay", "collateral.released"]  # the ledger's, in the closing tx's range
    summary = verify_export(json.loads(json.dumps(document)), chain.genesis)
    assert summary["loan_id"] == loan_id and summary["history_length"] == loan(chain, loan_id)["history_len"]
