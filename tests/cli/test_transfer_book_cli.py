"""``lendchain loan transfer-book`` and ``loan accept-transfers``: a whole book changes servicer.

The commands run against a ledger test chain on rules 4 behind the client
calls they make (``tests.cli.chain_node``): what they send executes in
blocks, and each check reads the loans back from the chain's state. bank1,
bank2 and bank3 are lenders, bank4 the kyc member.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from click.testing import CliRunner

from lendchain.cli import book, main
from lendchain.crypto import write_key_file
from lendchain.ledger import queries
from lendchain.ledger.state import next_nonce
from tests.cli.chain_node import ChainNode
from tests.ledger.chain import Chain, make_genesis, seeded_key

ROLES = [("lender",), ("lender", "bureau"), ("lender", "regulator"), ("kyc", "bureau")]
CURRENCIES = ["EUR"] * 15 + ["USD"] * 10 + ["GBP"] * 5


class World:
    """A chain whose lender bank1 services a book; the CLI talks to it through ``node``."""

    def __init__(self, tmp_path, monkeypatch, version: int = 4) -> None:
        genesis, self.members = make_genesis(ROLES)
        self.chain = Chain.start(replace(genesis, app={"rules_version": version}))
        self.node = ChainNode(self.chain)
        self.borrower = seeded_key(1)
        self.chain.onboard(self.borrower, self.members[3])
        self.bank1, self.bank2, self.bank3, self.bank4 = self.members
        self.keys = {}
        for name, key in zip(("bank1", "bank2", "bank3", "bank4"), self.members, strict=True):
            self.keys[name] = str(write_key_file(tmp_path / f"{name}.key", key))
        monkeypatch.setattr(book, "client_from", lambda kw: self.node)

    def lend(self, lender, currencies, disburse: bool = True) -> list[str]:
        """A loan per currency from ``lender`` to the borrower, a block per step of all of them."""
        applied = self.chain.run(
            *(
                self.chain.tx(
                    self.borrower,
                    "loan.apply",
                    {"amount": 10_000 + n, "currency": c, "term_months": 12, "purpose": "stock"},
                )
                for n, c in enumerate(currencies)
            )
        )
        loan_ids = [result.tx_id.hex() for result in applied]
        offers = self.run(lender, "loan.offer", [{"loan_id": i, "rate_bps": 700} for i in loan_ids])
        accepted = [{"loan_id": i, "offer_id": o.tx_id.hex()} for i, o in zip(loan_ids, offers, strict=True)]
        self.run(self.borrower, "loan.accept", accepted)
        if disburse:
            self.run(lender, "loan.disburse", [{"loan_id": i} for i in loan_ids])
        return loan_ids

    def run(self, key, kind, payloads):
        results = self.chain.run(*(self.chain.tx(key, kind, payload) for payload in payloads))
        assert [r.code for r in results] == ["ok"] * len(payloads), results
        return results

    def loan(self, loan_id):
        return queries.lookup(self.chain.state, "loan", loan_id)

    def pending_to(self, loan_ids) -> dict[str, str | None]:
        return {i: (self.loan(i).get("transfer") or {}).get("to") for i in loan_ids}


@pytest.fixture
def world(tmp_path, monkeypatch):
    return World(tmp_path, monkeypatch)


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_a_book_of_30_loans_in_three_currencies_is_offered_in_one_command_and_accepted_in_another(
    world, monkeypatch
):
    monkeypatch.setattr(book, "BATCH_TXS", 7)  # 5 batches on the stream
    loan_ids = world.lend(world.bank1, CURRENCIES)
    nonce = next_nonce(world.chain.state, world.bank1.did)

    offered = cli("loan", "transfer-book", "--to", world.bank2.did, "--key", world.keys["bank1"])
    assert offered.exit_code == 0, offered.output
    assert (
        "sent 30 of 30: offered 30, refused 0, not included 0, still pending 0, not sent 0" in offered.output
    )
    assert len(world.node.batches) == 5
    assert world.pending_to(loan_ids) == dict.fromkeys(loan_ids, world.bank2.did)
    assert {world.loan(i)["lender"] for i in loan_ids} == {world.bank1.did}  # nothing moves before acceptance
    assert next_nonce(world.chain.state, world.bank1.did) == nonce + 30  # one nonce each, none skipped

    accepted = cli("--json", "loan", "accept-transfers", "--key", world.keys["bank2"])
    assert accepted.exit_code == 0, accepted.output
    summary = json.loads(accepted.output)
    assert sorted(summary["accepted"]) == sorted(loan_ids) and summary["sent"] == 30
    assert summary["refused"] == [] and summary["not_sent"] == []
    assert {world.loan(i)["lender"] for i in loan_ids} == {world.bank2.did}
    assert world.pending_to(loan_ids) == dict.fromkeys(loan_ids)


def test_currency_and_limit_choose_the_loans_and_the_rest_is_counted_not_touched(world):
    loan_ids = world.lend(world.bank1, CURRENCIES)
    usd = [i for i, c in zip(loan_ids, CURRENCIES, strict=True) if c == "USD"]
    args = ["loan", "transfer-book", "--to", world.bank2.did, "--key", world.keys["bank1"]]

    first = cli("--json", *args, "--currency", "usd", "--limit", 4)
    summary = json.loads(first.output)
    assert first.exit_code == 0 and summary["currency"] == "USD"
    assert summary["offered"] == usd[:4] and summary["eligible"] == 10 and summary["left_by_limit"] == 6
    dry = cli(*args, "--currency", "USD", "--limit", 2, "--dry-run").output
    assert "would send 2" in dry and "already offered to bank2, not sent again: 4" in dry
    assert "left for a later run by --limit: 4" in dry

    rest = json.loads(cli("--json", *args, "--currency", "USD").output)
    assert rest["offered"] == usd[4:] and rest["already_offered"] == usd[:4]
    pending = world.pending_to(loan_ids)
    assert [i for i in loan_ids if pending[i]] == usd


def test_a_run_cut_short_says_what_was_not_sent_and_running_it_again_finishes_the_book(world, monkeypatch):
    monkeypatch.setattr(book, "BATCH_TXS", 7)
    loan_ids = world.lend(world.bank1, CURRENCIES)
    world.node.close_after = 2  # the stream drops after two batches of 7
    args = ["loan", "transfer-book", "--to", world.bank2.did, "--key", world.keys["bank1"]]

    cut_short = cli(*args)
    assert cut_short.exit_code == 1
    assert (
        "sent 14 of 30: offered 14, refused 0, not included 0, still pending 0, not sent 16"
        in cut_short.output
    )
    assert "the stream to the node failed: the stream ws://node/txs/stream closed (1006)" in cut_short.output
    assert sum(to is not None for to in world.pending_to(loan_ids).values()) == 14

    world.node.close_after = None
    again = cli("--json", *args)
    summary = json.loads(again.output)
    assert again.exit_code == 0
    assert len(summary["already_offered"]) == 14 and summary["sent"] == 16 and len(summary["offered"]) == 16
    assert world.pending_to(loan_ids) == dict.fromkeys(loan_ids, world.bank2.did)
    third = json.loads(cli("--json", *args).output)  # nothing left to send
    assert third["sent"] == 0 and len(third["already_offered"]) == 30


def test_a_loan_pending_to_another_lender_is_reported_and_left_alone(world):
    loan_ids = world.lend(world.bank1, ["EUR"] * 4)
    world.run(world.bank1, "loan.transfer", [{"loan_id": loan_ids[0], "to": world.bank3.did}])

    result = cli("loan", "transfer-book", "--to", world.bank2.did, "--key", world.keys["bank1"])
    assert result.exit_code == 0
    assert "sent 3 of 3: offered 3" in result.output
    assert (
        f"pending to another lender, left alone: 1\n    loan {loan_ids[0]} to bank3 ({world.bank3.did})"
        in result.output
    )
    assert world.pending_to(loan_ids) == {
        loan_ids[0]: world.bank3.did,
        **dict.fromkeys(loan_ids[1:], world.bank2.did),
    }


def test_accept_transfers_from_one_lender_takes_only_its_loans(world):
    from_bank1 = world.lend(world.bank1, ["EUR"] * 3)
    from_bank3 = world.lend(world.bank3, ["USD"] * 2)
    for lender in ("bank1", "bank3"):
        assert (
            cli("loan", "transfer-book", "--to", world.bank2.did, "--key", world.keys[lender]).exit_code == 0
        )

    only = json.loads(
        cli(
            "--json", "loan", "accept-transfers", "--key", world.keys["bank2"], "--from", world.bank3.did
        ).output
    )
    assert sorted(only["accepted"]) == sorted(from_bank3)
    assert {world.loan(i)["lender"] for i in from_bank1} == {world.bank1.did}
    rest = json.loads(cli("--json", "loan", "accept-transfers", "--key", world.keys["bank2"]).output)
    assert sorted(rest["accepted"]) == sorted(from_bank1)
    assert {world.loan(i)["lender"] for i in from_bank1 + from_bank3} == {world.bank2.did}


def test_refusals_are_grouped_by_why_with_their_loans_and_the_exit_code_says_so(world):
    loan_ids = world.lend(world.bank1, ["EUR"] * 5)
    world.run(world.bank1, "loan.transfer", [{"loan_id": i, "to": world.bank2.did} for i in loan_ids])
    withdrawn = loan_ids[1:3]
    # bank1 takes two offers back after bank2 read its book and before its acceptances execute.
    world.node.before_block.append(
        lambda: world.run(world.bank1, "loan.transfer_withdraw", [{"loan_id": i} for i in withdrawn])
    )
    args = ["loan", "accept-transfers", "--key", world.keys["bank2"]]

    result = cli("--json", *args)
    assert result.exit_code == 1
    summary = json.loads(result.output)
    assert sorted(summary["accepted"]) == sorted(set(loan_ids) - set(withdrawn))
    assert summary["refused"] == [
        {
            "code": "invalid_state",
            "message": "loan.transfer_accept on loan LOAN: no transfer is pending "
            "(the loan's lender offers one with loan.transfer)",
            "loans": withdrawn,
        }
    ]
    world.run(world.bank1, "loan.transfer", [{"loan_id": i, "to": world.bank2.did} for i in withdrawn])
    world.node.before_block.append(
        lambda: world.run(world.bank1, "loan.transfer_withdraw", [{"loan_id": withdrawn[0]}])
    )
    text = cli(*args).output
    assert "sent 2 of 2: accepted 1, refused 1, not included 0, still pending 0, not sent 0" in text
    assert "  refused (invalid_state, 1): loan.transfer_accept on loan LOAN: no transfer" in text
    assert f"    loan {withdrawn[0]}" in text


def test_a_batch_refused_while_the_mempool_is_full_is_sent_again(world, monkeypatch):
    monkeypatch.setattr(book, "BATCH_TXS", 4)
    loan_ids = world.lend(world.bank1, ["EUR"] * 10)
    world.node.full_once = {1}  # the second batch; the third waits behind its nonces meanwhile
    result = cli("loan", "transfer-book", "--to", world.bank2.did, "--key", world.keys["bank1"])
    assert result.exit_code == 0, result.output
    assert "offered 10, refused 0" in result.output
    assert world.pending_to(loan_ids) == dict.fromkeys(loan_ids, world.bank2.did)


def test_a_dry_run_lists_the_loans_and_sends_nothing(world):
    loan_ids = world.lend(world.bank1, ["EUR", "USD"])
    text = cli("loan", "transfer-book", "--to", world.bank2.did, "--key", world.keys["bank1"], "--dry-run")
    assert text.exit_code == 0
    assert "dry run, nothing sent: would send 2" in text.output
    assert f"    loan {loan_ids[1]}  USD 10001  disbursed  lender bank1 ({world.bank1.did})" in text.output
    doc = json.loads(
        cli("--json", "loan", "accept-transfers", "--key", world.keys["bank2"], "--dry-run").output
    )
    assert doc["dry_run"] is True and doc["would_send"] == []
    assert world.node.batches == [] and world.pending_to(loan_ids) == dict.fromkeys(loan_ids)


@pytest.mark.parametrize("command", ["transfer-book", "accept-transfers"])
def test_on_a_chain_before_rules_4_nothing_is_sent_and_the_upgrade_is_named(tmp_path, monkeypatch, command):
    world = World(tmp_path, monkeypatch, version=3)
    extra = ["--to", world.bank2.did] if command == "transfer-book" else []
    result = cli("loan", command, "--key", world.keys["bank1"], *extra)
    kind = "loan.transfer" if command == "transfer-book" else "loan.transfer_accept"
    assert result.exit_code == 1
    assert f"this chain runs rules version 3 and {kind} needs version 4" in result.output
    assert "lendchain gov propose rules.upgrade 4 HEIGHT" in result.output
    assert "Traceback" not in result.output and world.node.batches == []


@pytest.mark.parametrize(
    ("key", "to", "message"),
    [
        ("bank4", "bank2", "the key's member bank4 ({bank4}) does not hold the lender role"),
        ("bank1", "stranger", "--to {stranger} is no consortium member"),
        ("bank1", "bank4", "--to bank4 ({bank4}) does not hold the lender role"),
        ("bank1", "bank1", "--to {bank1} is the key's own member bank1: name another lender"),
    ],
)
def test_who_signs_and_who_receives_must_be_lender_members(world, key, to, message):
    dids = {"stranger": seeded_key(7).did, **{f"bank{n + 1}": m.did for n, m in enumerate(world.members)}}
    result = cli("loan", "transfer-book", "--key", world.keys[key], "--to", dids[to])
    assert result.exit_code == 1 and message.format(**dids) in result.output
    assert world.node.batches == []


def test_an_unreachable_node_is_one_sentence(tmp_path):
    key = str(write_key_file(tmp_path / "k.key", seeded_key(9)))
    args = ["loan", "transfer-book", "--to", seeded_key(8).did, "--key", key, "--node", "http://127.0.0.1:9"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "cannot reach node at http://127.0.0.1:9" in result.output and "Traceback" not in result.output
