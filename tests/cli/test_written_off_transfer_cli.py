"""The CLI of rules 6's written-off recoveries: ``loan end-recovery``, ``loan transfer-book`` and
``loan accept-transfers`` with written-off loans (``--loans``), and what ``loan show``, ``loan
portfolio``, ``loan books`` and ``gov members`` say of a recovery that changed servicer.

As in ``test_recovery_cli`` and ``test_transfer_book_cli``: the commands run
against ledger test chains behind the client calls they make.
"""

from __future__ import annotations

import json

import pytest

from lendchain.cli.governance import describe_members
from lendchain.ledger import queries
from lendchain.ledger.servicing import DAY_MS
from tests.cli import test_loan_transfer_cli as transfer_cli
from tests.cli.test_loan_transfer_cli import cli, execute, world
from tests.cli.test_transfer_book_cli import World
from tests.ledger.test_write_off import default, write_off

REASON = "borrower insolvent"


@pytest.fixture
def written_off(monkeypatch):
    """bank1's loan, defaulted and written off on a rules-6 chain; the CLI reads the chain."""
    for kind in ("exposure", "members"):
        monkeypatch.setitem(transfer_cli.PATHS, kind, kind)
    chain, members, loan_id, sent = world(monkeypatch, version=6)
    default(chain, loan_id)
    assert write_off(chain, members[0], loan_id).ok
    return chain, members, loan_id, sent


def test_the_recovery_moves_and_ends_and_show_portfolio_and_books_say_so(written_off):
    chain, members, loan_id, sent = written_off
    bank1, bank2 = members[0], members[1]
    assert cli("loan", "recover", loan_id, "--amount", "4000").exit_code == 0
    assert execute(chain, bank1, sent).ok
    assert cli("loan", "transfer", loan_id, "--to", bank2.did).exit_code == 0
    assert execute(chain, bank1, sent).ok
    assert cli("loan", "accept-transfer", loan_id).exit_code == 0
    assert execute(chain, bank2, sent).ok
    moved_at = chain.height
    assert cli("loan", "recover", loan_id, "--amount", "1000").exit_code == 0
    assert execute(chain, bank2, sent).ok
    lost = queries.lookup(chain.state, "loan", loan_id)["written_off"]
    principal, whole = lost["principal"], lost["principal"] + lost["interest"] + lost["penalty"]

    assert cli("loan", "end-recovery", loan_id, "--reason", REASON).exit_code == 0
    assert sent[-1] == ("loan.recovery_end", {"loan_id": loan_id, "reason": REASON})
    assert execute(chain, bank2, sent).ok
    shown = cli("loan", "show", loan_id).output.splitlines()
    assert f"  lender          bank2 ({bank2.did})" in shown
    assert (
        f"  recovery moved  at height {moved_at} from bank1 ({bank1.did}) to bank2 ({bank2.did}) "
        "(recovered 4000 by then)" in (shown)
    )
    assert shown[-1] == f"  recovery ended  at height {chain.height}: {REASON} (the net loss is final)"

    assert cli("loan", "portfolio", bank2.did).output.splitlines()[-1] == (
        f"  EUR  recovery changed servicer: taken over {whole - 4000} (principal {principal - 4000})"
        "  handed on 0 (principal 0)  recovering 0 loans"
    )
    assert f"  EUR  written off: principal {principal}" in cli("loan", "portfolio", bank1.did).output

    view = json.loads(cli("--json", "loan", "books").output)
    rows = {row["member"]: row for row in view["books"]}
    assert {name: (r["written_off"], r["recovered"], r["net_written_off"]) for name, r in rows.items()} == {
        "bank1": (principal, 4000, 0),
        "bank2": (0, 1000, principal - 5000),
    }
    assert (rows["bank1"]["recovery_handed_on"], rows["bank2"]["recovery_taken_over"]) == (
        principal - 4000,
        principal - 4000,
    )
    total = view["totals"]["EUR"]
    assert (total["written_off"], total["recovered"], total["net_written_off"]) == (
        principal,
        5000,
        principal - 5000,
    )
    text = cli("loan", "books").output.splitlines()
    at = text.index(
        "recoveries that changed servicer: principal still lost when taken over and handed on "
        "(written off + taken over - recovered - handed on = net)"
    )
    assert text[at + 1].split() == ["member", "cur", "taken", "over", "handed", "on", "recovering"]
    assert text[at + 2].split() == ["bank1", "EUR", "0", str(principal - 4000), "0"]
    assert text[at + 3].split() == ["bank2", "EUR", str(principal - 4000), "0", "0"]


def test_end_recovery_needs_a_reason_and_rules_6(monkeypatch):
    chain, members, loan_id, sent = world(monkeypatch, version=5)
    blank = cli("loan", "end-recovery", loan_id, "--reason", "  ")
    assert blank.exit_code == 2 and "give the reason in 1 to 200 characters" in blank.output
    refused = cli("loan", "end-recovery", loan_id, "--reason", REASON)
    assert refused.exit_code == 1
    assert "this chain runs rules version 5 and loan.recovery_end needs version 6" in refused.output
    assert "lendchain gov propose rules.upgrade 6 HEIGHT" in refused.output
    assert sent == []


def test_one_members_text_counts_the_recoveries_its_removal_waits_for(written_off):
    chain, _, _, _ = written_off
    text = describe_members(queries.lookup(chain.state, "members", "bank1"))
    assert "services 0 open loans, 0 transfers pending to it, recovers 1 written-off loan" in text


# A whole book, written-off loans included ----------------------------------------------------------


def book_world(tmp_path, monkeypatch, version):
    """bank1 services two open loans and two written-off ones (money left to recover on each)."""
    world = World(tmp_path, monkeypatch, version=version)
    lost = world.lend(world.bank1, ["EUR", "USD"])
    world.chain.head_ms += 200 * DAY_MS
    world.chain.run()  # the due-loan pass defaults them
    world.run(world.bank1, "loan.write_off", [{"loan_id": i, "reason": "charged off"} for i in lost])
    live = world.lend(world.bank1, ["EUR", "GBP"])
    return world, live, lost


@pytest.mark.parametrize(
    ("loans", "offered"),
    [("all", ("live", "lost")), ("open", ("live",)), ("written-off", ("lost",))],
)
def test_from_rules_6_the_book_takes_the_written_off_loans_whose_recovery_it_services(
    tmp_path, monkeypatch, loans, offered
):
    world, live, lost = book_world(tmp_path, monkeypatch, version=6)
    chosen = {"live": live, "lost": lost}
    expected = sorted(i for name in offered for i in chosen[name])
    args = ["loan", "transfer-book", "--to", world.bank2.did, "--key", world.keys["bank1"], "--loans", loans]
    handed = cli("--json", *args)
    assert handed.exit_code == 0, handed.output
    summary = json.loads(handed.output)
    assert sorted(summary["offered"]) == expected and summary["loans"] == loans
    taken = cli("--json", "loan", "accept-transfers", "--key", world.keys["bank2"])
    assert taken.exit_code == 0, taken.output
    assert sorted(json.loads(taken.output)["accepted"]) == expected
    assert {i for i in live + lost if world.loan(i)["lender"] == world.bank2.did} == set(expected)
    if "lost" in offered:  # bank2 records the recoveries now
        world.run(world.bank2, "loan.recover", [{"loan_id": lost[0], "amount": 100}])


def test_a_dry_run_lists_the_written_off_loans_with_their_state(tmp_path, monkeypatch):
    world, _, lost = book_world(tmp_path, monkeypatch, version=6)
    args = ["loan", "transfer-book", "--to", world.bank2.did, "--key", world.keys["bank1"]]
    text = cli(*args, "--loans", "written-off", "--dry-run").output
    assert text.splitlines()[0].endswith(", written-off loans")
    assert "would send 2" in text
    assert f"    loan {lost[1]}  USD 10001  written_off  lender bank1 ({world.bank1.did})" in text


def test_before_rules_6_the_book_is_the_open_loans_and_written_off_ones_are_refused(tmp_path, monkeypatch):
    world, live, lost = book_world(tmp_path, monkeypatch, version=5)
    args = ["loan", "transfer-book", "--to", world.bank2.did, "--key", world.keys["bank1"]]
    handed = cli("--json", *args)
    assert handed.exit_code == 0, handed.output
    assert sorted(json.loads(handed.output)["offered"]) == sorted(live)
    refused = cli(*args, "--loans", "written-off")
    assert refused.exit_code == 1
    assert (
        "this chain runs rules version 5 and loan.transfer on a written-off loan needs version 6"
        in refused.output
    )
    assert "lendchain gov propose rules.upgrade 6 HEIGHT" in refused.output
    assert all("transfer" not in world.loan(i) for i in lost)
