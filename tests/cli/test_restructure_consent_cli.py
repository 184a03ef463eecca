"""``lendchain loan consent-restructure`` and what ``loan show`` says of the funders' consents.

As in ``test_loan_transfer_cli``: the commands' payloads are executed on a
ledger test chain (rules 5), signed by the funder or party the command would
sign as, and the chain answers the commands' reads as a node's API would.
"""

from __future__ import annotations

import pytest

from lendchain.cli import restructure_consent as consent_cli
from tests.cli.test_loan_transfer_cli import ChainClient, cli, execute, world
from tests.ledger.chain import seeded_key
from tests.ledger.test_loan_transfer import ok
from tests.ledger.test_restructure import accept_terms, propose, withdraw
from tests.ledger.test_restructure_consent import ALICE, BOB, syndicate
from tests.ledger.test_write_off import default

BORROWER = seeded_key(1)  # the borrower ``world`` onboards


def funders_cli(monkeypatch, version=5):
    """``world``'s chain with a syndicated loan of bank1's (alice 30,000, bank1 40,000, bob 50,000) when
    the rules allow one to be restructured; the CLI reads it and records what it would send."""
    chain, members, plain_loan, sent = world(monkeypatch, version=version)
    monkeypatch.setattr(consent_cli, "client_from", lambda kw: ChainClient(chain))
    monkeypatch.setattr(consent_cli, "send_tx", lambda ctx, kw, kind, payload: sent.append((kind, payload)))
    for investor in (ALICE, BOB):
        ok(chain, investor, "party.register", {"role": "investor"})
    bank1 = members[0]
    loan_id = syndicate(chain, BORROWER, bank1, [(ALICE, 30_000), (bank1, 40_000), (BOB, 50_000)])
    return chain, members, loan_id, plain_loan, sent


@pytest.fixture
def funded(monkeypatch):
    return funders_cli(monkeypatch)


def test_a_funder_consents_and_show_prints_the_share_what_is_missing_and_each_consent(funded):
    chain, members, loan_id, _, sent = funded
    bank1 = members[0]
    assert propose(chain, bank1, loan_id).ok
    offered_at = chain.height
    shown = cli("loan", "show", loan_id).output.splitlines()
    assert (
        "  consent         40000 of 120000 committed (33.33 %); a majority needs more than half, at least "
        "60001: missing 20001 (16.67 %)"
    ) in shown
    assert f"  consented       bank1 ({bank1.did}) 40000 at height {offered_at}, by proposing" in shown

    result = cli("loan", "consent-restructure", loan_id)
    assert result.exit_code == 0, result.output
    assert sent[-1] == ("loan.restructure_consent", {"loan_id": loan_id})
    assert execute(chain, ALICE, sent).ok
    shown = cli("loan", "show", loan_id).output.splitlines()
    assert (
        "  consent         70000 of 120000 committed (58.33 %); a majority needs more than half, at least "
        "60001: reached"
    ) in shown
    assert f"  consented       {ALICE.did} 30000 at height {chain.height}" in shown
    assert accept_terms(chain, BORROWER, loan_id).ok
    shown = cli("loan", "show", loan_id).output.splitlines()
    [restructured] = [line for line in shown if line.startswith("  restructured ")]
    assert restructured.endswith(" UTC; consented by 2 funders holding 70000")
    assert not any(line.startswith(("  consent ", "  consented ")) for line in shown)


def test_a_withdrawn_proposal_shows_no_consent_and_a_loan_without_funders_none_at_all(funded):
    chain, members, loan_id, plain_loan, _ = funded
    bank1 = members[0]
    assert propose(chain, bank1, loan_id).ok and withdraw(chain, bank1, loan_id).ok
    assert "consent" not in cli("loan", "show", loan_id).output
    assert propose(chain, bank1, plain_loan).ok
    shown = cli("loan", "show", plain_loan).output
    assert "restructuring   600 bps over 24 months" in shown and "consent" not in shown


def test_a_lapsed_proposal_shows_why_and_no_consent(funded):
    chain, members, loan_id, _, _ = funded
    assert propose(chain, members[0], loan_id).ok
    default(chain, loan_id)
    shown = cli("loan", "show", loan_id).output
    assert "(lapsed: the loan defaulted after it was offered (in state disbursed))" in shown
    assert "consent" not in shown


def test_on_a_chain_before_rules_5_nothing_is_sent_and_the_upgrade_is_named(monkeypatch):
    chain, members, loan_id, sent = world(monkeypatch, version=4)
    monkeypatch.setattr(consent_cli, "client_from", lambda kw: ChainClient(chain))
    monkeypatch.setattr(consent_cli, "send_tx", lambda ctx, kw, kind, payload: sent.append((kind, payload)))
    result = cli("loan", "consent-restructure", loan_id)
    assert result.exit_code == 1
    assert "this chain runs rules version 4 and loan.restructure_consent needs version 5" in result.output
    assert "lendchain gov propose rules.upgrade 5 HEIGHT" in result.output
    assert "Traceback" not in result.output and sent == []
