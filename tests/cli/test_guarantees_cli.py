"""``lendchain loan guarantee | accept-guarantee | withdraw-guarantee | release-guarantee | call-guarantee``
and what ``loan show`` and ``party exposure`` print of guarantees (rules 7; see ``ledger.guarantees``).

As in ``test_loan_transfer_cli``: the commands' payloads are executed on a ledger test chain, signed by
the party the command would sign as, and the chain answers the commands' reads as a node's API would.
"""

from __future__ import annotations

import hashlib

from lendchain.cli import guarantees as guarantees_cli
from lendchain.cli import loans as loans_cli
from tests.cli.test_loan_transfer_cli import ChainClient, cli, execute
from tests.ledger.test_guarantees import GINA, HAL, guarantee_world, propose
from tests.ledger.test_write_off import default

DEED = "de" * 32


def world(monkeypatch, version=7):
    chain, members, borrower, loan_id = guarantee_world(version=version)
    sent = []
    for module in (guarantees_cli, loans_cli):
        monkeypatch.setattr(module, "client_from", lambda kw: ChainClient(chain))
    monkeypatch.setattr(
        guarantees_cli, "send_tx", lambda ctx, kw, kind, payload: sent.append((kind, payload))
    )
    return chain, members, borrower, loan_id, sent


def test_a_guarantee_is_proposed_accepted_called_and_shown(monkeypatch, tmp_path):
    chain, members, borrower, loan_id, sent = world(monkeypatch)
    bank1 = members[0]
    deed = tmp_path / "deed.pdf"
    deed.write_bytes(b"signed guarantee deed")
    args = ["loan", "guarantee", loan_id, "--guarantor", GINA.did, "--amount", "60000", "--kind", "personal"]
    result = cli(*args, "--deed", str(deed), "--expires-ms", str(chain.head_ms + 10**11))
    assert result.exit_code == 0, result.output
    kind, payload = sent[-1]
    assert kind == "loan.guarantee"
    assert payload["evidence_hash"] == hashlib.sha256(b"signed guarantee deed").hexdigest()
    assert payload["amount"] == 60_000 and payload["guarantor"] == GINA.did and payload["kind"] == "personal"
    proposed = execute(chain, bank1, sent)
    assert proposed.ok, proposed.message
    guarantee_id = proposed.tx_id.hex()

    assert cli("loan", "accept-guarantee", loan_id).exit_code == 0  # the loan's one proposed guarantee
    assert sent[-1] == ("loan.guarantee_accept", {"loan_id": loan_id, "guarantee_id": guarantee_id})
    assert execute(chain, GINA, sent).ok

    shown = cli("loan", "show", loan_id).output
    assert "  guaranteed      60000 EUR of the principal at risk" in shown
    assert (
        f"  guarantee       {guarantee_id[:16]} personal by {GINA.did}: active, cap 60000, called 0" in shown
    )

    default(chain, loan_id)
    assert cli("loan", "call-guarantee", loan_id, "--amount", "25000").exit_code == 0
    assert sent[-1] == (
        "loan.guarantee_call",
        {"loan_id": loan_id, "guarantee_id": guarantee_id, "amount": 25_000},
    )
    assert execute(chain, bank1, sent).ok
    exposure = cli("party", "exposure", GINA.did).output
    assert "as guarantor (contingent exposure)" in exposure
    assert "  EUR  contingent 35000  called 25000  active 1  proposed 0  called ever 25000 on 1" in exposure
    assert (
        f"  guarantee {guarantee_id[:16]} of loan {loan_id[:16]} (defaulted): active, cap 60000" in exposure
    )
    assert "  EUR  guaranteed by others: 35000 on 1 loans" in cli("party", "exposure", borrower.did).output

    assert cli("loan", "release-guarantee", loan_id).exit_code == 0
    assert sent[-1] == ("loan.guarantee_release", {"loan_id": loan_id, "guarantee_id": guarantee_id})
    assert execute(chain, bank1, sent).ok
    released = cli("party", "exposure", GINA.did).output  # the call outlives the guarantee
    assert "  EUR  contingent 0  called 0  active 0  proposed 0  called ever 25000 on 1" in released


def test_withdraw_names_the_guarantee_when_the_loan_has_several(monkeypatch):
    chain, members, borrower, loan_id, sent = world(monkeypatch)
    first = propose(chain, members[0], loan_id, GINA).tx_id.hex()
    propose(chain, members[0], loan_id, HAL)
    result = cli("loan", "withdraw-guarantee", loan_id)
    assert result.exit_code == 2
    assert f"loan {loan_id} has 2 proposed guarantees ({first} by {GINA.did};" in result.output
    assert "name one with --guarantee ID" in result.output
    assert cli("loan", "withdraw-guarantee", loan_id, "--guarantee", first).exit_code == 0
    assert execute(chain, members[0], sent).ok
    bad = cli("loan", "withdraw-guarantee", loan_id, "--guarantee", "xyz")
    assert bad.exit_code == 2 and "must be a guarantee id" in bad.output
    none = cli("loan", "release-guarantee", loan_id)
    assert none.exit_code == 2 and "has 0 active guarantees (none)" in none.output


def test_a_guarantee_needs_exactly_one_deed_and_rules_7(monkeypatch):
    chain, members, borrower, loan_id, sent = world(monkeypatch)
    args = ["loan", "guarantee", loan_id, "--guarantor", GINA.did, "--amount", "1", "--kind", "bank"]
    missing = cli(*args)
    assert missing.exit_code == 2 and "give exactly one of --deed FILE or --deed-hash HEX" in missing.output
    bad = cli(*args, "--deed-hash", "XY")
    assert bad.exit_code == 2 and "must be 64 lowercase hex digits" in bad.output
    assert sent == []
    chain6, members6, borrower6, loan6, sent6 = world(monkeypatch, version=6)
    old = cli(
        "loan",
        "guarantee",
        loan6,
        "--guarantor",
        GINA.did,
        "--amount",
        "1",
        "--kind",
        "bank",
        "--deed-hash",
        DEED,
    )
    assert old.exit_code == 1 and "loan.guarantee" in old.output and "rules" in old.output
    assert sent6 == []
