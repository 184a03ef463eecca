"""``lendchain loan transfer | accept-transfer | withdraw-transfer`` and what ``loan show`` and
``loan portfolio`` say of a transfer.

The commands' payloads are executed on a ledger test chain (rules 4), signed
by the member the command would sign as, and the chain answers the commands'
reads as a node's API would.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from lendchain.cli import loans as loans_cli
from lendchain.cli import main
from lendchain.ledger import queries
from lendchain.ledger.kinds import lookup_kind
from lendchain.ledger.rules import rules_status
from lendchain.ledger.schema import check_payload
from tests.ledger.chain import seeded_key
from tests.ledger.test_admission import rules_world
from tests.ledger.test_loan_transfer import open_loan

# The query routes a ledger test chain answers, by the first part of their path, as a node does.
PATHS = {
    "loans": "loan",
    "portfolio": "portfolio",
    "exposure": "exposure",
    "positions": "positions",
    "collateral": "collateral",
    "members": "members",
    "params": "params",
    "parties": "party",
    "disputes": "disputes",
}


class ChainClient:
    """``/status`` and the query routes (``PATHS``) of a ledger test chain, as of its head block."""

    def __init__(self, chain):
        self.chain = chain

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def get(self, path):
        if path == "/status":
            return {"height": self.chain.height, "rules": rules_status(self.chain.state, self.chain.height)}
        kind, ref = path.strip("/").split("/")
        # As a node does: a timed view (a loan's forbearance) judges as of the head block's time.
        return queries.lookup(self.chain.state, PATHS[kind], ref, as_of_ms=self.chain.head_ms)


def world(monkeypatch, version=4):
    """A chain with bank1's disbursed loan; the CLI reads it and records what it would send."""
    chain, members = rules_world(version=version)
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    loan_id = open_loan(chain, borrower, members[0])
    sent = []
    monkeypatch.setattr(loans_cli, "client_from", lambda kw: ChainClient(chain))
    monkeypatch.setattr(loans_cli, "send_tx", lambda ctx, kw, kind, payload: sent.append((kind, payload)))
    return chain, members, loan_id, sent


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def execute(chain, signer, sent):
    """Run the one tx the last command sent, as ``signer``; its result."""
    kind, payload = sent.pop()
    check_payload(kind, lookup_kind(kind).schema, payload)
    return chain.run_one(chain.tx(signer, kind, payload))


def test_a_loan_is_offered_shown_pending_and_taken_over(monkeypatch):
    chain, members, loan_id, sent = world(monkeypatch)
    bank1, bank2 = members[0], members[1]
    assert cli("loan", "transfer", loan_id, "--to", bank2.did).exit_code == 0
    assert sent[-1] == ("loan.transfer", {"loan_id": loan_id, "to": bank2.did})
    assert execute(chain, bank1, sent).ok
    offered_at = chain.height

    shown = cli("loan", "show", loan_id).output
    assert f"  lender          bank1 ({bank1.did})" in shown
    assert f"  transfer        to bank2 ({bank2.did}), offered at height {offered_at} (pending)" in shown
    book = cli("loan", "portfolio", bank2.did).output
    assert "pending transfers" in book
    assert (
        f"  loan {loan_id} from bank1 ({bank1.did}) to bank2 ({bank2.did}) (offered at height {offered_at})"
        in book
    )

    assert cli("loan", "accept-transfer", loan_id).exit_code == 0
    assert sent[-1] == ("loan.transfer_accept", {"loan_id": loan_id})
    assert execute(chain, bank2, sent).ok
    shown = cli("loan", "show", loan_id).output
    assert f"  lender          bank2 ({bank2.did})" in shown and "transfer " not in shown
    assert "pending transfers" not in cli("loan", "portfolio", bank2.did).output


def test_withdraw_transfer_takes_the_offer_back(monkeypatch):
    chain, members, loan_id, sent = world(monkeypatch)
    cli("loan", "transfer", loan_id, "--to", members[1].did)
    assert execute(chain, members[0], sent).ok
    assert cli("loan", "withdraw-transfer", loan_id).exit_code == 0
    assert sent[-1] == ("loan.transfer_withdraw", {"loan_id": loan_id})
    assert execute(chain, members[0], sent).ok
    assert "transfer " not in cli("loan", "show", loan_id).output


def test_show_says_a_transfer_left_on_a_closed_loan_lapsed(monkeypatch):
    chain, members, loan_id, sent = world(monkeypatch)
    cli("loan", "transfer", loan_id, "--to", members[1].did)
    assert execute(chain, members[0], sent).ok
    owed = queries.lookup(chain.state, "loan", loan_id)["amount_owed"]
    assert chain.run_one(chain.tx(members[0], "loan.repay", {"loan_id": loan_id, "amount": owed})).ok
    assert "(lapsed: the loan is closed)" in cli("loan", "show", loan_id).output


@pytest.mark.parametrize(
    "args",
    [
        ["loan", "transfer", "LOAN", "--to", "DID"],
        ["loan", "accept-transfer", "LOAN"],
        ["loan", "withdraw-transfer", "LOAN"],
    ],
)
def test_on_a_chain_before_rules_4_nothing_is_sent_and_the_upgrade_is_named(monkeypatch, args):
    chain, members, loan_id, sent = world(monkeypatch, version=3)
    args = [loan_id if a == "LOAN" else members[1].did if a == "DID" else a for a in args]
    result = cli(*args)
    assert result.exit_code == 1
    kind = {"transfer": "loan.transfer", "accept-transfer": "loan.transfer_accept"}.get(
        args[1], "loan.transfer_withdraw"
    )
    assert f"this chain runs rules version 3 and {kind} needs version 4" in result.output
    assert "lendchain gov propose rules.upgrade 4 HEIGHT" in result.output
    assert "Traceback" not in result.output and sent == []


def test_transfer_needs_the_new_lender(monkeypatch):
    _, _, loan_id, sent = world(monkeypatch)
    result = CliRunner().invoke(main, ["loan", "transfer", loan_id])
    assert result.exit_code == 2 and "Missing option '--to'" in result.output and sent == []
