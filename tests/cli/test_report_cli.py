"""``lendchain report``: each report as of a date, headed by what it stands on; bad input in one sentence.

The chain is ``report_chain``'s (loan A live on 2023-11-20, defaulted and loan
B disbursed by 2024-05-20, A written off on 2024-05-23) in a stopped node's data
directory; the node source is the API app in-process (``client_of``).
"""

from __future__ import annotations

import importlib
import json
import shutil
import socket
import struct
from dataclasses import replace

import plyvel
import pytest
from click.testing import CliRunner

from lendchain.cli import main
from lendchain.cli.collateral import asset_text
from lendchain.cli.domain import describe_positions
from lendchain.cli.governance import describe_params
from lendchain.cli.loans import loan_text
from lendchain.cli.reports import books_text, exposure_text, portfolio_text
from lendchain.ledger.block import Block
from lendchain.ledger.params import PARAMS
from lendchain.node.pointintime import ReplayedViews
from lendchain.node.store import ChainStore
from tests.ledger.test_collateral import VAN, pledge, release
from tests.ledger.test_domain_audit import CertifiedBlocks
from tests.ledger.test_loan_transfer import loan, open_loan, repay, with_borrower
from tests.ledger.test_restructure_consent import ALICE, BOB, CAROL, funders_world, syndicate
from tests.ledger.test_share_assignment import sell
from tests.node.report_chain import FIRST_DAY, SECOND_DAY, report_chain, write_data_dir, write_genesis
from tests.node.test_point_in_time_node import client_of

report_cli = importlib.import_module("lendchain.cli.report")  # the package's ``report`` is the click group


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    chain = report_chain()
    where = tmp_path_factory.mktemp("report")
    return chain, chain.write_data_dir(where / "data"), chain.write_genesis(where / "genesis.toml")


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def from_data_dir(world, *args: str) -> list[str]:
    _, data_dir, genesis = world
    return [*args, "--data-dir", str(data_dir), "--genesis", str(genesis)]


def test_the_books_as_of_each_date_are_headed_by_the_block_they_stand_on(world):
    chain = world[0]
    first = run(*from_data_dir(world, "report", "books", "--as-of", FIRST_DAY))
    assert first.exit_code == 0, first.output
    heading, _, books = first.output.partition("\n\n")
    assert heading.splitlines() == [
        f"report of chain lendchain-ledger-test, genesis {chain.genesis.hash().hex()}",
        f"block     height 5, hash {Block.decode(chain.chain.blocks[4][0]).hash().hex()}, at 2023-11-14T22:13:25.000Z",
        "signed    bank1, bank2, bank3 (its commit certificate, view 0)",
        "checked   5 blocks replayed from the genesis, each re-executed (tx, state and results roots, "
        "signatures) and its certificate verified under the genesis keys and the replayed governance; "
        f"from data directory {world[1]}",
        "as of     2023-11-20T23:59:59.999Z: the last block at or before it; block 6, certified by bank1, "
        "bank2, bank3, is at 2024-05-20T09:00:00.000Z, after it",
    ]
    as_json = json.loads(run("--json", *from_data_dir(world, "report", "books", "--as-of", FIRST_DAY)).output)
    assert as_json["report"] == "books" and as_json["basis"]["height"] == 5
    assert books.rstrip("\n") == books_text(as_json["view"])
    assert [(row["member"], row["outstanding"]) for row in as_json["view"]["books"]] == [("bank1", 120_000)]

    second = json.loads(run("--json", *from_data_dir(world, "report", "books", "--as-of", SECOND_DAY)).output)
    assert second["basis"]["as_of"]["next_block"]["height"] == second["basis"]["height"] + 1 == 10
    assert [
        (row["member"], row["defaulted_loans"], row["outstanding"]) for row in second["view"]["books"]
    ] == [
        ("bank1", 1, 120_000),
        ("bank2", 0, 120_000),
    ]


@pytest.mark.parametrize(
    "command, text",
    [
        ("loan", loan_text),
        ("exposure", exposure_text),
        ("portfolio", portfolio_text),
    ],
)
def test_each_report_prints_the_views_own_text_under_the_heading(world, command, text):
    chain = world[0]
    borrower = json.loads(run("--json", *from_data_dir(world, "report", "loan", chain.loan_a)).output)["view"]
    ref = {"loan": chain.loan_a, "exposure": borrower["borrower"], "portfolio": chain.members[0].did}[command]
    as_json = json.loads(
        run("--json", *from_data_dir(world, "report", command, ref, "--as-of", SECOND_DAY)).output
    )
    printed = run(*from_data_dir(world, "report", command, ref, "--as-of", SECOND_DAY))
    assert printed.exit_code == 0, printed.output
    assert printed.output.split("\n\n", 1)[1].rstrip("\n") == text(as_json["view"])
    assert printed.output.startswith("report of chain lendchain-ledger-test")
    if command == "loan":
        assert as_json["view"]["state"] == "defaulted"


def test_the_parameters_report_prints_gov_params_text_as_of_the_block(world):
    as_json = json.loads(run("--json", *from_data_dir(world, "report", "params", "--height", "3")).output)
    assert as_json["report"] == "params" and as_json["basis"]["height"] == 3
    rows = {row["name"]: row for row in as_json["view"]["parameters"]}
    assert rows["voting_period_ms"]["value"] == PARAMS["voting_period_ms"].default
    assert rows["rules_version"]["source"] in ("default", "genesis")
    printed = run(*from_data_dir(world, "report", "params", "--height", "3"))
    assert printed.exit_code == 0, printed.output
    assert printed.output.split("\n\n", 1)[1].rstrip("\n") == describe_params(as_json["view"])


def test_a_collateral_report_on_an_asset_with_no_lien_says_so_at_the_height(world):
    asset = "ab" * 32
    result = run(*from_data_dir(world, "report", "collateral", asset, "--height", "3"))
    assert result.exit_code == 1
    assert f"no lien was recorded on asset {asset} at height 3" in result.output


def test_a_collateral_report_lists_the_liens_as_they_stood_at_the_height(tmp_path):
    """A rules-6 chain: an asset pledged at one height and released at a later one."""
    chain, members, borrower = with_borrower(version=6)
    loan_id = open_loan(chain, borrower, members[0])
    assert pledge(chain, members[0], loan_id).ok
    pledged_at = chain.height
    assert release(chain, members[0], loan_id).ok
    data_dir = write_data_dir(tmp_path / "data", chain, CertifiedBlocks(chain, members))
    genesis = write_genesis(tmp_path / "genesis.toml", chain.genesis)
    source = ["--data-dir", str(data_dir), "--genesis", str(genesis)]
    then = run("--json", "report", "collateral", VAN, "--height", str(pledged_at), *source)
    assert then.exit_code == 0, then.output
    [lien] = json.loads(then.output)["view"]["liens"]
    assert (lien["loan_id"], lien["rank"], lien["value"]) == (loan_id, 1, 80_000)
    printed = run("report", "collateral", VAN, "--height", str(pledged_at), *source)
    assert printed.output.split("\n\n", 1)[1].rstrip("\n") == asset_text(json.loads(then.output)["view"])
    now = run("report", "collateral", VAN, *source)  # the head: released
    assert (
        now.exit_code == 1 and f"no lien was recorded on asset {VAN} at height {chain.height}" in now.output
    )


def test_positions_of_a_did_with_none_say_so_at_the_height(world):
    chain = world[0]
    result = run(*from_data_dir(world, "report", "positions", chain.members[2].did, "--height", "9"))
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.strip() == (
        f"Error: {chain.members[2].did} had committed to no syndicated loan (indexed from rules 2) at height 9 "
        "(2024-05-20T09:00:03.000Z)"
    )


def test_positions_in_a_syndicated_loan_are_printed_as_they_stood_before_and_after_a_share_was_sold(tmp_path):
    """A rules-6 chain: alice and bob fund 60,000 each of bank1's loan; a repayment; alice sells 20,000 of
    her share to carol; another repayment (each shared pro rata by what each holds then)."""
    chain, members, borrower = funders_world(version=6)
    bank1 = members[0]
    loan_id = syndicate(chain, borrower, bank1, [(ALICE, 60_000), (BOB, 60_000)])
    assert repay(chain, bank1, loan_id, 12_000).ok
    before_sale = chain.height
    sell(chain, ALICE, CAROL, loan_id, 20_000)
    assert repay(chain, bank1, loan_id, 12_000).ok
    data_dir = write_data_dir(tmp_path / "data", chain, CertifiedBlocks(chain, members))
    source = [
        "--data-dir",
        str(data_dir),
        "--genesis",
        str(write_genesis(tmp_path / "genesis.toml", chain.genesis)),
    ]

    def positions(did: str, height: int) -> list[str]:
        as_json = run("--json", "report", "positions", did, "--height", str(height), *source)
        printed = run("report", "positions", did, "--height", str(height), *source)
        assert printed.exit_code == 0, printed.output
        figures = printed.stdout.split("\n\n", 1)[1].rstrip("\n")
        assert figures == describe_positions(json.loads(as_json.stdout)["view"])
        return figures.splitlines()

    alice = positions(ALICE.did, before_sale)
    assert (
        alice[0]
        == "EUR: committed 60000 in 1 loans, received 6000, outstanding share 54864 (0 overdue, 0 defaulted)"
    )
    assert alice[-1] == (
        f"  {loan_id[:16]}…  repaying  committed 60000, received 6000, share 54864 of outstanding, stage 1, "
        "0 days past due"
    )
    assert positions(BOB.did, before_sale)[0] == alice[0]  # the same share, the same figures

    alice = positions(ALICE.did, chain.height)
    assert (
        alice[0]
        == "EUR: committed 40000 in 1 loans, received 10000, outstanding share 32828 (0 overdue, 0 defaulted)"
    )
    assert alice[-2:] == [
        f"  {loan_id[:16]}…  repaying  committed 40000, received 10000, share 32828 of outstanding, stage 1, "
        "0 days past due",
        "    bought 0, sold 20000",
    ]
    carol = positions(CAROL.did, chain.height)
    assert (
        carol[0]
        == "EUR: committed 20000 in 1 loans, received 2000, outstanding share 16414 (0 overdue, 0 defaulted)"
    )
    assert carol[-1] == "    bought 20000, sold 0"
    bob = positions(BOB.did, chain.height)
    assert (
        bob[0]
        == "EUR: committed 60000 in 1 loans, received 12000, outstanding share 49241 (0 overdue, 0 defaulted)"
    )
    assert 32_828 + 16_414 + 49_241 == loan(chain, loan_id)["outstanding_principal"]  # the shares, pro rata
    before = run("report", "positions", CAROL.did, "--height", str(before_sale), *source)
    assert before.exit_code == 1 and "had committed to no syndicated loan" in before.stderr


@pytest.mark.parametrize(
    "args, code, message",
    [
        (
            ["--as-of", "2024-31-05"],
            2,
            "Invalid value for '--as-of': '2024-31-05' is neither a date (YYYY-MM-DD",
        ),
        (["--as-of", "2024-05-20T09:00"], 2, "'2024-05-20T09:00' has no time zone: add Z for UTC"),
        (["--as-of", FIRST_DAY, "--height", "3"], 2, "give --height or --as-of, not both"),
        (["--node", "http://127.0.0.1:1"], 2, "give --data-dir or --node, not both"),
        (["--height", "99"], 1, "Error: height 99 is above the newest block data directory"),
        (["--as-of", "2030-01-01"], 1, "is after the newest block data directory"),
    ],
)
def test_bad_input_is_one_sentence_and_no_figures(world, args, code, message):
    result = run(*from_data_dir(world, "report", "books", *args))
    assert result.exit_code == code and result.stdout == ""
    assert message in " ".join(result.stderr.split())


def test_without_a_genesis_the_report_says_what_it_needs(world):
    result = run("report", "books", "--data-dir", str(world[1]))
    assert result.exit_code == 2
    assert "give the consortium's genesis with --genesis FILE (or a node's --config)" in result.stderr


def test_a_genesis_of_another_chain_is_refused(world, tmp_path):
    chain, data_dir, _ = world
    other = write_genesis(tmp_path / "other.toml", replace(chain.genesis, chain_id="another-chain"))
    result = run("report", "books", "--data-dir", str(data_dir), "--genesis", str(other))
    assert result.exit_code == 1 and result.stdout == ""
    assert (
        "belongs to chain 'lendchain-ledger-test'" in result.stderr and "not to this genesis" in result.stderr
    )


def test_a_tampered_data_directory_names_the_height_and_prints_nothing(world, tmp_path):
    _, data_dir, genesis = world
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    db = plyvel.DB(str(copy))
    key = b"b:" + struct.pack(">Q", 2)
    raw = db.get(key)
    db.put(key, raw[:-1] + bytes([raw[-1] ^ 1]))
    db.close()
    result = run("report", "books", "--data-dir", str(copy), "--genesis", str(genesis))
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(
        f"Error: data directory {copy}: block 2 fails the check: block 2 tx root does not match its transactions; "
        "nothing is reported"
    )


def test_an_unreachable_node_is_named(world):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run("report", "books", "--node", f"http://127.0.0.1:{port}", "--genesis", str(world[2]))
    assert result.exit_code == 1 and result.stdout == ""
    assert (
        result.stderr.strip()
        == f"Error: cannot reach node at http://127.0.0.1:{port} (ConnectError); is it running?"
    )


def node_behind(monkeypatch, world, token=None, client_token=None):
    """``report`` commands reach the API app over the chain's store (opened here) as their node."""
    chain, data_dir, _ = world
    store = ChainStore.open(data_dir, chain.genesis, create=False)
    facade = ReplayedViews(store, chain.genesis)
    monkeypatch.setattr(report_cli, "client_from", lambda kw: client_of(facade, token, client_token))
    return store


def test_a_report_from_a_node_is_the_data_directorys(monkeypatch, world):
    expected = json.loads(
        run("--json", *from_data_dir(world, "report", "books", "--as-of", SECOND_DAY)).output
    )
    with node_behind(monkeypatch, world):
        result = run("--json", "report", "books", "--as-of", SECOND_DAY, "--genesis", str(world[2]))
    assert result.exit_code == 0, result.output
    served = json.loads(result.output)
    assert served["view"] == expected["view"] and served["basis"]["source"] == "node at http://node"
    assert served["basis"]["block_hash"] == expected["basis"]["block_hash"]


def test_a_wrong_token_says_which_option_gives_it(monkeypatch, world):
    with node_behind(monkeypatch, world, token="s3cret-token-0123456789", client_token="wrong"):
        result = run("report", "books", "--genesis", str(world[2]))
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.strip() == (
        "Error: node at http://node refused the request (missing or wrong bearer token): give its API token "
        "with --token-file FILE"
    )
