"""The collateral register (``collateral.pledge``, ``collateral.release``, ``collateral.revalue``, rules 6;
see ``ledger.collateral``): double pledges refused, ranks, releases by the servicer and by the ledger,
transfers, write-offs, and every refusal.

The chains start on rules 6 from the genesis unless a test says otherwise.
bank1 and bank2 are the lenders (``make_genesis``'s roles), bank3 a
regulator and bank4 the kyc member.
"""

from __future__ import annotations

import pytest

from lendchain.collateral_ids import asset_id
from lendchain.ledger import servicing
from lendchain.ledger.amortization import loan_schedule
from lendchain.ledger.collateral import MAX_LIENS_PER_ASSET, MAX_PLEDGES_PER_LOAN, MAX_RANK, asset_key
from lendchain.ledger.loans import MAX_AMOUNT
from lendchain.ledger.state import loan_key, read_value
from tests.ledger.chain import domain_events, seeded_key
from tests.ledger.test_loan_transfer import (
    accept,
    loan,
    ok,
    open_loan,
    repay,
    syndicated_loan,
    transfer,
    with_borrower,
)
from tests.ledger.test_recovery import recover
from tests.ledger.test_write_off import default, write_off
from tests.ledger.test_written_off_transfer import end

VAN = asset_id("vehicle", "WVWZZZ1JZXW000001")
HOUSE = asset_id("real_estate", "GB:AB123456")
AGREEMENT = "5e" * 32


@pytest.fixture
def world():
    return with_borrower(version=6)


def pledge(chain, key, loan_id, asset=VAN, kind="vehicle", value=80_000, **extra):
    payload = {"loan_id": loan_id, "asset": asset, "kind": kind, "value": value, **extra}
    return chain.run_one(chain.tx(key, "collateral.pledge", payload))


def release(chain, key, loan_id, asset=VAN):
    return chain.run_one(chain.tx(key, "collateral.release", {"loan_id": loan_id, "asset": asset}))


def revalue(chain, key, loan_id, value, asset=VAN):
    payload = {"loan_id": loan_id, "asset": asset, "value": value}
    return chain.run_one(chain.tx(key, "collateral.revalue", payload))


def liens(chain, asset=VAN):
    """The asset's stored liens as (loan id, rank, value); None once it carries none (its key is gone)."""
    record = read_value(chain.state, asset_key(bytes.fromhex(asset)))
    return (
        None
        if record is None
        else [(lien["loan_id"].hex(), lien["rank"], lien["value"]) for lien in record["liens"]]
    )


def stored(chain, loan_id):
    return read_value(chain.state, loan_key(bytes.fromhex(loan_id)))


def second_borrower(chain, members):
    borrower = seeded_key(5)
    chain.onboard(borrower, members[3])
    return borrower


# Pledging ---------------------------------------------------------------------------------------


def test_a_pledge_is_kept_on_the_asset_and_the_loan_and_told_in_history_and_events(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    result = pledge(chain, bank1, loan_id, agreement_hash=AGREEMENT)
    assert result.ok, result.message
    assert domain_events(result.events) == [
        {
            "event": "collateral.pledged",
            "loan_id": loan_id,
            "asset": VAN,
            "kind": "vehicle",
            "rank": 1,
            "value": 80_000,
            "currency": "EUR",
            "ahead": 0,
        }
    ]
    record = read_value(chain.state, asset_key(bytes.fromhex(VAN)))
    assert record == {
        "kind": "vehicle",
        "liens": [
            {
                "loan_id": bytes.fromhex(loan_id),
                "rank": 1,
                "value": 80_000,
                "pledged_by": bank1.did,
                "height": chain.height,
                "time_ms": chain.head_ms,
                "agreement_hash": bytes.fromhex(AGREEMENT),
            }
        ],
    }
    assert stored(chain, loan_id)["collateral"] == [
        {"asset": bytes.fromhex(VAN), "kind": "vehicle", "rank": 1, "value": 80_000}
    ]
    entry = loan(chain, loan_id)["history"][-1]
    assert {k: entry[k] for k in ("event", "asset", "kind", "rank", "value", "agreement_hash")} == {
        "event": "collateral.pledge",
        "asset": VAN,
        "kind": "vehicle",
        "rank": 1,
        "value": 80_000,
        "agreement_hash": AGREEMENT,
    }


def test_a_second_lender_cannot_take_a_first_ranking_pledge_of_an_asset_that_secures_another_loan(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    first = open_loan(chain, borrower, bank1)
    assert pledge(chain, bank1, first).ok
    pledged_at = chain.height
    # The same borrower, or another, pledges the same van for a loan from another bank.
    other = open_loan(chain, second_borrower(chain, members), bank2)
    refused = pledge(chain, bank2, other, value=50_000)
    assert refused.code == "duplicate"
    assert refused.message == (
        f"collateral.pledge on loan {other[:16]}: asset {VAN[:16]} already secures loan {first[:16]} of bank1 "
        f"(rank 1, since height {pledged_at}); a lower-ranking pledge names its rank (field 'rank', 2 or more)"
    )
    assert liens(chain) == [(first, 1, 80_000)] and "collateral" not in stored(chain, other)
    # The other loan's own pledges are unaffected: a different asset is free.
    assert pledge(chain, bank2, other, asset=HOUSE, kind="real_estate", value=150_000).ok


def test_a_lower_ranking_pledge_names_its_rank_below_every_lien_and_ranks_keep_their_number(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    senior, junior, third, fourth = (
        open_loan(chain, borrower, lender) for lender in (bank1, bank2, bank1, bank2)
    )
    assert pledge(chain, bank1, senior).ok
    second = pledge(chain, bank2, junior, value=20_000, rank=2)
    assert second.ok, second.message
    assert domain_events(second.events)[0]["ahead"] == 1
    for rank in (1, 2):  # at or above the lowest-ranking lien: it would not rank below it
        refused = pledge(chain, bank1, third, value=5_000, rank=rank)
        assert refused.code == "invalid_state"
        assert (
            f"collateral.pledge field 'rank' is {rank}, but asset {VAN[:16]} carries loan {junior[:16]} of bank2 "
            "(rank 2, since height" in refused.message
        )
        assert refused.message.endswith("a new lien ranks below every lien on the asset (3 or more)")
    assert pledge(chain, bank1, third, value=5_000, rank=4).ok  # a gap: a charge held off chain
    assert liens(chain) == [(senior, 1, 80_000), (junior, 2, 20_000), (third, 4, 5_000)]

    assert release(chain, bank1, senior).ok  # the liens behind keep their ranks
    assert liens(chain) == [(junior, 2, 20_000), (third, 4, 5_000)]
    refused = pledge(chain, bank2, fourth, value=1_000)
    assert refused.code == "duplicate"
    assert f"already secures loan {junior[:16]} of bank2 (rank 2, since height" in refused.message
    assert f"and loan {third[:16]} of bank1 (rank 4" not in refused.message  # listed with commas
    assert f", loan {third[:16]} of bank1 (rank 4, since height" in refused.message
    assert refused.message.endswith("(field 'rank', 5 or more)")


def test_a_rank_above_1_may_be_the_first_lien_on_chain_when_the_charges_ahead_are_held_elsewhere(world):
    chain, members, borrower = world
    loan_id = open_loan(chain, borrower, members[0])
    assert pledge(chain, members[0], loan_id, asset=HOUSE, kind="real_estate", value=40_000, rank=2).ok
    assert liens(chain, HOUSE) == [(loan_id, 2, 40_000)]


def test_a_loan_pledges_an_asset_once(world):
    chain, members, borrower = world
    loan_id = open_loan(chain, borrower, members[0])
    assert pledge(chain, members[0], loan_id).ok
    refused = pledge(chain, members[0], loan_id, value=90_000, rank=2)
    assert refused.code == "duplicate"
    assert refused.message == (
        f"collateral.pledge on loan {loan_id[:16]}: asset {VAN[:16]} secures this loan already (rank 1); "
        "collateral.revalue records a new value"
    )


def test_an_assets_first_lien_fixes_its_kind(world):
    chain, members, borrower = world
    first, other = open_loan(chain, borrower, members[0]), open_loan(chain, borrower, members[1])
    assert pledge(chain, members[0], first).ok
    refused = pledge(chain, members[1], other, kind="equipment", rank=2)
    assert refused.code == "bad_payload"
    assert refused.message == (
        f"collateral.pledge field 'kind' is 'equipment', but asset {VAN[:16]} is pledged as 'vehicle': "
        "its id names its kind (lendchain collateral id --kind vehicle)"
    )


def test_a_loan_takes_at_most_max_pledges_and_an_asset_at_most_max_liens(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    assets = [asset_id("equipment", f"KOMATSU:PC210-{n}") for n in range(MAX_PLEDGES_PER_LOAN + 1)]
    payloads = [{"loan_id": loan_id, "asset": a, "kind": "equipment", "value": 1_000} for a in assets]
    results = chain.run(*(chain.tx(bank1, "collateral.pledge", p) for p in payloads))
    assert [r.code for r in results] == ["ok"] * MAX_PLEDGES_PER_LOAN + ["invalid_state"]
    assert results[-1].message == (
        f"collateral.pledge on loan {loan_id[:16]}: the loan has {MAX_PLEDGES_PER_LOAN} pledged assets, "
        f"the most a loan may have ({MAX_PLEDGES_PER_LOAN}); release one first"
    )
    assert release(chain, bank1, loan_id, assets[0]).ok
    assert pledge(chain, bank1, loan_id, asset=assets[-1], kind="equipment", value=1_000).ok

    loans = [open_loan(chain, borrower, (bank1, bank2)[n % 2]) for n in range(MAX_LIENS_PER_ASSET + 1)]
    for rank, (lender, loan_id) in enumerate(zip([bank1, bank2] * 5, loans, strict=False), start=1):
        result = pledge(chain, lender, loan_id, asset=HOUSE, kind="real_estate", value=1_000, rank=rank)
        assert result.ok == (rank <= MAX_LIENS_PER_ASSET), result.message
    assert result.code == "invalid_state"
    assert result.message.endswith(
        f"asset {HOUSE[:16]} carries {MAX_LIENS_PER_ASSET} liens, the most an asset may carry "
        f"({MAX_LIENS_PER_ASSET})"
    )


# Releasing and revaluing -------------------------------------------------------------------------


def test_the_servicer_releases_its_lien_and_the_asset_is_free_for_another_loan(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    first, other = open_loan(chain, borrower, bank1), open_loan(chain, borrower, bank2)
    assert pledge(chain, bank1, first).ok
    released = release(chain, bank1, first)
    assert released.ok, released.message
    assert domain_events(released.events) == [
        {"event": "collateral.released", "loan_id": first, "asset": VAN, "rank": 1, "value": 80_000}
    ]
    assert liens(chain) is None and "collateral" not in stored(chain, first)
    assert loan(chain, first)["history"][-1]["event"] == "collateral.release"
    assert pledge(chain, bank2, other).ok
    assert liens(chain) == [(other, 1, 80_000)]


def test_a_release_or_revaluation_of_an_asset_the_loan_has_not_pledged_is_refused(world):
    chain, members, borrower = world
    loan_id = open_loan(chain, borrower, members[0])
    assert pledge(chain, members[0], loan_id, asset=HOUSE, kind="real_estate").ok
    refused = release(chain, members[0], loan_id)
    assert refused.code == "not_found"
    assert refused.message == (
        f"collateral.release field 'asset': asset {VAN[:16]} does not secure loan {loan_id[:16]} "
        "(it has 1 pledged asset: see its collateral)"
    )
    assert revalue(chain, members[0], loan_id, 5).code == "not_found"


def test_a_revaluation_changes_the_liens_value_on_the_asset_and_the_loan(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    assert pledge(chain, bank1, loan_id).ok
    result = revalue(chain, bank1, loan_id, 65_000)
    assert result.ok, result.message
    assert domain_events(result.events) == [
        {
            "event": "collateral.revalued",
            "loan_id": loan_id,
            "asset": VAN,
            "value": 65_000,
            "previous": 80_000,
            "currency": "EUR",
        }
    ]
    record = read_value(chain.state, asset_key(bytes.fromhex(VAN)))
    assert (record["liens"][0]["value"], record["liens"][0]["revalued_height"]) == (65_000, chain.height)
    assert stored(chain, loan_id)["collateral"][0]["value"] == 65_000
    entry = loan(chain, loan_id)["history"][-1]
    assert (entry["event"], entry["value"], entry["previous"]) == ("collateral.revalue", 65_000, 80_000)


# Who may -----------------------------------------------------------------------------------------


def test_only_the_loans_servicer_pledges_releases_or_revalues(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    for key in (bank2, borrower, members[2]):
        refused = pledge(chain, key, loan_id)
        assert refused.code == "forbidden"
        assert "only the lender whose offer was accepted may do this" in refused.message
    assert pledge(chain, bank1, loan_id).ok
    assert release(chain, bank2, loan_id).code == "forbidden"
    assert revalue(chain, borrower, loan_id, 1).code == "forbidden"
    assert liens(chain) == [(loan_id, 1, 80_000)]


def test_a_transfer_hands_the_duty_to_release_to_the_new_servicer(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    assert pledge(chain, bank1, loan_id).ok
    assert transfer(chain, bank1, loan_id, bank2).ok and accept(chain, bank2, loan_id).ok
    assert liens(chain) == [(loan_id, 1, 80_000)]  # the lien is the loan's: nothing to rewrite
    assert release(chain, bank1, loan_id).code == "forbidden"
    assert revalue(chain, bank2, loan_id, 70_000).ok
    # A refusal to another lender names the servicer now.
    other = open_loan(chain, borrower, bank1)
    assert f"already secures loan {loan_id[:16]} of bank2 (rank 1" in pledge(chain, bank1, other).message
    assert release(chain, bank2, loan_id).ok and liens(chain) is None


# When -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("before", ["applied", "offered"])
def test_a_loan_without_a_servicer_yet_takes_no_pledge(world, before):
    chain, members, borrower = world
    loan_id = ok(
        chain, borrower, "loan.apply", {"amount": 1_000, "currency": "EUR", "term_months": 6, "purpose": "x"}
    )
    loan_id = loan_id.tx_id.hex()
    if before == "offered":
        ok(chain, members[0], "loan.offer", {"loan_id": loan_id, "rate_bps": 500})
    refused = pledge(chain, members[0], loan_id)
    assert refused.code == "invalid_state"
    assert refused.message.endswith(
        f"in state {before!r} is refused: collateral.pledge is only allowed in state accepted, defaulted, "
        "disbursed, funded, funding, overdue, repaying"
    )


def test_an_accepted_a_funding_and_a_defaulted_loan_take_pledges(world):
    chain, members, borrower = world
    bank1 = members[0]
    accepted = open_loan(chain, borrower, bank1, disburse=False)
    funding = open_loan(chain, borrower, bank1, disburse=False, funding_window_ms=60_000)
    defaulted = open_loan(chain, borrower, bank1)
    default(chain, defaulted)
    for n, loan_id in enumerate((accepted, funding, defaulted)):
        asset = asset_id(
            "deposit",
            (
                "DE89 3704 0044 0532 0130 00",
                "GB82 WEST 1234 5698 7654 32",
                "FR14 2004 1010 0505 0001 3M02 606",
            )[n],
        )
        result = pledge(chain, bank1, loan_id, asset=asset, kind="deposit", value=10_000)
        assert result.ok, result.message
    assert [loan(chain, loan_id)["state"] for loan_id in (accepted, funding, defaulted)] == [
        "accepted",
        "funding",
        "defaulted",
    ]


def test_a_written_off_loan_keeps_its_liens_takes_no_new_pledge_and_its_servicer_releases_them(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    assert pledge(chain, bank1, loan_id).ok
    assert pledge(chain, bank1, loan_id, asset=HOUSE, kind="real_estate", value=30_000).ok
    default(chain, loan_id)
    assert write_off(chain, bank1, loan_id).ok
    assert liens(chain) == [(loan_id, 1, 80_000)]  # the claim survives the charge-off
    refused = pledge(chain, bank1, loan_id, asset=asset_id("vehicle", "1HGCM82633A004352"))
    assert refused.code == "invalid_state" and "the loan was written off, which is final" in refused.message
    assert "collateral.release and collateral.revalue" in refused.message
    assert revalue(chain, bank1, loan_id, 20_000).ok
    assert release(chain, bank1, loan_id).ok and liens(chain) is None
    assert liens(chain, HOUSE) == [(loan_id, 1, 30_000)]


# The ledger's own releases ------------------------------------------------------------------------


def released_by_ledger(result):
    return [
        (e["asset"], e["because"])
        for e in domain_events(result.events)
        if e["event"] == "collateral.released"
    ]


def test_the_payment_that_closes_a_loan_releases_its_liens(world):
    chain, members, borrower = world
    bank1 = members[0]
    repaid, prepaid = open_loan(chain, borrower, bank1), open_loan(chain, borrower, bank1)
    assert pledge(chain, bank1, repaid).ok
    assert pledge(chain, bank1, repaid, asset=HOUSE, kind="real_estate", value=30_000, rank=3).ok
    assert pledge(chain, bank1, prepaid, asset=asset_id("vehicle", "1HGCM82633A004352")).ok
    assert repay(chain, bank1, repaid, 10_000).ok and liens(chain) is not None  # not yet closed

    closed = repay(chain, bank1, repaid, loan(chain, repaid)["amount_owed"])
    assert closed.ok and loan(chain, repaid)["state"] == "closed"
    assert released_by_ledger(closed) == [(VAN, "closed"), (HOUSE, "closed")]
    assert [e["event"] for e in domain_events(closed.events)][0] == "loan.repaid"  # the payment first
    assert liens(chain) is None and liens(chain, HOUSE) is None
    assert "collateral" not in stored(chain, repaid)
    history = loan(chain, repaid)["history"]
    assert [(e["event"], e.get("because")) for e in history[-3:]] == [
        ("loan.repay", None),
        ("collateral.released", "closed"),
        ("collateral.released", "closed"),
    ]

    stored_loan = stored(chain, prepaid)
    payoff = sum(servicing.payoff(stored_loan, loan_schedule(stored_loan), chain.head_ms + 1000))
    closed = chain.run_one(chain.tx(bank1, "loan.prepay", {"loan_id": prepaid, "amount": payoff}))
    assert closed.ok, closed.message
    assert released_by_ledger(closed) == [(asset_id("vehicle", "1HGCM82633A004352"), "closed")]


def test_a_loan_that_goes_unfunded_releases_its_liens(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1, disburse=False, funding_window_ms=60_000)
    assert pledge(chain, bank1, loan_id).ok
    chain.head_ms += 60_000
    expired = chain.run_one(chain.tx(members[2], "loan.fund_expire", {"loan_id": loan_id}))
    assert expired.ok, expired.message
    assert released_by_ledger(expired) == [(VAN, "unfunded")]
    assert liens(chain) is None


def test_a_written_off_loans_liens_go_when_all_is_recovered_or_its_recovery_ends(world):
    chain, members, borrower = world
    bank1 = members[0]
    pledged = []
    for asset, kind in ((VAN, "vehicle"), (HOUSE, "real_estate")):
        loan_id = open_loan(chain, borrower, bank1)
        assert pledge(chain, bank1, loan_id, asset=asset, kind=kind).ok
        default(chain, loan_id)
        assert write_off(chain, bank1, loan_id).ok
        pledged.append(loan_id)
    recovered, ended = pledged
    lost = loan(chain, recovered)["net_loss"]["total"]
    part = recover(chain, bank1, recovered, lost - 1)
    assert part.ok and released_by_ledger(part) == [] and liens(chain) is not None
    last = recover(chain, bank1, recovered, 1)
    assert last.ok and released_by_ledger(last) == [(VAN, "recovered")] and liens(chain) is None

    finished = end(chain, bank1, ended)
    assert finished.ok and released_by_ledger(finished) == [(HOUSE, "recovery_ended")]
    assert liens(chain, HOUSE) is None
    assert loan(chain, ended)["history"][-1]["because"] == "recovery_ended"


def test_a_syndicated_loans_servicer_pledges_and_the_ledger_releases_on_close(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id, _ = syndicated_loan(chain, borrower, bank1)
    assert pledge(chain, bank1, loan_id, value=200_000).ok
    ok(chain, bank1, "loan.disburse", {"loan_id": loan_id})
    closed = repay(chain, bank1, loan_id, loan(chain, loan_id)["amount_owed"])
    assert closed.ok and released_by_ledger(closed) == [(VAN, "closed")]


# Malformed and before rules 6 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"asset": VAN.upper()}, "field 'asset' must match"),
        ({"asset": VAN[:62]}, "field 'asset' must match"),
        ({"asset": "vin:WVWZZZ1JZXW000001"}, "field 'asset' must match"),
        (
            {"kind": "boat"},
            "field 'kind' must be one of vehicle, real_estate, deposit, securities, equipment, other",
        ),
        ({"value": 0}, "field 'value' must be at least 1, got 0"),
        ({"value": MAX_AMOUNT + 1}, f"field 'value' must be at most {MAX_AMOUNT}"),
        ({"value": True}, "field 'value' must be int, got bool"),
        ({"value": "80000"}, "field 'value' must be int, got str"),
        ({"rank": 0}, "field 'rank' must be at least 1, got 0"),
        ({"rank": MAX_RANK + 1}, f"field 'rank' must be at most {MAX_RANK}"),
        ({"agreement_hash": "sha256:abc"}, "field 'agreement_hash' must match"),
        ({"vin": "WVWZZZ1JZXW000001"}, "unknown field 'vin'"),
    ],
)
def test_a_malformed_pledge_is_left_out_of_the_block(world, fields, expected):
    chain, members, borrower = world
    loan_id = open_loan(chain, borrower, members[0])
    payload = {"loan_id": loan_id, "asset": VAN, "kind": "vehicle", "value": 80_000, **fields}
    block, execution = chain.cut([chain.tx(members[0], "collateral.pledge", payload)])
    assert not block.txs
    [dropped] = execution.dropped
    assert dropped.code == "bad_payload" and "collateral.pledge" in dropped.message
    assert expected in dropped.message


@pytest.mark.parametrize(
    ("kind", "payload", "expected"),
    [
        ("collateral.pledge", {"asset": VAN, "kind": "vehicle"}, "missing field 'value'"),
        ("collateral.release", {}, "missing field 'asset'"),
        ("collateral.release", {"asset": VAN, "value": 1}, "unknown field 'value'"),
        ("collateral.revalue", {"asset": VAN}, "missing field 'value'"),
        ("collateral.revalue", {"asset": VAN, "value": -5}, "field 'value' must be at least 1"),
    ],
)
def test_a_malformed_release_or_revaluation_is_left_out_of_the_block(world, kind, payload, expected):
    chain, members, borrower = world
    loan_id = open_loan(chain, borrower, members[0])
    block, execution = chain.cut([chain.tx(members[0], kind, {"loan_id": loan_id, **payload})])
    assert not block.txs and execution.dropped[0].code == "bad_payload"
    assert expected in execution.dropped[0].message


def test_an_unknown_loan_takes_no_pledge(world):
    chain, members, _ = world
    refused = pledge(chain, members[0], "ab" * 32)
    assert refused.code == "not_found"
    assert refused.message == f"collateral.pledge field 'loan_id' names no known loan ({'ab' * 32})"


@pytest.mark.parametrize("kind", ["collateral.pledge", "collateral.release", "collateral.revalue"])
def test_under_rules_5_the_collateral_kinds_do_not_exist(kind):
    chain, members, borrower = with_borrower(version=5)
    loan_id = open_loan(chain, borrower, members[0])
    payload = {"loan_id": loan_id, "asset": VAN, "kind": "vehicle", "value": 1}
    fields = {"collateral.pledge": payload, "collateral.release": {"loan_id": loan_id, "asset": VAN}}
    tx = chain.tx(members[0], kind, fields.get(kind, {"loan_id": loan_id, "asset": VAN, "value": 1}))
    block, execution = chain.cut([tx])
    assert not block.txs
    assert [(d.code, d.tx_id) for d in execution.dropped] == [("unknown_kind", tx.id)]
    assert f"field 'kind': {kind} exists from rules version 6; block" in execution.dropped[0].message
