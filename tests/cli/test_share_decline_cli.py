"""``lendchain fund decline-assignment`` and what ``fund show`` and ``fund positions`` say of a share
offer declined (rules 7; see ``lendchain.ledger.share_decline``), and ``gov propose params.set
min_share_part_bps`` on a chain before rules 7.

As in ``test_share_assignment_cli``: the commands' payloads are executed on a ledger test chain (rules
7 unless said), and the chain answers the commands' reads as a node's API would.
"""

from __future__ import annotations

import pytest

from lendchain.cli import governance as gov_cli
from lendchain.ledger.writeoff import MAX_NOTE
from tests.cli.test_loan_transfer_cli import ChainClient, cli, execute
from tests.cli.test_share_assignment_cli import funds_cli
from tests.ledger.test_restructure_consent import ALICE, BOB, CAROL
from tests.ledger.test_share_assignment import offer, sell

DECLINE = "loan.share_decline"


@pytest.fixture
def funds(monkeypatch):
    return funds_cli(monkeypatch, version=7)


def test_a_share_offered_is_declined_and_fund_show_and_the_sellers_positions_say_so(funds):
    chain, members, loan_id, sent = funds
    assert offer(chain, ALICE, loan_id, CAROL, 10_000, price=9_000).ok
    offered_at = chain.height
    result = cli("fund", "decline-assignment", loan_id, "--note", "too dear")
    assert result.exit_code == 0, result.output
    assert sent[-1] == (DECLINE, {"loan_id": loan_id, "note": "too dear"})
    assert execute(chain, CAROL, sent).ok
    declined_at = chain.height
    shown = cli("fund", "show", loan_id).output.splitlines()
    assert (
        f"  declined  {CAROL.did} declined 10000 from {ALICE.did} for 9000 at height {declined_at} "
        f"(offered at {offered_at}): too dear"
    ) in shown
    assert not any(line.startswith("  offer ") for line in shown)
    seller = cli("fund", "positions", ALICE.did).output.splitlines()
    assert (
        f"    your offer of 10000 to {CAROL.did} for 9000 (height {offered_at}) was declined at height "
        f"{declined_at}: too dear"
    ) in seller


def test_decline_assignment_names_the_seller_when_asked_and_sends_no_note_unless_given(funds):
    chain, members, loan_id, sent = funds
    assert offer(chain, ALICE, loan_id, CAROL, 10_000).ok and offer(chain, BOB, loan_id, CAROL, 10_000).ok
    assert cli("fund", "decline-assignment", loan_id, "--from", BOB.did).exit_code == 0
    assert sent[-1] == (DECLINE, {"loan_id": loan_id, "from": BOB.did})
    assert execute(chain, CAROL, sent).ok
    line = next(line for line in cli("fund", "show", loan_id).output.splitlines() if "declined" in line)
    assert line.endswith(f"(offered at {chain.height - 1})")  # no note, no price


def test_a_position_sold_whole_says_so_instead_of_a_stage(funds):
    chain, members, loan_id, sent = funds
    sell(chain, ALICE, CAROL, loan_id, 30_000)
    [line] = [
        line for line in cli("fund", "positions", ALICE.did).output.splitlines() if loan_id[:16] in line
    ]
    assert line.endswith(" disbursed  assigned 0, received 0, sold whole: no stage")
    [kept] = [
        line for line in cli("fund", "positions", CAROL.did).output.splitlines() if loan_id[:16] in line
    ]
    assert ", stage 1, 0 days past due" in kept


@pytest.mark.parametrize(
    ("note", "says"),
    [
        ("   ", "Invalid value for '--note': must say why when given, not only spaces"),
        ("x" * (MAX_NOTE + 1), f"is {MAX_NOTE + 1} characters long; say it in at most {MAX_NOTE}"),
    ],
)
def test_a_note_that_says_nothing_or_too_much_is_refused_before_sending(funds, note, says):
    _, _, loan_id, sent = funds
    result = cli("fund", "decline-assignment", loan_id, "--note", note)
    assert result.exit_code == 2 and says in result.output and sent == []


def test_on_a_chain_before_rules_7_nothing_is_sent_and_the_upgrade_is_named(monkeypatch):
    chain, members, loan_id, sent = funds_cli(monkeypatch, version=6)
    result = cli("fund", "decline-assignment", loan_id)
    assert result.exit_code == 1
    assert f"this chain runs rules version 6 and {DECLINE} needs version 7" in result.output
    assert "lendchain gov propose rules.upgrade 7 HEIGHT" in result.output
    assert "Traceback" not in result.output and sent == []


def test_the_least_part_parameter_is_not_proposed_before_rules_7(monkeypatch):
    chain, members, loan_id, sent = funds_cli(monkeypatch, version=6)
    proposals = []
    monkeypatch.setattr(gov_cli, "client_from", lambda kw: ChainClient(chain))
    monkeypatch.setattr(gov_cli, "send_tx", lambda ctx, kw, kind, payload: proposals.append(payload))
    result = cli("gov", "propose", "params.set", "min_share_part_bps", "200")
    assert result.exit_code == 1 and proposals == []
    assert (
        "this chain runs rules version 6 and params.set min_share_part_bps needs version 7" in result.output
    )
    result = cli("gov", "propose", "params.set", "min_share_part_bps", "5001")
    assert result.exit_code == 2 and "from 1 to 5000 (basis points of the loan), not '5001'" in result.output
