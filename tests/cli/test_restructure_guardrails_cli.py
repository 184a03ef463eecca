"""The CLI of rules 6's guard rails on restructuring: ``lendchain loan withdraw-consent``, and the expiry
of a proposal in ``loan show`` and ``fund positions`` (see ``ledger.restructuring_limits`` and
``ledger.consent_withdrawal``).

As in ``test_restructure_consent_cli``: the commands' payloads are executed
on a ledger test chain, signed by the funder the command would sign as, and
the chain answers the commands' reads as a node's API would (as of its head
block's time).
"""

from __future__ import annotations

from lendchain.cli.domain import describe_positions
from lendchain.ledger.dispute_records import time_text
from lendchain.ledger.params import PARAMS
from tests.cli.test_loan_transfer_cli import cli, execute
from tests.cli.test_restructure_consent_cli import funders_cli
from tests.ledger.test_restructure import propose
from tests.ledger.test_restructure_consent import ALICE, consent

DEFAULT_OFFER_MS = PARAMS["restructure_offer_ms"].default


def test_a_funder_withdraws_its_consent_and_show_prints_the_proposals_expiry(monkeypatch):
    chain, members, loan_id, _, sent = funders_cli(monkeypatch, version=6)
    assert propose(chain, members[0], loan_id).ok
    offered_at, expires_ms = chain.height, chain.head_ms + DEFAULT_OFFER_MS
    assert consent(chain, ALICE, loan_id).ok
    shown = cli("loan", "show", loan_id).output.splitlines()
    assert (
        f"  restructuring   600 bps over 24 months (3 of holiday), offered at height {offered_at} "
        f"(pending, expires at {time_text(expires_ms)})"
    ) in shown
    assert f"  consented       {ALICE.did} 30000 at height {chain.height}" in shown

    result = cli("loan", "withdraw-consent", loan_id)
    assert result.exit_code == 0, result.output
    assert sent[-1] == ("loan.restructure_consent_withdraw", {"loan_id": loan_id})
    assert execute(chain, ALICE, sent).ok
    shown = cli("loan", "show", loan_id).output
    assert ALICE.did not in shown and "consent         40000 of 120000 committed" in shown

    chain.head_ms = expires_ms - 1000
    chain.run()  # the head block's time is the expiry: the node's views say so
    shown = cli("loan", "show", loan_id).output.splitlines()
    assert (
        f"  restructuring   600 bps over 24 months (3 of holiday), offered at height {offered_at} "
        f"(expired at {time_text(expires_ms)}: the servicer may propose again)"
    ) in shown
    assert not any(line.startswith("  consent ") for line in shown)


def test_on_a_chain_before_rules_6_no_withdrawal_is_sent_and_the_upgrade_is_named(monkeypatch):
    chain, _, loan_id, _, sent = funders_cli(monkeypatch, version=5)
    result = cli("loan", "withdraw-consent", loan_id)
    assert result.exit_code == 1
    assert (
        "this chain runs rules version 5 and loan.restructure_consent_withdraw needs version 6"
        in result.output
    )
    assert "lendchain gov propose rules.upgrade 6 HEIGHT" in result.output
    assert "Traceback" not in result.output and sent == []
    shown = cli("loan", "show", loan_id).output
    assert "expires" not in shown


def test_fund_positions_says_until_when_a_restructuring_waits_for_the_funders_consent():
    asked = {
        "height": 41,
        "rate_bps": 600,
        "term_months": 24,
        "holiday_months": 2,
        "expires_ms": 1_702_592_000_000,
    }
    position = {
        "loan_id": "ef" * 32,
        "state": "overdue",
        "status": "committed",
        "commitment": 30_000,
        "received": 0,
        "share": 30_000,
        "share_of": "outstanding",
        "recovered": 0,
        "forbearance": None,
        "consent_requested": asked,
    }
    view = {
        "did": "did:key:zAlice",
        "currencies": {},
        "positions": [position],
        "consents_requested": ["ef" * 32],
    }
    assert describe_positions(view).splitlines()[1:] == [
        "    restructuring proposed at height 41 (600 bps over 24 months, 2 of holiday) waits for your consent "
        f"until 2023-12-14 22:13:20 UTC: lendchain loan consent-restructure {'ef' * 32}"
    ]
