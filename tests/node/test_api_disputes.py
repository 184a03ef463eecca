"""``GET /disputes/{did}`` and the score routes over a credit dispute (rules 7), in-process: the views
are judged at the head block's time, as the node judges them."""

from __future__ import annotations

from lendchain.ledger.servicing import DAY_MS
from lendchain.node.api import build_app
from lendchain.node.config import ApiLimits
from tests.ledger.chain import seeded_key
from tests.ledger.test_disputes import REASON, SCORE_WITH_REPORT, SCORE_WITHOUT, start
from tests.node.test_api_protection import call
from tests.node.test_api_queries import LedgerNode


def test_disputes_route_answers_a_party_and_a_member_and_the_score_drops_the_overdue_report():
    chain, members, borrower, reported = start(dispute_response_ms=DAY_MS)
    payload = {
        "subject": borrower.did,
        "member": members[1].did,
        "report_height": reported,
        "reason_hash": REASON,
    }
    assert chain.run_one(chain.tx(borrower, "credit.dispute", payload)).ok
    app = build_app(LedgerNode(chain), None, ApiLimits())
    stranger = seeded_key(2).did
    party, member, missing, score = call(
        app,
        [
            ("GET", f"/disputes/{borrower.did}", {}),
            ("GET", f"/disputes/{members[1].did}", {}),
            ("GET", f"/disputes/{stranger}", {}),
            ("GET", f"/scores/{borrower.did}", {}),
        ],
    )
    assert party.status_code == 200
    assert (party.json()["kind"], party.json()["open"], party.json()["shown"][0]["status"]) == (
        "party",
        1,
        "open",
    )
    assert member.json()["kind"] == "member" and member.json()["shown"][0]["subject"] == borrower.did
    assert missing.status_code == 404
    assert missing.json()["message"] == f"{stranger} is no registered party and no member"
    assert score.json()["score"] == SCORE_WITH_REPORT

    chain.head_ms += DAY_MS  # the head block's time reaches the deadline
    member, score, shown = call(
        app,
        [
            ("GET", f"/disputes/{members[1].did}", {}),
            ("GET", f"/scores/{borrower.did}", {}),
            ("GET", f"/parties/{borrower.did}", {}),
        ],
    )
    assert (member.json()["open"], member.json()["overdue"]) == (0, 1)
    assert score.json()["score"] == SCORE_WITHOUT
    assert shown.json()["credit_score"]["score"] == SCORE_WITHOUT
    assert shown.json()["disputes"]["overdue"] == 1
