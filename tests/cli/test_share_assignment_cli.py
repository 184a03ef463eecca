"""``lendchain fund assign | accept-assignment | withdraw-assignment`` and what ``fund show`` and ``fund
positions`` say of shares offered and sold (rules 6; see ``lendchain.ledger.assignment``).

As in ``test_loan_transfer_cli``: the commands' payloads are executed on a
ledger test chain (rules 6), signed by the funder or investor the command
would sign as, and the chain answers the commands' reads as a node's API
would. The loan is ``test_share_assignment``'s: 120,000 EUR of bank1's,
funded by alice (30,000), bank1 (40,000) and bob (50,000).
"""

from __future__ import annotations

import pytest

from lendchain.cli import assignment as assignment_cli
from lendchain.cli import domain as domain_cli
from tests.cli.test_loan_transfer_cli import ChainClient, cli, execute
from tests.ledger.test_restructure_consent import ALICE, BOB, CAROL, funders_world, syndicate


def funds_cli(monkeypatch, version=6):
    chain, members, borrower = funders_world(version=version)
    bank1 = members[0]
    loan_id = syndicate(chain, borrower, bank1, [(ALICE, 30_000), (bank1, 40_000), (BOB, 50_000)])
    sent = []
    for module in (assignment_cli, domain_cli):
        monkeypatch.setattr(module, "client_from", lambda kw: ChainClient(chain))
    monkeypatch.setattr(
        assignment_cli, "send_tx", lambda ctx, kw, kind, payload: sent.append((kind, payload))
    )
    return chain, members, loan_id, sent


@pytest.fixture
def funds(monkeypatch):
    return funds_cli(monkeypatch)


def test_a_share_is_offered_shown_taken_and_both_positions_say_so(funds):
    chain, members, loan_id, sent = funds
    result = cli("fund", "assign", loan_id, "30000", "--to", CAROL.did, "--price", "27500")
    assert result.exit_code == 0, result.output
    assert sent[-1] == (
        "loan.share_assign",
        {"loan_id": loan_id, "to": CAROL.did, "amount": 30_000, "price": 27_500},
    )
    assert execute(chain, ALICE, sent).ok
    offered_at = chain.height
    shown = cli("fund", "show", loan_id).output.splitlines()
    assert (
        f"  offer  {ALICE.did} offers 30000 to {CAROL.did} for 27500 at height {offered_at} (pending)"
        in shown
    )
    asked = cli("fund", "positions", CAROL.did).output.splitlines()
    assert asked == [
        f"  offered: 30000 of loan {loan_id[:16]}… (disbursed, EUR) from {ALICE.did} for 27500 at height "
        f"{offered_at}: lendchain fund accept-assignment {loan_id} --from {ALICE.did}"
    ]
    offering = cli("fund", "positions", ALICE.did).output.splitlines()
    assert (
        f"    your offer of 30000 to {CAROL.did} for 27500 (height {offered_at}) is pending: lendchain fund "
        f"withdraw-assignment {loan_id} takes it back"
    ) in offering

    result = cli("fund", "accept-assignment", loan_id, "--from", ALICE.did)
    assert result.exit_code == 0, result.output
    assert sent[-1] == ("loan.share_accept", {"loan_id": loan_id, "from": ALICE.did})
    assert execute(chain, CAROL, sent).ok
    shown = cli("fund", "show", loan_id).output.splitlines()
    assert f"  {ALICE.did}  share 0  received 0  assigned" in shown
    assert f"  {CAROL.did}  share 30000  received 0  committed" in shown
    assert f"  sold   {ALICE.did} sold 30000 to {CAROL.did} for 27500 at height {chain.height}" in shown
    assert not any(line.startswith("  offer ") for line in shown)
    sold = cli("fund", "positions", ALICE.did).output.splitlines()
    assert any(" disbursed  assigned 0, received 0" in line for line in sold)
    assert "    bought 0, sold 30000" in sold
    assert "    bought 30000, sold 0" in cli("fund", "positions", CAROL.did).output.splitlines()


def test_accept_assignment_without_from_and_withdraw_assignment_send_the_loan_alone(funds):
    chain, members, loan_id, sent = funds
    assert cli("fund", "assign", loan_id, "1200", "--to", CAROL.did).exit_code == 0
    assert sent[-1] == ("loan.share_assign", {"loan_id": loan_id, "to": CAROL.did, "amount": 1_200})
    assert execute(chain, BOB, sent).ok
    assert cli("fund", "withdraw-assignment", loan_id).exit_code == 0
    assert sent[-1] == ("loan.share_withdraw", {"loan_id": loan_id})
    assert execute(chain, BOB, sent).ok
    assert cli("fund", "accept-assignment", loan_id).exit_code == 0
    assert sent[-1] == ("loan.share_accept", {"loan_id": loan_id})
    refused = execute(chain, CAROL, sent)
    assert refused.code == "invalid_state" and "no offer of a share to" in refused.message
    lapsed_or_gone = cli("fund", "show", loan_id).output
    assert " offer " not in lapsed_or_gone


@pytest.mark.parametrize(
    "args",
    [
        ["fund", "assign", "LOAN", "1200", "--to", "DID"],
        ["fund", "accept-assignment", "LOAN"],
        ["fund", "withdraw-assignment", "LOAN"],
    ],
)
def test_on_a_chain_before_rules_6_nothing_is_sent_and_the_upgrade_is_named(monkeypatch, args):
    chain, members, loan_id, sent = funds_cli(monkeypatch, version=5)
    args = [loan_id if a == "LOAN" else CAROL.did if a == "DID" else a for a in args]
    result = cli(*args)
    assert result.exit_code == 1
    kind = {"assign": "loan.share_assign", "accept-assignment": "loan.share_accept"}.get(
        args[1], "loan.share_withdraw"
    )
    assert f"this chain runs rules version 5 and {kind} needs version 6" in result.output
    assert "lendchain gov propose rules.upgrade 6 HEIGHT" in result.output
    assert "Traceback" not in result.output and sent == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["fund", "assign", "LOAN", "1200"], "Missing option '--to'"),
        (["fund", "assign", "LOAN", "0", "--to", "DID"], "Invalid value for 'AMOUNT'"),
        (["fund", "assign", "LOAN", "1200", "--to", "DID", "--price", "-1"], "Invalid value for '--price'"),
    ],
)
def test_assign_needs_the_buyer_and_a_positive_amount(funds, args, says):
    _, _, loan_id, sent = funds
    args = [loan_id if a == "LOAN" else CAROL.did if a == "DID" else a for a in args]
    result = cli(*args)
    assert result.exit_code == 2 and says in result.output and sent == []
