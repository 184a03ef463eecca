"""What the views say of recoveries after a write-off (``loan.recover``, rules 5; see ``ledger.writeoff``
and ``ledger.exposure``): the net loss per currency, each funder's share, the score, the audit export.

The chains start on rules 5 from the genesis (``test_loan_transfer.with_borrower``).
"""

from __future__ import annotations

import json

import pytest

from lendchain.ledger import queries
from lendchain.ledger.audit import export_loan, verify_export
from lendchain.ledger.funding import pro_rata
from tests.ledger.test_domain_audit import CertifiedBlocks
from tests.ledger.test_loan_transfer import APPLY, loan, ok, open_loan, repay, syndicated_loan, with_borrower
from tests.ledger.test_recovery import recover, written_off
from tests.ledger.test_write_off import default, score, write_off


@pytest.fixture
def world():
    return with_borrower(version=5)


def syndicated_written_off(chain, borrower, bank1):
    """bank1's syndicated loan (alice 30,000, bank1 40,000, bob 50,000), repaid in part, written off."""
    loan_id, commitments = syndicated_loan(chain, borrower, bank1)
    ok(chain, bank1, "loan.disburse", {"loan_id": loan_id})
    assert repay(chain, bank1, loan_id, 12_000).ok
    default(chain, loan_id)
    assert write_off(chain, bank1, loan_id).ok
    return loan_id, commitments


def test_each_funders_share_of_the_recoveries_is_pro_rata_and_the_shares_add_up_to_them(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id, commitments = syndicated_written_off(chain, borrower, bank1)
    weights = [amount for _, amount in commitments]
    principal = loan(chain, loan_id)["written_off"]["principal"]
    recovered = 0
    # Amounts whose exact shares are fractions of a unit, so that the largest remainders decide.
    for amount in (1, 7, 33_333, 2):
        assert recover(chain, bank1, loan_id, amount).ok
        recovered += amount
        shares = pro_rata(recovered, weights)
        net_shares = pro_rata(principal - recovered, weights)
        assert sum(shares) == recovered and sum(net_shares) == principal - recovered
        for (funder, _), share, net_share in zip(commitments, shares, net_shares, strict=True):
            positions = queries.lookup(chain.state, "positions", funder.did)
            [position] = positions["positions"]
            assert (position["share_of"], position["recovered"]) == ("written_off", share)
            lost = positions["written_off"]["EUR"]
            assert (lost["recovered"], lost["net_principal"]) == (share, net_share)
            assert lost["principal"] == position["share"]  # its share of the write-off, unchanged
    # 33,343 split 3:4:5 is 8,335.75 / 11,114.33 / 13,892.92: the two units left go to the largest
    # remainders, bob's then alice's.
    assert shares == [8_336, 11_114, 13_893]


def test_exposure_and_portfolio_report_recovered_and_net_amounts_per_currency(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id, commitments = syndicated_written_off(chain, borrower, bank1)
    live = open_loan(chain, borrower, bank2)
    lost = loan(chain, loan_id)["written_off"]
    principal, interest, penalty = lost["principal"], lost["interest"], lost["penalty"]
    gross = {"principal": principal, "interest": interest, "penalty": penalty, "loans": 1}

    assert recover(chain, bank1, loan_id, 50_000).ok
    expected = {
        **gross,
        "recovered": 50_000,
        "recovered_principal": 50_000,
        "net_principal": principal - 50_000,
        "net": principal + interest + penalty - 50_000,
    }
    exposure = queries.lookup(chain.state, "exposure", borrower.did)
    assert exposure["written_off"] == {"EUR": expected}
    assert exposure["currencies"]["EUR"]["outstanding"] == APPLY["amount"]  # only the live loan
    row = next(r for r in exposure["loans"] if r["loan_id"] == loan_id)
    assert (row["written_off"], row["recovered"], row["net_principal"]) == (
        principal,
        50_000,
        principal - 50_000,
    )
    assert "recovered" not in next(r for r in exposure["loans"] if r["loan_id"] == live)
    shares = pro_rata(principal, [amount for _, amount in commitments])
    book = queries.lookup(chain.state, "portfolio", bank1.did)
    never_moved = {"taken_over": 0, "taken_over_principal": 0, "handed_on": 0, "handed_on_principal": 0}
    assert book["written_off"] == {
        "EUR": {**expected, "funded_by_others": shares[0] + shares[2], "recovering_loans": 1, **never_moved}
    }

    # Past the principal, a recovery covers interest: the net principal loss is nil, interest is still lost.
    beyond = principal - 50_000 + interest // 2
    assert recover(chain, bank1, loan_id, beyond).ok
    totals = queries.lookup(chain.state, "portfolio", bank1.did)["written_off"]["EUR"]
    assert {k: totals[k] for k in ("recovered", "recovered_principal", "net_principal", "net")} == {
        "recovered": principal + interest // 2,
        "recovered_principal": principal,
        "net_principal": 0,
        "net": interest - interest // 2 + penalty,
    }
    view = loan(chain, loan_id)
    assert view["net_loss"] == {
        "principal": 0,
        "interest": interest - interest // 2,
        "penalty": penalty,
        "total": interest - interest // 2 + penalty,
    }
    assert queries.lookup(chain.state, "portfolio", bank2.did)["written_off"] == {}


def test_a_recovery_never_improves_the_score_and_the_history_shows_the_amounts(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    assert repay(chain, bank1, loan_id, 10_000).ok
    default(chain, loan_id)
    defaulted_score = score(chain, borrower.did)
    assert write_off(chain, bank1, loan_id).ok
    total = loan(chain, loan_id)["net_loss"]["total"]
    assert recover(chain, bank1, loan_id, total - 500).ok
    assert recover(chain, bank1, loan_id, 500).ok  # everything written off came back
    history = queries.lookup(chain.state, "party", borrower.did)["repayment_history"]
    assert history == {
        "on_time": history["on_time"],
        "late": history["late"],
        "defaults": 1,
        "closed": 0,
        "written_off": 1,
        "restructurings": 0,
        "recovered": {"EUR": total},
    }
    assert score(chain, borrower.did) == defaulted_score
    factors = queries.lookup(chain.state, "score", borrower.did)["factors"]
    assert next(f for f in factors if f["factor"] == "defaults")["points"] == -200
    assert loan(chain, loan_id)["defaulted_ms"] is not None


def test_the_repayment_history_adds_recoveries_up_per_currency_over_the_borrowers_loans(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    first = written_off(chain, borrower, bank1)
    second = written_off(chain, borrower, bank2)
    assert recover(chain, bank1, first, 3_000).ok
    assert recover(chain, bank2, second, 4_000).ok
    assert recover(chain, bank1, first, 500).ok
    history = queries.lookup(chain.state, "party", borrower.did)["repayment_history"]
    assert (history["defaults"], history["written_off"], history["recovered"]) == (2, 2, {"EUR": 7_500})


def test_an_audit_export_of_a_loan_with_recoveries_verifies_with_each_recovery_and_its_signer(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = written_off(chain, borrower, bank1)
    assert recover(chain, bank1, loan_id, 2_000, note="collateral sold").ok
    assert recover(chain, bank1, loan_id, 3_000).ok
    document = export_loan(chain.state, CertifiedBlocks(chain, members), bytes.fromhex(loan_id))
    assert [(e["kind"], e["signer"]) for e in document["entries"]][-3:] == [
        ("loan.write_off", bank1.did),
        ("loan.recover", bank1.did),
        ("loan.recover", bank1.did),
    ]
    assert verify_export(json.loads(json.dumps(document)), chain.genesis)["loan_id"] == loan_id
