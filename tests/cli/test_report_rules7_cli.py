"""``lendchain report guarantees DID`` and ``report disputes DID`` (rules 7): a guarantor's contingent
exposure and a member's or a party's disputes as they stood at a past block, replayed from a data
directory and judged at that block's time, printed as ``party exposure`` and ``credit disputes`` print
them under the report's heading.

Each test builds a rules-7 ledger test chain, writes it as a stopped node's data directory with commit
certificates (``report_chain.write_data_dir``), and runs the command on it.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from lendchain.cli import main
from lendchain.cli.disputes import describe_disputes
from lendchain.cli.guarantees import guarantor_text
from lendchain.ledger.servicing import DAY_MS
from lendchain.node.pointintime import utc_text
from tests.ledger.test_disputes import answer, dispute, report, start
from tests.ledger.test_domain_audit import CertifiedBlocks
from tests.ledger.test_guarantees import GINA, HAL, act, guarantee_world, guaranteed_by
from tests.ledger.test_write_off import default
from tests.node.report_chain import write_data_dir, write_genesis


def source_of(tmp_path, chain, members) -> list[str]:
    data_dir = write_data_dir(tmp_path / "data", chain, CertifiedBlocks(chain, members))
    return [
        "--data-dir",
        str(data_dir),
        "--genesis",
        str(write_genesis(tmp_path / "genesis.toml", chain.genesis)),
    ]


def reported(source: list[str], name: str, did: str, *at: str) -> dict:
    """The report's view (``--json``), after checking that its text is the view's own text."""
    as_json = CliRunner().invoke(main, ["--json", "report", name, did, *at, *source])
    assert as_json.exit_code == 0, as_json.output
    answer = json.loads(as_json.stdout)
    printed = CliRunner().invoke(main, ["report", name, did, *at, *source])
    assert printed.exit_code == 0, printed.output
    text = guarantor_text if name == "guarantees" else describe_disputes
    assert printed.stdout.split("\n\n", 1)[1].rstrip("\n") == text(answer["view"])
    assert answer["report"] == name
    return answer


def refused(source: list[str], name: str, did: str, *at: str) -> str:
    result = CliRunner().invoke(main, ["report", name, did, *at, *source])
    assert result.exit_code == 1 and result.stdout == ""
    return result.stderr.strip()


def test_a_guarantors_contingent_exposure_as_it_stood_at_each_height(tmp_path):
    """gina guarantees 60,000 of bank1's loan, bank2 30,000 (a bank guarantee), hal 10,000 until a
    time; the loan defaults after hal's expiry and bank1 calls 20,000 of gina's guarantee."""
    chain, members, borrower, loan_id = guarantee_world()
    bank1, bank2, bank3 = members[0], members[1], members[2]
    before = chain.height
    gina = guaranteed_by(chain, bank1, loan_id, amount=60_000)
    active = chain.height
    guaranteed_by(chain, bank1, loan_id, guarantor=bank2, kind="bank", amount=30_000)
    expires = chain.head_ms + 5_000
    guaranteed_by(chain, bank1, loan_id, guarantor=HAL, amount=10_000, expires_ms=expires)
    hal_active = chain.height
    default(chain, loan_id)  # far past hal's expiry
    assert act(chain, bank1, "call", loan_id, gina, amount=20_000).ok
    source = source_of(tmp_path, chain, members)

    message = refused(source, "guarantees", GINA.did, "--height", str(before))
    assert message.startswith(f"Error: no guarantee had been proposed to {GINA.did} at height {before} (")
    then = reported(source, "guarantees", GINA.did, "--height", str(active))
    assert then["basis"]["height"] == active
    assert then["view"]["currencies"] == {
        "EUR": {
            "contingent": 60_000,
            "called": 0,
            "active": 1,
            "proposed": 0,
            "called_total": 0,
            "called_guarantees": 0,
        }
    }
    assert guarantor_text(then["view"]).splitlines()[0] == f"{GINA.did}: 1 guarantee proposed to it"
    now = reported(source, "guarantees", GINA.did)
    assert now["view"]["currencies"]["EUR"] == {
        "contingent": 40_000,
        "called": 20_000,
        "active": 1,
        "proposed": 0,
        "called_total": 20_000,
        "called_guarantees": 1,
    }
    [row] = now["view"]["by_lender"]
    assert (row["name"], row["contingent"], row["called"]) == ("bank1", 40_000, 20_000)

    # A member that only guarantees has a report too; one that guarantees nothing is told so.
    bank = reported(source, "guarantees", bank2.did)["view"]
    assert [(g["kind"], g["status"], g["contingent"]) for g in bank["guarantees"]] == [
        ("bank", "active", 30_000)
    ]
    assert "no guarantee had been proposed to" in refused(source, "guarantees", bank3.did)

    # Expiry is judged at the report's block time: active at its block, expired at the head.
    assert [
        g["status"]
        for g in reported(source, "guarantees", HAL.did, "--height", str(hal_active))["view"]["guarantees"]
    ] == ["active"]
    hal = reported(source, "guarantees", HAL.did)["view"]
    assert [(g["status"], g["contingent"]) for g in hal["guarantees"]] == [("expired", 0)]
    assert hal["currencies"] == {}


def test_a_members_dispute_record_and_a_partys_disputes_as_they_stood_then(tmp_path):
    """The borrower disputes bank2's report; bank2 lets the deadline pass, then answers late."""
    chain, members, borrower, first_report = start(dispute_response_ms=DAY_MS)
    bank2, bank4 = members[1], members[3]
    assert dispute(chain, borrower, bank2, first_report).ok
    opened = chain.height
    deadline = chain.head_ms + DAY_MS
    chain.head_ms = deadline  # the next block is past the deadline
    assert report(chain, bank4, borrower).ok
    overdue = chain.height
    assert answer(chain, bank2, borrower, first_report, "confirmed").ok
    source = source_of(tmp_path, chain, members)

    def counts(view):
        return [view[key] for key in ("count", "open", "overdue", "answered_on_time", "answered_late")]

    assert counts(reported(source, "disputes", bank2.did, "--height", str(opened - 1))["view"]) == [
        0,
        0,
        0,
        0,
        0,
    ]
    assert counts(reported(source, "disputes", bank2.did, "--height", str(opened))["view"]) == [1, 1, 0, 0, 0]
    at_deadline = reported(source, "disputes", bank2.did, "--height", str(overdue))
    assert counts(at_deadline["view"]) == [1, 0, 1, 0, 0]
    assert at_deadline["view"]["kind"] == "member"
    assert counts(reported(source, "disputes", bank2.did)["view"]) == [1, 0, 0, 0, 1]

    # --as-of the last millisecond before the deadline: the block the dispute was opened in, still open.
    just_before = reported(source, "disputes", bank2.did, "--as-of", utc_text(deadline - 1))
    assert just_before["basis"]["height"] == opened and counts(just_before["view"]) == [1, 1, 0, 0, 0]

    party = reported(source, "disputes", borrower.did, "--height", str(overdue))["view"]
    assert party["kind"] == "party" and counts(party) == [1, 0, 1, 0, 0]
    [line] = describe_disputes(party).splitlines()[1:]
    assert line.endswith("(a newer report replaced it)")  # bank4's report at the deadline's block


def test_a_dispute_report_on_a_did_that_was_neither_party_nor_member_says_so(tmp_path):
    chain, members, borrower, _ = start()
    source = source_of(tmp_path, chain, members)
    message = refused(source, "disputes", GINA.did, "--height", "1")
    assert message.startswith(f"Error: {GINA.did} was no registered party and no member at height 1 (")
