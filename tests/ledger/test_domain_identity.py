"""KYC attestations, consent, credit reports and the explained score (issue 6, items 1-3)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from lendchain.ledger import queries
from lendchain.ledger.identity import credit_key, kyc_key
from lendchain.ledger.scoring import DEFAULT_SCORECARD, REPORT_FACTORS, credit_score, table_points
from lendchain.ledger.state import read_value
from lendchain.node.config import load_genesis
from tests.ledger.chain import GENESIS_MS, Chain, make_genesis, seeded_key

ROLES = [("lender",), ("lender", "bureau"), ("regulator",), ("kyc", "bureau")]
EVIDENCE = "ab" * 32
FAR = GENESIS_MS + 10**12
REPORT = {
    "income_band": 6,
    "dti_bps": 3000,
    "history_months": 40,
    "obligations": 1,
    "evidence_hash": EVIDENCE,
}


@pytest.fixture
def world():
    genesis, members = make_genesis(ROLES)
    chain = Chain.start(genesis)
    borrower = seeded_key(1)
    assert chain.run_one(chain.tx(borrower, "party.register", {"role": "borrower"})).ok
    return chain, borrower, members


def test_kyc_attest_by_kyc_member_stores_only_level_expiry_and_hash(world):
    chain, borrower, members = world
    payload = {"subject": borrower.did, "level": 2, "expires_ms": FAR, "evidence_hash": EVIDENCE}
    assert chain.run_one(chain.tx(members[3], "kyc.attest", payload)).ok
    stored = {
        "level": 2,
        "expires_ms": FAR,
        "evidence_hash": EVIDENCE,
        "attester": members[3].did,
        "height": chain.height,
    }
    assert queries.to_json(read_value(chain.state, kyc_key(borrower.did))) == stored
    # The view names the attesting member too, read from its record at read time: nothing more is stored.
    party = queries.lookup(chain.state, "party", borrower.did)
    assert party["kyc"] == {**stored, "attester_name": "bank4"}


@pytest.mark.parametrize(
    ("signer", "change", "code", "names"),
    [
        (0, {}, "forbidden", "kyc role"),
        (3, {"expires_ms": GENESIS_MS}, "bad_payload", "'expires_ms'"),
        (3, {"subject": seeded_key(9).did}, "not_found", "'subject'"),
        (3, {"level": 4}, "bad_payload", "'level'"),
    ],
)
def test_kyc_attest_refusals(world, signer, change, code, names):
    chain, borrower, members = world
    payload = {"subject": borrower.did, "level": 2, "expires_ms": FAR, "evidence_hash": EVIDENCE} | change
    tx = chain.tx(members[signer], "kyc.attest", payload)
    if code == "bad_payload" and "level" in change:
        block, execution = chain.cut([tx])
        assert execution.dropped[0].code == code and names in execution.dropped[0].message
        return
    result = chain.run_one(tx)
    assert result.code == code and names in result.message


def test_loan_needs_valid_kyc_by_default():
    genesis, members = make_genesis(ROLES)
    assert "require_kyc" not in genesis.app
    chain = Chain.start(genesis)
    borrower = seeded_key(1)
    chain.run_one(chain.tx(borrower, "party.register", {"role": "borrower"}))
    apply = {"amount": 1000, "currency": "EUR", "term_months": 6, "purpose": "tools"}
    refused = chain.run_one(chain.tx(borrower, "loan.apply", apply))
    assert refused.code == "forbidden" and "KYC" in refused.message and "kyc.attest" in refused.message
    soon = chain.head_ms + 5000
    attest = {"subject": borrower.did, "level": 1, "expires_ms": soon, "evidence_hash": EVIDENCE}
    assert chain.run_one(chain.tx(members[3], "kyc.attest", attest)).ok
    assert chain.run_one(chain.tx(borrower, "loan.apply", apply)).ok
    # Once the attestation has expired (block time >= expires_ms), applying is refused again.
    chain.head_ms = soon
    expired = chain.run_one(chain.tx(borrower, "loan.apply", apply))
    assert expired.code == "forbidden" and "KYC" in expired.message


def test_a_genesis_can_turn_the_kyc_requirement_off_explicitly(tmp_path):
    genesis, _ = make_genesis(ROLES)
    text = tomli_w.dumps(replace(genesis, app={"require_kyc": False}).to_toml_doc())
    assert "[app]\nrequire_kyc = false" in text
    (tmp_path / "genesis.toml").write_text(text)
    chain = Chain.start(load_genesis(tmp_path / "genesis.toml"))
    borrower = seeded_key(1)
    chain.run_one(chain.tx(borrower, "party.register", {"role": "borrower"}))
    apply = {"amount": 1000, "currency": "EUR", "term_months": 6, "purpose": "tools"}
    assert chain.run_one(chain.tx(borrower, "loan.apply", apply)).ok


def test_credit_report_needs_unexpired_consent_and_revocation_ends_it(world):
    chain, borrower, members = world
    bureau = members[3]
    report = {"subject": borrower.did, **REPORT}
    refused = chain.run_one(chain.tx(bureau, "credit.report", report))
    assert refused.code == "forbidden" and "consented" in refused.message
    grant = {"member": bureau.did, "scopes": "credit,kyc", "until_ms": FAR}
    assert chain.run_one(chain.tx(borrower, "consent.grant", grant)).ok
    assert chain.run_one(chain.tx(bureau, "credit.report", report)).ok
    stored = queries.lookup(chain.state, "party", borrower.did)["credit_report"]
    assert (stored["dti_bps"], stored["reporter"], stored["reporter_name"]) == (3000, bureau.did, "bank4")
    assert "reporter_name" not in read_value(chain.state, credit_key(borrower.did))
    # A regulator has neither role.
    assert chain.run_one(chain.tx(members[2], "credit.report", report)).code == "forbidden"
    assert chain.run_one(chain.tx(borrower, "consent.revoke", {"member": bureau.did})).ok
    refused = chain.run_one(chain.tx(bureau, "credit.report", report))
    assert refused.code == "forbidden"
    again = chain.run_one(chain.tx(borrower, "consent.revoke", {"member": bureau.did}))
    assert again.code == "not_found" and "'member'" in again.message


def test_consent_expires_with_block_time(world):
    chain, borrower, members = world
    bureau = members[3]
    # Blocks are 1000 ms apart in the test chain: valid for the two next blocks only.
    until = chain.head_ms + 2500
    assert chain.run_one(
        chain.tx(borrower, "consent.grant", {"member": bureau.did, "scopes": "credit", "until_ms": until})
    ).ok
    assert chain.run_one(chain.tx(bureau, "credit.report", {"subject": borrower.did, **REPORT})).ok
    assert (
        chain.run_one(chain.tx(bureau, "credit.report", {"subject": borrower.did, **REPORT})).code
        == "forbidden"
    )


def test_consent_to_a_non_member_is_refused(world):
    chain, borrower, _ = world
    grant = {"member": seeded_key(9).did, "scopes": "credit", "until_ms": FAR}
    result = chain.run_one(chain.tx(borrower, "consent.grant", grant))
    assert result.code == "not_found" and "'member'" in result.message


def test_score_query_explains_each_factor(world):
    chain, borrower, members = world
    bureau = members[3]
    chain.run_one(
        chain.tx(borrower, "consent.grant", {"member": bureau.did, "scopes": "credit", "until_ms": FAR})
    )
    before = queries.lookup(chain.state, "score", borrower.did)
    assert before["score"] == DEFAULT_SCORECARD["base"]
    chain.run_one(chain.tx(bureau, "credit.report", {"subject": borrower.did, **REPORT}))
    score = queries.lookup(chain.state, "score", borrower.did)
    points = {f["factor"]: f["points"] for f in score["factors"]}
    # income band 6 -> 120, dti 3000 -> 100, 40 months -> 110, 1 obligation -> 40
    assert points == {
        "base": 300,
        "income_band": 120,
        "dti_bps": 100,
        "history_months": 110,
        "obligations": 40,
        "on_time": 0,
        "late": 0,
        "defaults": 0,
    }
    assert score["score"] == 670 == sum(points.values())
    assert bureau.did in score["factors"][1]["source"]
    assert queries.lookup(chain.state, "score", seeded_key(9).did) is None


def test_table_points_bounds():
    table = [[0, 5], [10, 3], [20, 1]]
    assert [table_points(table, v) for v in (0, 1, 10, 11, 20, 21)] == [5, 3, 3, 1, 1, 1]


reports = st.none() | st.fixed_dictionaries(
    {
        "income_band": st.integers(1, 10),
        "dti_bps": st.integers(0, 1_000_000),
        "history_months": st.integers(0, 1200),
        "obligations": st.integers(0, 1000),
        "reporter": st.just("did:key:zX"),
        "height": st.integers(0, 100),
    }
)
histories = st.fixed_dictionaries(
    {
        "on_time": st.integers(0, 500),
        "late": st.integers(0, 500),
        "defaults": st.integers(0, 10),
        "closed": st.integers(0, 10),
        "written_off": st.integers(0, 10),
        "restructurings": st.integers(0, 10),
    }
)


@given(reports, histories, st.integers(-2000, 2000))
def test_explanation_adds_up_to_a_bounded_integer_score(report, history, base):
    card = {**DEFAULT_SCORECARD, "base": base}
    score = credit_score(report, history, card)
    assert isinstance(score.total, int)
    assert card["min"] <= score.total <= card["max"]
    assert sum(f.points for f in score.factors) == score.total
    assert [f.name for f in score.factors][: 1 + len(REPORT_FACTORS)] == ["base", *REPORT_FACTORS]
    assert credit_score(report, history, card) == score


@given(reports, histories)
def test_more_on_time_payments_never_lower_the_score(report, history):
    better = {**history, "on_time": history["on_time"] + 1}
    assert credit_score(report, better).total >= credit_score(report, history).total
    worse = {**history, "defaults": history["defaults"] + 1}
    assert credit_score(report, worse).total <= credit_score(report, history).total
