"""CLI commands against the node's API app: what they ask for is the route meant, what they print reads.

Found by running every command against a node: a reference was pasted into
the URL unescaped, so ``loan show ../status`` fetched ``/status`` (and failed
on it with a traceback, or printed it with ``--json``) and ``party show
'x?from=1'`` sent a query parameter; escaped, a reference holding a ``/`` got
the node's "no route GET /loans/ab/cd"; ``gov show open`` printed a traceback;
``block show raw`` printed ``/blocks/raw``; ``block show`` printed the view as
JSON without ``--json``.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lendchain.cli import main
from lendchain.cli.loans import loan_text
from lendchain.ledger import queries
from lendchain.ledger.block import Block
from lendchain.ledger.dispute_records import time_text
from tests.cli.api_node import use_chain
from tests.ledger.test_domain_governance import propose
from tests.ledger.test_loan_transfer import open_loan, with_borrower


@pytest.fixture
def world():
    chain, members, borrower = with_borrower()
    loan_id = open_loan(chain, borrower, members[0])
    return chain, members, borrower, loan_id


NOT_HEX = "is not hex: a {} is 64 hex digits (32 bytes)"
NOT_A_DID = "'{}' is not a did:key (expected 'did:key:z…'): this route takes a party's or a member's did:key"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    ("args", "asked", "error"),
    [
        (
            ("loan", "show", "../status"),
            "/loans/..%2Fstatus",
            "loan id '../status' " + NOT_HEX.format("loan id"),
        ),
        (("loan", "show", "ab/cd"), "/loans/ab%2Fcd", "loan id 'ab/cd' " + NOT_HEX.format("loan id")),
        (
            ("loan", "show", ".."),
            "/loans/%2E%2E",
            "loan id '..' is not hex: a loan id is 64 hex digits (32 bytes)",
        ),
        (
            ("fund", "show", "../status"),
            "/loans/..%2Fstatus",
            "loan id '../status' " + NOT_HEX.format("loan id"),
        ),
        (("party", "show", "x?from=1"), "/parties/x%3Ffrom%3D1", NOT_A_DID.format("x?from=1")),
        (("party", "show", "x/y"), "/parties/x%2Fy", NOT_A_DID.format("x/y")),
        (
            ("party", "show", "did:key:z6Mk/x"),
            "/parties/did:key:z6Mk%2Fx",
            "'did:key:z6Mk/x' is not valid base58btc: this route takes a party's or a member's did:key",
        ),
        (("party", "exposure", "x#y"), "/exposure/x%23y", NOT_A_DID.format("x#y")),
        (
            ("gov", "members", "bank1/../../status"),
            "/members/bank1%2F..%2F..%2Fstatus",
            "no member bank1/../../status",
        ),
    ],
)
def test_a_reference_is_sent_as_one_path_segment(monkeypatch, world, args, asked, error):
    chain, *_ = world
    paths = use_chain(monkeypatch, chain)
    for as_json in ((), ("--json",)):
        answer = run(*as_json, *args)
        assert answer.exit_code == 1, answer.output
        assert answer.exception is None or isinstance(answer.exception, SystemExit)
        assert answer.output.startswith("Error: ")
        if error is not None:
            assert answer.output.strip() == f"Error: {error}"
    assert paths == [asked, asked]


@pytest.mark.parametrize("command", ["show", "status", "wait"])
def test_a_tx_command_refuses_what_is_no_tx_id_before_asking(monkeypatch, world, command):
    """``tx show stream`` asked ``GET /txs/stream`` and printed that the stream is a WebSocket."""
    chain, *_ = world
    paths = use_chain(monkeypatch, chain)
    for ref in ("stream", "check", "..", "ab/cd", "ab" * 31):
        refused = run("tx", command, ref)
        assert refused.exit_code == 2, refused.output
        assert f"{ref!r} is no tx id: a tx id is 64 hex digits (32 bytes)" in refused.output
    assert paths == []


def test_a_did_and_a_star_still_reach_their_views(monkeypatch, world):
    chain, members, borrower, _ = world
    paths = use_chain(monkeypatch, chain)
    exposure = run("party", "exposure", borrower.did)
    assert exposure.exit_code == 0, exposure.output
    assert exposure.output.splitlines()[0] == f"exposure of {borrower.did}"
    every = run("gov", "members", "*")
    assert every.exit_code == 0, every.output
    assert [line.split()[0] for line in every.output.splitlines()[::2]] == [
        "bank1",
        "bank2",
        "bank3",
        "bank4",
    ]
    assert paths == [f"/exposure/{borrower.did}", "/members/*"]


def test_loan_show_prints_the_loan_a_node_answers(monkeypatch, world):
    chain, members, borrower, loan_id = world
    use_chain(monkeypatch, chain)
    text = run("loan", "show", loan_id)
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[0] == f"loan {loan_id}: disbursed"
    assert f"  borrower        {borrower.did}" in lines
    assert f"  lender          bank1 ({members[0].did})" in lines  # the view names the lender
    as_json = json.loads(run("--json", "loan", "show", loan_id).output)
    assert (as_json["loan_id"], as_json["lender_name"]) == (loan_id, "bank1")
    assert as_json["member_names"] == {members[0].did: "bank1"}  # the borrower is a party: no name
    del as_json["lender_name"], as_json["member_names"]  # as a node of an older release answers
    assert f"  lender          {members[0].did}" in loan_text(as_json).splitlines()  # the DID alone


def test_servicing_reminders_says_when_each_instalment_is_due(monkeypatch, world):
    chain, _, borrower, loan_id = world
    use_chain(monkeypatch, chain)
    (reminder,) = queries.lookup(chain.state, "party", borrower.did, as_of_ms=chain.head_ms)["reminders"]
    text = run("servicing", "reminders", borrower.did)
    assert text.exit_code == 0, text.output
    assert text.output.splitlines()[2:] == [
        f"    #{due['number']} due {time_text(due['due_ms'])}: {due['amount']}"
        for due in reminder["instalments"]
    ]
    assert text.output.splitlines()[2].endswith(" UTC: " + str(reminder["instalments"][0]["amount"]))


def test_gov_show_names_a_proposal_by_its_id_and_sends_open_to_gov_list(monkeypatch, world):
    chain, members, *_ = world
    proposal_id = propose(chain, members[0], "scorecard.set", "base", "350").tx_id.hex()
    paths = use_chain(monkeypatch, chain)

    expires_ms = queries.lookup(chain.state, "proposal", proposal_id)["expires_ms"]
    shown = run("gov", "show", proposal_id)
    assert shown.exit_code == 0, shown.output
    assert shown.output.strip() == (
        f"{proposal_id}  scorecard.set base = 350  open, 1 votes (bank1), open until {time_text(expires_ms)}"
    )

    for as_json in ((), ("--json",)):
        refused = run(*as_json, "gov", "show", "open")
        assert refused.exit_code == 2, refused.output
        assert (
            "a proposal is named by the id of its gov.propose tx, 64 lowercase hex digits" in refused.output
        )
        assert "`lendchain gov list` shows the open ones" in refused.output

    listed = run("gov", "list")
    assert listed.output.startswith(f"{proposal_id}  scorecard.set base = 350  open, 1/3 votes (bank1)")
    assert paths == [f"/proposals/{proposal_id}", "/proposals/open"]


def test_block_show_prints_a_block_and_refuses_what_is_no_block(monkeypatch, world):
    chain, *_ = world
    paths = use_chain(monkeypatch, chain)
    second = Block.decode(chain.blocks[1][0])

    for ref in ("2", second.hash().hex()):
        text = run("block", "show", ref)
        assert text.exit_code == 0, text.output
        lines = text.output.splitlines()
        assert lines[0] == f"block    2  {second.hash().hex()}"
        assert f"proposer {second.header.proposer}" in lines
        assert f"parent   {second.header.prev_hash.hex()}" in lines
        assert f"txs      {second.header.tx_count}" in lines
        assert lines[-1] == "certified  no commit certificate stored"
    head = run("block", "show")
    assert head.output.splitlines()[0].split()[1] == str(chain.height)
    as_json = run("--json", "block", "show", "2")
    assert json.loads(as_json.output)["hash"] == second.hash().hex()

    for ref in ("raw", "latest", "1.5", "ab" * 31, "1/2"):
        refused = run("block", "show", ref)
        assert refused.exit_code == 2, refused.output
        assert f"{ref!r} is no block: give a height, a block hash (64 hex digits) or 'head'" in (
            refused.output
        )
    assert paths == ["/blocks/2", f"/blocks/{second.hash().hex()}", "/blocks/head", "/blocks/2"]


def test_party_exposure_lists_the_borrowers_loans_one_by_one(monkeypatch, world):
    chain, members, borrower, loan_id = world
    use_chain(monkeypatch, chain)
    view = queries.lookup(chain.state, "exposure", borrower.did, as_of_ms=chain.head_ms)
    (row,) = view["loans"]
    text = run("party", "exposure", borrower.did)
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[-2:] == [
        "loans (1)",
        f"  {loan_id[:16]}  disbursed   EUR  outstanding {row['outstanding']} of {row['amount']}  stage 1, 0 days past due",
    ]
