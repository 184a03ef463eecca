"""The CLI names the members it shows by DID (``name (did)``), from the names the views give
(``lendchain.ledger.member_names``), and the DID alone from a node of an older release.

Found after the names pass: ``fund show``, ``fund positions``, a loan's guarantees and ``tx show``'s
events listed member DIDs alone.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from lendchain.cli import main
from lendchain.cli.disputes import dispute_line
from lendchain.cli.reports import portfolio_text
from tests.cli.api_node import use_chain
from tests.cli.test_guarantees_cli import world as guarantees_world
from tests.cli.test_loan_transfer_cli import cli
from tests.cli.test_share_assignment_cli import funds_cli
from tests.ledger.test_guarantees import guaranteed_by
from tests.ledger.test_loan_transfer import with_borrower
from tests.ledger.test_restructure_consent import ALICE, CAROL
from tests.ledger.test_share_assignment import offer


def test_fund_show_and_positions_name_a_member_funder_and_leave_an_investor_a_did(monkeypatch):
    chain, members, loan_id, _ = funds_cli(monkeypatch)
    bank1 = members[0]
    assert offer(chain, bank1, loan_id, CAROL, 40_000).ok
    at = chain.height
    shown = cli("fund", "show", loan_id).output.splitlines()
    assert f"  bank1 ({bank1.did})  share 40000  received 0  committed" in shown
    assert f"  {ALICE.did}  share 30000  received 0  committed" in shown  # an investor: a party
    assert f"  offer  bank1 ({bank1.did}) offers 40000 to {CAROL.did} at height {at} (pending)" in shown
    [offered] = cli("fund", "positions", CAROL.did).output.splitlines()
    assert f"from bank1 ({bank1.did}) at height {at}: " in offered
    assert offered.endswith(
        f"lendchain fund accept-assignment {loan_id} --from {bank1.did}"
    )  # the DID to type
    as_json = json.loads(cli("--json", "fund", "show", loan_id).output)
    assert set(as_json) == {"loan_id", "state", "funding"}  # --json prints what it printed before


def test_loan_show_names_a_member_that_gives_a_bank_guarantee(monkeypatch):
    chain, members, _, loan_id, _ = guarantees_world(monkeypatch)
    guaranteed_by(chain, members[0], loan_id, members[1], amount=10_000, kind="bank")
    shown = cli("loan", "show", loan_id).output
    assert f" bank by bank2 ({members[1].did}): active, cap 10000" in shown


def test_tx_show_names_the_members_its_events_hold_and_asks_for_names_only_for_text(monkeypatch):
    chain, members, borrower = with_borrower()
    granted = chain.run_one(
        chain.tx(
            borrower, "consent.grant", {"member": members[0].did, "scopes": "credit", "until_ms": 10**13}
        )
    )
    paths = use_chain(monkeypatch, chain)
    tx_id = granted.tx_id.hex()

    as_json = CliRunner().invoke(main, ["--json", "tx", "show", tx_id])
    assert as_json.exit_code == 0, as_json.output
    assert paths == [f"/txs/{tx_id}"]  # no names for JSON: it prints the record as the node has it
    text = CliRunner().invoke(main, ["tx", "show", tx_id]).output.splitlines()
    assert text[1] == f"  consent.grant signed by {borrower.did}"  # a party: its DID alone
    assert f"member bank1 ({members[0].did}), party {borrower.did}," in text[-1]
    assert paths[1:] == [f"/txs/{tx_id}", "/members/*"]
    attested = next(  # onboarding the borrower: bank4 (kyc) attested it
        result.tx_id.hex()
        for _, execution in chain.blocks
        for result in execution.results
        if any(event["event"] == "kyc.attested" for event in result.events)
    )
    text = CliRunner().invoke(main, ["tx", "show", attested]).output.splitlines()
    assert text[1] == f"  kyc.attest signed by bank4 ({members[3].did})"


def test_an_older_nodes_views_without_names_print_the_dids():
    a, b = "did:key:z6MkAAAA", "did:key:z6MkBBBB"
    dispute = {
        "furnisher": a,
        "subject": b,
        "report_height": 4,
        "height": 5,
        "status": "answered",
        "answer": {"outcome": "confirmed", "height": 6, "on_time": True},
    }
    assert dispute_line(dispute, "party").startswith(f"report by {a} at height 4")
    assert dispute_line({**dispute, "furnisher_name": "bank2"}, "party").startswith(
        f"report by bank2 ({a}) at height 4"
    )
    book = {
        "name": "bank1",
        "did": a,
        "currencies": {},
        "largest_borrowers": {},
        "pending_transfers": [{"loan_id": "ab" * 32, "lender": a, "to": b, "offered_height": 9}],
    }
    assert (
        portfolio_text(book).splitlines()[-1] == f"  loan {'ab' * 32} from {a} to {b} (offered at height 9)"
    )
