"""Credit disputes (rules 7): a borrower disputes its latest credit report, the furnisher answers
confirmed, corrected or withdrawn, and an unanswered dispute stops the report counting at its deadline.

Each test sets up a chain on rules 7 where bank2 (a bureau) reported the borrower, steps it with
the dispute kinds, and checks the results, the stored report and the score's explanation.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from lendchain.ledger import queries
from lendchain.ledger.dispute_records import time_text
from lendchain.ledger.servicing import DAY_MS
from lendchain.ledger.state import credit_key, read_value
from tests.ledger.chain import GENESIS_MS, Chain, make_genesis, seeded_key
from tests.ledger.test_membership import propose, vote_through

FAR = GENESIS_MS + 10**12
REPORT = {
    "income_band": 6,
    "dti_bps": 3000,
    "history_months": 40,
    "obligations": 1,
    "evidence_hash": "ab" * 32,
}
SCORE_WITH_REPORT = 300 + 120 + 100 + 110 + 40  # DEFAULT_SCORECARD's points for REPORT
SCORE_WITHOUT = 300
REASON = "cd" * 32
EVIDENCE = "ef" * 32
CORRECTION = {"income_band": 9, "dti_bps": 1500, "history_months": 40, "obligations": 0}


def rules7_chain(version=7, **app):
    genesis, members = make_genesis()
    return Chain.start(replace(genesis, app={"rules_version": version, **app})), members


def start(version=7, **app):
    """A chain where the borrower consented to bank2 and bank4 (bureaus), and bank2 reported it."""
    chain, members = rules7_chain(version, **app)
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    for bureau in (members[1], members[3]):
        grant = {"member": bureau.did, "scopes": "credit", "until_ms": FAR}
        assert chain.run_one(chain.tx(borrower, "consent.grant", grant)).ok
    assert report(chain, members[1], borrower).ok
    return chain, members, borrower, chain.height


@pytest.fixture
def world():
    return start()


def report(chain, member, borrower, **change):
    return chain.run_one(chain.tx(member, "credit.report", {"subject": borrower.did, **REPORT, **change}))


def dispute_tx(chain, signer, subject, member, height):
    payload = {"subject": subject.did, "member": member.did, "report_height": height, "reason_hash": REASON}
    return chain.tx(signer, "credit.dispute", payload)


def dispute(chain, borrower, member, height, signer=None):
    return chain.run_one(dispute_tx(chain, signer or borrower, borrower, member, height))


def answer_tx(chain, member, borrower, height, outcome, **features):
    payload = {
        "subject": borrower.did,
        "report_height": height,
        "outcome": outcome,
        "evidence_hash": EVIDENCE,
    }
    return chain.tx(member, "credit.dispute_answer", {**payload, **features})


def answer(chain, member, borrower, height, outcome, **features):
    return chain.run_one(answer_tx(chain, member, borrower, height, outcome, **features))


def score(chain, borrower, as_of_ms=None):
    return queries.lookup(chain.state, "score", borrower.did, as_of_ms=as_of_ms)


def sources(view):
    return {f["factor"]: f["source"] for f in view["factors"]}


def party(chain, borrower, as_of_ms=None):
    return queries.lookup(chain.state, "party", borrower.did, as_of_ms=as_of_ms)


def test_an_open_dispute_is_recorded_and_the_report_still_counts_noted_as_disputed(world):
    chain, members, borrower, reported = world
    result = dispute(chain, borrower, members[1], reported)
    assert result.ok, result.message
    opened_ms, deadline = chain.head_ms, chain.head_ms + 30 * DAY_MS  # the default dispute_response_ms
    assert list(result.events) == [
        {
            "event": "credit.disputed",
            "subject": borrower.did,
            "member": members[1].did,
            "report_height": reported,
            "deadline_ms": deadline,
        }
    ]
    view = score(chain, borrower, as_of_ms=deadline - 1)
    assert view["score"] == SCORE_WITH_REPORT
    assert sources(view)["income_band"] == (
        f"credit report by {members[1].did} at height {reported}; under dispute: disputed by the subject "
        f"since {time_text(opened_ms)} (height {chain.height}); its furnisher answers by {time_text(deadline)}"
    )
    disputes = party(chain, borrower, as_of_ms=deadline - 1)["disputes"]
    assert (disputes["count"], disputes["open"], disputes["overdue"]) == (1, 1, 0)
    [shown] = disputes["shown"]
    assert shown == {
        "subject": borrower.did,
        "furnisher": members[1].did,
        "furnisher_name": "bank2",  # read at read time: the record holds the DID only
        "report_height": reported,
        "reason_hash": REASON,
        "height": chain.height,
        "opened_ms": opened_ms,
        "deadline_ms": deadline,
        "status": "open",
        "report_current": True,
        "answer": None,
    }


def test_time_text_says_the_block_time_in_utc():
    assert time_text(GENESIS_MS) == "2023-11-14 22:13:20 UTC"
    assert time_text(2**62) == f"block time {2**62} ms"


def test_the_report_stops_counting_exactly_at_the_deadline_and_a_late_confirmation_restores_it():
    chain, members, borrower, reported = start(dispute_response_ms=DAY_MS)
    assert dispute(chain, borrower, members[1], reported).ok
    deadline = chain.head_ms + DAY_MS
    assert score(chain, borrower, as_of_ms=deadline - 1)["score"] == SCORE_WITH_REPORT
    overdue = score(chain, borrower, as_of_ms=deadline)
    assert overdue["score"] == SCORE_WITHOUT
    income = next(f for f in overdue["factors"] if f["factor"] == "income_band")
    assert (income["value"], income["points"]) == (None, 0)
    assert income["source"] == (
        f"the credit report by {members[1].did} at height {reported} does not count: disputed by the "
        f"subject since {time_text(deadline - DAY_MS)} (height {chain.height}), and its furnisher did not "
        f"answer by the deadline, {time_text(deadline)} (dispute_response_ms)"
    )
    assert party(chain, borrower, as_of_ms=deadline)["disputes"]["shown"][0]["status"] == "overdue"

    chain.head_ms = deadline - 1000  # the next block is at the deadline: the furnisher is late
    late = answer(chain, members[1], borrower, reported, "confirmed")
    assert late.ok, late.message
    assert late.events[0]["on_time"] is False and late.events[0]["report_was_current"] is True
    restored = score(chain, borrower, as_of_ms=chain.head_ms + DAY_MS)
    assert restored["score"] == SCORE_WITH_REPORT
    assert sources(restored)["dti_bps"] == (
        f"credit report by {members[1].did} at height {reported}; confirmed by its furnisher at height "
        f"{chain.height}, after its deadline, after the subject disputed it"
    )
    disputes = party(chain, borrower, as_of_ms=chain.head_ms)["disputes"]
    assert (disputes["answered_on_time"], disputes["answered_late"], disputes["open"]) == (0, 1, 0)


def test_a_lender_policy_prices_without_an_overdue_report_from_the_deadline_block():
    chain, members, borrower, reported = start(dispute_response_ms=DAY_MS)
    policy = {
        "currency": "EUR",
        "min_amount": 10_000,
        "max_amount": 100_000,
        "max_term_months": 24,
        "bands": "600:900,300:1500",
        "max_exposure": 10**9,
    }
    assert chain.run_one(chain.tx(members[0], "policy.publish", policy)).ok
    assert dispute(chain, borrower, members[1], reported).ok
    deadline = chain.head_ms + DAY_MS
    apply = {"amount": 50_000, "currency": "EUR", "term_months": 12, "purpose": "a van"}

    def offered_rate():
        result = chain.run_one(chain.tx(borrower, "loan.apply", apply))
        assert result.ok, result.message
        return queries.lookup(chain.state, "loan", result.tx_id.hex())["offers"][0]["rate_bps"]

    chain.head_ms = deadline - 2000  # the next block is 1 s before the deadline: the report counts
    assert offered_rate() == 900
    assert chain.head_ms == deadline - 1000  # this next one is at the deadline: it does not
    assert offered_rate() == 1500


@pytest.mark.parametrize(
    ("signer", "which", "code", "message"),
    [
        (
            "bank2",
            {},
            "forbidden",
            "credit.dispute is signed by the subject of the report itself: {bank2} is not {borrower}",
        ),
        (
            "other",
            {},
            "forbidden",
            "credit.dispute is signed by the subject of the report itself: {other} is not {borrower}",
        ),
        (
            "borrower",
            {"height": -1},
            "not_found",
            "credit.dispute: {borrower} has no latest credit report by {bank2} at height {earlier} (its latest "
            "is by {bank2} at height {reported}); only the latest report counts in the score, and only it can "
            "be disputed",
        ),
        (
            "borrower",
            {"member": "bank4"},
            "not_found",
            "credit.dispute: {borrower} has no latest credit report by {bank4} at height {reported}",
        ),
    ],
)
def test_dispute_refusals(world, signer, which, code, message):
    chain, members, borrower, reported = world
    other = seeded_key(2)
    assert chain.run_one(chain.tx(other, "party.register", {"role": "borrower"})).ok
    keys = {"bank2": members[1], "bank4": members[3], "borrower": borrower, "other": other}
    height = reported + which.get("height", 0)
    result = dispute(chain, borrower, keys[which.get("member", "bank2")], height, signer=keys[signer])
    names = {name: key.did for name, key in keys.items()}
    expected = message.format(**names, reported=reported, earlier=reported - 1)
    assert result.code == code and result.message.startswith(expected), result.message


def test_a_party_with_no_report_or_not_registered_cannot_dispute(world):
    chain, members, borrower, reported = world
    stranger = seeded_key(3)
    result = chain.run_one(dispute_tx(chain, stranger, stranger, members[1], reported))
    assert (result.code, result.message) == (
        "not_found",
        f"credit.dispute field 'subject' names no registered party ({stranger.did})",
    )
    assert chain.run_one(chain.tx(stranger, "party.register", {"role": "borrower"})).ok
    result = chain.run_one(dispute_tx(chain, stranger, stranger, members[1], reported))
    assert (result.code, result.message) == (
        "not_found",
        f"credit.dispute: {stranger.did} has no latest credit report by {members[1].did} at height "
        f"{reported} (it has none); only the latest report counts in the score, and only it can be disputed",
    )


def test_a_report_is_disputed_once(world):
    chain, members, borrower, reported = world
    assert dispute(chain, borrower, members[1], reported).ok
    opened = chain.height
    again = dispute(chain, borrower, members[1], reported)
    assert again.code == "duplicate"
    assert again.message.startswith(
        f"credit.dispute: {borrower.did} disputed the credit report by {members[1].did} at height {reported} "
        f"already, at height {opened}; it awaits its furnisher's answer, due by"
    )
    assert answer(chain, members[1], borrower, reported, "confirmed").ok
    answered = chain.height
    after = dispute(chain, borrower, members[1], reported)
    assert (after.code, after.message) == (
        "invalid_state",
        f"credit.dispute: {borrower.did} disputed the credit report by {members[1].did} at height {reported} "
        f"at height {opened}, and its furnisher answered already (confirmed, at height {answered}); a report "
        "is disputed once: a newer report may be disputed in turn",
    )


def test_a_correction_replaces_the_report_and_may_be_disputed_in_turn(world):
    chain, members, borrower, reported = world
    assert dispute(chain, borrower, members[1], reported).ok
    result = answer(chain, members[1], borrower, reported, "corrected", **CORRECTION)
    assert result.ok, result.message
    corrected_at = chain.height
    stored = read_value(chain.state, credit_key(borrower.did))
    assert stored == {
        **CORRECTION,
        "evidence_hash": bytes.fromhex(EVIDENCE),
        "reporter": members[1].did,
        "height": corrected_at,
        "corrects_height": reported,
    }
    view = score(chain, borrower, as_of_ms=chain.head_ms)
    assert view["score"] == 300 + 160 + 150 + 110 + 60
    assert sources(view)["obligations"] == (
        f"credit report by {members[1].did} at height {corrected_at}; correcting its report at height "
        f"{reported} after the subject disputed it"
    )
    answered = party(chain, borrower, as_of_ms=chain.head_ms)["disputes"]["shown"][0]
    assert (
        answered["status"] == "answered" and answered["report_current"] is False
    )  # the correction replaced it
    assert answered["answer"] == {
        "outcome": "corrected",
        "evidence_hash": EVIDENCE,
        "height": corrected_at,
        "answered_ms": chain.head_ms,
        "on_time": True,
        "report_was_current": True,
    }
    assert dispute(chain, borrower, members[1], corrected_at).ok  # the correction is a report of its own


def test_a_withdrawn_report_no_longer_counts_and_the_explanation_says_why(world):
    chain, members, borrower, reported = world
    assert dispute(chain, borrower, members[1], reported).ok
    assert answer(chain, members[1], borrower, reported, "withdrawn").ok
    assert read_value(chain.state, credit_key(borrower.did)) is None
    view = score(chain, borrower, as_of_ms=chain.head_ms)
    assert view["score"] == SCORE_WITHOUT
    assert sources(view)["history_months"] == (
        f"no credit report: the credit report by {members[1].did} at height {reported} was withdrawn by its "
        f"furnisher at height {chain.height}, after the subject disputed it"
    )
    assert report(chain, members[3], borrower).ok  # a newer report counts as any does
    assert (
        sources(score(chain, borrower))["income_band"]
        == f"credit report by {members[3].did} at height {chain.height}"
    )


@pytest.mark.parametrize(
    ("features", "outcome", "message"),
    [
        (
            {"income_band": 9},
            "confirmed",
            "credit.dispute_answer field 'income_band': only outcome corrected carries features, not confirmed",
        ),
        (
            {k: v for k, v in CORRECTION.items() if k != "dti_bps"},
            "corrected",
            "credit.dispute_answer with outcome corrected carries the corrected report: field 'dti_bps' is missing",
        ),
    ],
)
def test_answer_features_go_with_corrected_only(world, features, outcome, message):
    chain, members, borrower, reported = world
    assert dispute(chain, borrower, members[1], reported).ok
    result = answer(chain, members[1], borrower, reported, outcome, **features)
    assert (result.code, result.message) == ("bad_payload", message)


def test_a_correction_is_checked_as_a_report_is(world):
    chain, members, borrower, reported = world
    assert dispute(chain, borrower, members[1], reported).ok
    tx = answer_tx(chain, members[1], borrower, reported, "corrected", **{**CORRECTION, "income_band": 11})
    block, execution = chain.cut([tx])
    assert not block.txs
    assert execution.dropped[0].code == "bad_payload"
    assert (
        "credit.dispute_answer field 'income_band' must be at most 10, got 11" in execution.dropped[0].message
    )
    chain.nonces[members[1].did] -= 1  # the dropped tx took no nonce
    outcome = answer_tx(chain, members[1], borrower, reported, "ignored")
    block, execution = chain.cut([outcome])
    assert "field 'outcome' must be one of confirmed, corrected, withdrawn, got 'ignored'" in (
        execution.dropped[0].message
    )


def test_only_the_furnisher_answers_once_a_dispute_that_exists(world):
    chain, members, borrower, reported = world
    missing = answer(chain, members[1], borrower, reported, "confirmed")
    assert (missing.code, missing.message) == (
        "not_found",
        f"credit.dispute_answer: {borrower.did} has not disputed the credit report by {members[1].did} at "
        f"height {reported}",
    )
    assert dispute(chain, borrower, members[1], reported).ok
    other = answer(chain, members[3], borrower, reported, "withdrawn")
    assert (other.code, other.message) == (
        "forbidden",
        f"credit.dispute_answer: only the member that furnished a report answers its dispute: {borrower.did}'s "
        f"dispute of the report at height {reported} is for {members[1].did}, not {members[3].did}",
    )
    assert answer(chain, members[1], borrower, reported, "confirmed").ok
    confirmed_at = chain.height
    twice = answer(chain, members[1], borrower, reported, "withdrawn")
    assert (twice.code, twice.message) == (
        "invalid_state",
        f"credit.dispute_answer: {borrower.did}'s dispute of the credit report by {members[1].did} at height "
        f"{reported} was answered already (confirmed, at height {confirmed_at}); a dispute is answered once",
    )
    assert read_value(chain.state, credit_key(borrower.did))["height"] == reported  # still there


def test_a_newer_report_replaces_the_disputed_one_and_a_late_answer_changes_it_not(world):
    chain, members, borrower, reported = world
    assert dispute(chain, borrower, members[1], reported).ok
    assert report(chain, members[3], borrower, income_band=2).ok
    newer = chain.height
    view = score(chain, borrower, as_of_ms=chain.head_ms + 31 * DAY_MS)  # the old dispute is overdue
    assert sources(view)["income_band"] == f"credit report by {members[3].did} at height {newer}"
    result = answer(chain, members[1], borrower, reported, "withdrawn")
    assert result.ok and result.events[0]["report_was_current"] is False
    assert read_value(chain.state, credit_key(borrower.did))["height"] == newer  # not the one withdrawn
    stale = dispute(chain, borrower, members[1], reported)
    assert stale.code == "invalid_state"


def test_a_member_reports_a_subject_again_only_in_a_later_block_than_a_dispute_of_its_report():
    chain, members, borrower, reported = start()
    first = chain.tx(members[1], "credit.report", {"subject": borrower.did, **REPORT})
    disputed = dispute_tx(chain, borrower, borrower, members[1], chain.height + 1)
    again = chain.tx(members[1], "credit.report", {"subject": borrower.did, **REPORT, "obligations": 3})
    corrected = answer_tx(chain, members[1], borrower, chain.height + 1, "corrected", **CORRECTION)
    results = chain.run(first, disputed, again, corrected)
    assert [r.code for r in results] == ["ok", "ok", "invalid_state", "invalid_state"]
    assert results[2].message == (
        f"credit.report: {borrower.did} disputed the credit report by {members[1].did} at height {chain.height} "
        f"in this block, and a report is named by its member and height: report {borrower.did} again from "
        "the next block"
    )
    assert results[3].message.startswith("credit.dispute_answer: ")
    assert read_value(chain.state, credit_key(borrower.did))["obligations"] == 1  # the disputed one stays
    assert answer(chain, members[1], borrower, chain.height, "corrected", **CORRECTION).ok  # a block later


def test_a_member_view_counts_answers_on_time_late_and_overdue_now():
    chain, members, bank_borrower, first = start(dispute_response_ms=DAY_MS)
    bureau = members[1]
    others = [seeded_key(n) for n in (4, 5)]
    heights = {bank_borrower.did: first}
    for other in others:
        chain.onboard(other, members[3])
        grant = {"member": bureau.did, "scopes": "credit", "until_ms": FAR}
        assert chain.run_one(chain.tx(other, "consent.grant", grant)).ok
        assert report(chain, bureau, other).ok
        heights[other.did] = chain.height
    for subject in (bank_borrower, *others):
        assert dispute(chain, subject, bureau, heights[subject.did]).ok
    assert answer(chain, bureau, bank_borrower, first, "confirmed").ok  # on time
    chain.head_ms += DAY_MS
    assert answer(chain, bureau, others[0], heights[others[0].did], "confirmed").ok  # late
    view = queries.lookup(chain.state, "disputes", bureau.did, as_of_ms=chain.head_ms)
    assert view["kind"] == "member"
    counts = {k: view[k] for k in ("count", "open", "overdue", "answered_on_time", "answered_late")}
    assert counts == {"count": 3, "open": 0, "overdue": 1, "answered_on_time": 1, "answered_late": 1}
    assert [d["subject"] for d in view["shown"]] == [others[1].did, others[0].did, bank_borrower.did]
    assert queries.lookup(chain.state, "disputes", members[0].did)["count"] == 0  # a member with none
    assert queries.lookup(chain.state, "disputes", seeded_key(9).did) is None


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        ("credit.dispute", {"member": "M", "report_height": 1, "reason_hash": REASON}),
        ("credit.dispute_answer", {"report_height": 1, "outcome": "confirmed", "evidence_hash": EVIDENCE}),
    ],
)
def test_under_rules_6_the_dispute_kinds_do_not_exist(kind, payload):
    chain, members, borrower, _ = start(version=6)
    payload = {"subject": borrower.did, **payload}
    payload = {k: members[1].did if v == "M" else v for k, v in payload.items()}
    tx = chain.tx(borrower if kind == "credit.dispute" else members[1], kind, payload)
    block, execution = chain.cut([tx])
    assert not block.txs
    assert [(d.code, d.tx_id) for d in execution.dropped] == [("unknown_kind", tx.id)]
    assert f"field 'kind': {kind} exists from rules version 7; block" in execution.dropped[0].message


def test_under_rules_6_a_member_reports_a_subject_twice_in_one_block_as_before():
    chain, members, borrower, _ = start(version=6)
    first = chain.tx(members[1], "credit.report", {"subject": borrower.did, **REPORT})
    again = chain.tx(members[1], "credit.report", {"subject": borrower.did, **REPORT, "obligations": 3})
    assert [r.code for r in chain.run(first, again)] == ["ok", "ok"]
    view = party(chain, borrower)
    assert view["disputes"] == {
        "count": 0,
        "open": 0,
        "overdue": 0,
        "answered_on_time": 0,
        "answered_late": 0,
        "shown": [],
    }


def test_a_change_of_dispute_response_ms_applies_to_disputes_opened_from_then_on(world):
    chain, members, borrower, reported = world
    assert dispute(chain, borrower, members[1], reported).ok
    first_deadline = chain.head_ms + 30 * DAY_MS
    executed = vote_through(
        chain, members[0], members[1:3], "params.set", "dispute_response_ms", str(2 * DAY_MS)
    )
    assert executed.ok, executed.message
    assert report(chain, members[3], borrower).ok
    assert dispute(chain, borrower, members[3], chain.height).ok
    second_deadline = chain.head_ms + 2 * DAY_MS
    shown = party(chain, borrower, as_of_ms=chain.head_ms)["disputes"]["shown"]
    assert [d["deadline_ms"] for d in shown] == [second_deadline, first_deadline]


def test_dispute_response_ms_is_no_parameter_under_rules_6():
    chain, members, _, _ = start(version=6)
    refused = propose(chain, members[0], "params.set", "dispute_response_ms", str(DAY_MS))
    assert refused.code == "bad_payload"
    assert "'dispute_response_ms' is no chain parameter" in refused.message


@pytest.mark.parametrize("text", [str(DAY_MS - 1), str(180 * DAY_MS + 1)])
def test_dispute_response_ms_is_one_to_180_days(world, text):
    chain, members, _, _ = world
    refused = propose(chain, members[0], "params.set", "dispute_response_ms", text)
    assert (refused.code, refused.message) == (
        "bad_payload",
        "gov.propose params.set field 'value': dispute_response_ms is a whole number from 86400000 to "
        f"15552000000 (milliseconds a furnisher has to answer), not '{text}'",
    )
