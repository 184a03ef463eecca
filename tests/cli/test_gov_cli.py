"""``lendchain gov``: the payloads it signs pass the ledger's schemas; ``gov voters`` shows the schedule."""

from __future__ import annotations

from click.testing import CliRunner

from lendchain.cli import governance as gov_cli
from lendchain.cli import main
from lendchain.ledger.kinds import lookup_kind
from lendchain.ledger.schema import check_payload
from tests.ledger.chain import seeded_key
from tests.ledger.test_domain_cli import FakeClient


def test_gov_commands_send_schema_payloads(monkeypatch):
    sent = []
    monkeypatch.setattr(gov_cli, "send_tx", lambda ctx, kw, kind, payload: sent.append((kind, payload)))
    assert CliRunner().invoke(main, ["gov", "propose", "scorecard.set", "base", "320"]).exit_code == 0
    promote = ["gov", "propose", "member.voting", seeded_key(7).did, "voter"]
    assert CliRunner().invoke(main, promote).exit_code == 0
    assert CliRunner().invoke(main, ["gov", "vote", "cc" * 32]).exit_code == 0
    for kind, payload in sent:
        check_payload(kind, lookup_kind(kind).schema, payload)
    assert [kind for kind, _ in sent] == ["gov.propose", "gov.propose", "gov.vote"]
    assert sent[1][1] == {"action": "member.voting", "key": seeded_key(7).did, "value": "voter"}


def test_gov_voters_shows_the_voters_after_every_change_and_each_change(monkeypatch):
    view = {
        "voters_after_changes": ["bank1", "bank2", "bank3", "regulator1"],
        "changes": [
            {"member": "regulator1", "voting": True, "effective_height": 26},
            {"member": "bank4", "voting": False, "effective_height": 40},
        ],
    }
    monkeypatch.setattr(gov_cli, "client_from", lambda kw: FakeClient({"/voting/*": view}))
    result = CliRunner().invoke(main, ["gov", "voters"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "voting members after every scheduled change: bank1, bank2, bank3, regulator1",
        "  regulator1 votes from height 26",
        "  bank4 stops voting from height 40",
    ]
    quiet = {"voters_after_changes": ["bank1"], "changes": []}
    monkeypatch.setattr(gov_cli, "client_from", lambda kw: FakeClient({"/voting/*": quiet}))
    assert "no change of who votes since the genesis" in CliRunner().invoke(main, ["gov", "voters"]).output
