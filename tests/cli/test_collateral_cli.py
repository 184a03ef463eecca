"""``lendchain collateral id | pledge | release | revalue | show`` and what ``loan show``, ``party
exposure`` and ``loan portfolio`` print of a loan's collateral (rules 6; see ``ledger.collateral`` and
``lendchain.collateral_ids``).

As in ``test_loan_transfer_cli``: the commands' payloads are executed on a
ledger test chain, signed by the member the command would sign as, and the
chain answers the commands' reads as a node's API would.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from lendchain.cli import collateral as collateral_cli
from lendchain.cli import loans as loans_cli
from lendchain.cli.domain import describe_positions
from lendchain.cli.reports import COVERAGE_COLUMNS
from lendchain.collateral_ids import asset_id
from tests.cli.test_loan_transfer_cli import ChainClient, cli, execute
from tests.ledger.test_collateral import HOUSE, VAN, pledge
from tests.ledger.test_loan_transfer import open_loan, with_borrower

VIN = "wvwzzz1jz-xw000001"  # VAN's VIN as a user might type it


def world(monkeypatch, version=6):
    """A chain with bank1's disbursed loan; the CLI reads it and records what it would send."""
    chain, members, borrower = with_borrower(version=version)
    loan_id = open_loan(chain, borrower, members[0])
    sent = []
    for module in (collateral_cli, loans_cli):
        monkeypatch.setattr(module, "client_from", lambda kw: ChainClient(chain))
    monkeypatch.setattr(
        collateral_cli, "send_tx", lambda ctx, kw, kind, payload: sent.append((kind, payload))
    )
    return chain, members, borrower, loan_id, sent


def test_collateral_id_prints_the_hash_of_the_normalised_identifier_and_never_the_identifier():
    result = cli("collateral", "id", "--kind", "vehicle", "--id", VIN)
    assert result.exit_code == 0, result.output
    assert result.output == VAN + "\n"
    shown = json.loads(cli("--json", "collateral", "id", "--kind", "vehicle", "--id", VIN).output)
    assert shown == {"asset": VAN, "kind": "vehicle", "normalised": "WVWZZZ1JZXW000001"}


@pytest.mark.parametrize(
    ("kind", "identifier", "expected"),
    [
        ("vehicle", "WVWZZZ1JZXW00000", "a VIN has 17 letters and digits, without I, O and Q"),
        ("vehicle", "WVWZZZ1JZXW00000O", "a VIN has 17 letters and digits, without I, O and Q"),
        ("deposit", "DE89 3704 0044 0532 0130 01", "a deposit is named by its account's IBAN, with valid"),
        ("real_estate", "AB123456", "give country and title as COUNTRY:TITLE, e.g. GB:AB123456"),
        ("real_estate", "GBR:AB123456", "the land registry's country is its two-letter ISO 3166 code"),
        ("securities", "US0378331006:CUST-1", "'US0378331006' is no ISIN"),
        ("equipment", "KOMATSU:", "give manufacturer and serial as MANUFACTURER:SERIAL"),
        ("other", "REGISTER:ref#1", "give register and reference as REGISTER:REFERENCE"),
    ],
)
def test_an_identifier_that_cannot_be_its_kinds_is_refused_saying_what_it_must_look_like(
    kind, identifier, expected
):
    result = cli("collateral", "id", "--kind", kind, "--id", identifier)
    assert result.exit_code == 2
    assert "Invalid value for '--id'" in result.output and expected in result.output
    assert "Traceback" not in result.output


def test_pledge_sends_the_hash_and_show_prints_the_liens_loan_show_and_the_views_the_collateral(
    monkeypatch, tmp_path
):
    chain, members, borrower, loan_id, sent = world(monkeypatch)
    bank1, bank2 = members[0], members[1]
    agreement = tmp_path / "agreement.pdf"
    agreement.write_bytes(b"signed security agreement")
    args = ["collateral", "pledge", loan_id, "--kind", "vehicle", "--id", VIN, "--value", "80000"]
    result = cli(*args, "--agreement", str(agreement))
    assert result.exit_code == 0, result.output
    expected = {
        "loan_id": loan_id,
        "asset": VAN,
        "kind": "vehicle",
        "value": 80_000,
        "agreement_hash": hashlib.sha256(b"signed security agreement").hexdigest(),
    }
    assert sent[-1] == ("collateral.pledge", expected)
    assert VIN.upper().replace("-", "") not in json.dumps(sent)  # the identifier stays here
    assert execute(chain, bank1, sent).ok
    pledged_at = chain.height

    other = open_loan(chain, borrower, bank2)
    assert (
        cli(
            "collateral",
            "pledge",
            other,
            "--kind",
            "vehicle",
            "--asset",
            VAN,
            "--value",
            "20000",
            "--rank",
            "2",
        ).exit_code
        == 0
    )
    assert sent[-1] == (
        "collateral.pledge",
        {"loan_id": other, "asset": VAN, "kind": "vehicle", "value": 20_000, "rank": 2},
    )
    assert execute(chain, bank2, sent).ok

    shown = cli("collateral", "show", "--kind", "vehicle", "--id", VIN)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0] == f"asset {VAN} (vehicle): 2 liens"
    assert lines[1] == (
        f"  rank 1   loan {loan_id}  bank1  disbursed  value 80000 EUR  principal 120000  since height {pledged_at}"
    )
    assert lines[2] == f"           borrower {borrower.did}"
    assert lines[3].startswith(f"  rank 2   loan {other}  bank2  disbursed  value 20000 EUR")
    assert cli("collateral", "show", VAN).output == shown.output

    text = cli("loan", "show", other).output.splitlines()
    assert (  # bank1's 120,000 ranks ahead on an asset worth 100,000 in all
        "  collateral      20000 in 1 asset; loan-to-value 600.00 % (60000 bps), combined with the liens "
        "ahead 240.00 % (24000 bps)" in text
    )
    assert "  collateral      80000 in 1 asset; loan-to-value 150.00 % (15000 bps)" in (
        cli("loan", "show", loan_id).output.splitlines()  # first-ranking: no combined ratio to add
    )
    assert f"  pledged         vehicle {VAN} rank 2, value 20000, at height {chain.height}" in text
    assert f"  behind          loan {loan_id} of bank1 (rank 1, value 80000, disbursed)" in text
    exposure = cli("party", "exposure", borrower.did).output.splitlines()
    assert (
        "  EUR  collateral: secured 100000  unsecured 140000  pledged value 100000  secured loans 2"
        in exposure
    )
    book = cli("loan", "portfolio", bank1.did).output.splitlines()
    assert "  EUR  collateral: secured 80000  unsecured 40000  pledged value 80000  secured loans 1" in book
    books = json.loads(cli("--json", "loan", "books").output)
    coverage = [{c: row[c] for c in ("member", *COVERAGE_COLUMNS)} for row in books["books"]]
    assert coverage == [
        {"member": "bank1", "secured": 80_000, "unsecured": 40_000, "collateral_value": 80_000, "secured_loans": 1},
        {"member": "bank2", "secured": 20_000, "unsecured": 100_000, "collateral_value": 20_000, "secured_loans": 1},
    ]  # fmt: skip
    total = books["totals"]["EUR"]
    assert (total["secured"], total["unsecured"], total["outstanding"]) == (100_000, 140_000, 240_000)
    table = cli("loan", "books").output.splitlines()
    at = table.index(
        "collateral coverage of the outstanding principal above (secured: each loan's principal up to "
        "its pledged value)"
    )
    assert table[at + 1].split() == [
        "member",
        "cur",
        "outstanding",
        "secured",
        "unsecured",
        "pledged",
        "loans",
    ]
    assert table[at + 2].split() == ["bank1", "EUR", "120000", "80000", "40000", "80000", "1"]
    assert table[at + 4].split() == ["all", "EUR", "240000", "100000", "140000", "100000", "2"]
    assert cli("collateral", "release", loan_id, "--asset", VAN).exit_code == 0
    assert execute(chain, bank1, sent).ok
    book = cli("loan", "portfolio", bank1.did).output
    assert "collateral:" not in book  # nothing of bank1's is secured any more: the line says nothing


def test_fund_positions_prints_its_shares_of_the_coverage_once_a_loan_is_secured():
    position = {"loan_id": "ab" * 32, "state": "repaying", "status": "committed", "commitment": 40_000,
                "received": 4_000, "share": 36_000, "share_of": "outstanding", "secured": 30_000}  # fmt: skip
    totals = {"committed": 40_000, "received": 4_000, "outstanding": 36_000, "loans": 1, "overdue_loans": 0,
              "defaulted_loans": 0}  # fmt: skip
    coverage = {"secured": 30_000, "unsecured": 6_000, "collateral_value": 30_000, "secured_loans": 1}
    view = {"currencies": {"EUR": totals}, "collateral": {"EUR": coverage}, "positions": [position]}
    assert describe_positions(view).splitlines() == [
        "EUR: committed 40000 in 1 loans, received 4000, outstanding share 36000 (0 overdue, 0 defaulted)",
        "EUR: secured share 30000, unsecured 6000 (pledged value share 30000, 1 secured loans)",
        f"  {'ab' * 8}…  repaying  committed 40000, received 4000, share 36000 of outstanding, secured 30000",
    ]
    unsecured = {**view, "collateral": {"EUR": {**coverage, "secured": 0, "unsecured": 36_000,
                                                "collateral_value": 0, "secured_loans": 0}},
                 "positions": [{**position, "secured": 0}]}  # fmt: skip
    assert "secured" not in describe_positions(unsecured)  # nothing secured: the lines say nothing


def test_release_and_revalue_send_the_asset_by_id_or_hash(monkeypatch):
    chain, members, _, loan_id, sent = world(monkeypatch)
    assert pledge(chain, members[0], loan_id).ok
    assert (
        cli("collateral", "revalue", loan_id, "--kind", "vehicle", "--id", VIN, "--value", "70000").exit_code
        == 0
    )
    assert sent[-1] == ("collateral.revalue", {"loan_id": loan_id, "asset": VAN, "value": 70_000})
    assert execute(chain, members[0], sent).ok
    assert "revalued at height" in cli("loan", "show", loan_id).output
    assert cli("collateral", "release", loan_id, "--asset", VAN).exit_code == 0
    assert sent[-1] == ("collateral.release", {"loan_id": loan_id, "asset": VAN})
    assert execute(chain, members[0], sent).ok
    assert "collateral" not in cli("loan", "show", loan_id).output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["collateral", "pledge", "L", "--kind", "vehicle", "--value", "1"],
            "exactly one of --id IDENTIFIER",
        ),
        (
            ["collateral", "pledge", "L", "--kind", "vehicle", "--id", VIN, "--asset", VAN, "--value", "1"],
            "exactly one of",
        ),
        (["collateral", "release", "L", "--id", VIN], "--id needs --kind"),
        (
            ["collateral", "release", "L", "--asset", "VAN"],
            "must be a collateral id, the 64 lowercase hex digits",
        ),
        (
            ["collateral", "pledge", "L", "--kind", "boat", "--id", VIN, "--value", "1"],
            "'boat' is not one of",
        ),
        (
            ["collateral", "pledge", "L", "--kind", "vehicle", "--id", VIN, "--value", "0"],
            "0 is not in the range x>=1",
        ),
        (
            ["collateral", "pledge", "L", "--kind", "vehicle", "--id", VIN, "--value", "1", "--rank", "17"],
            "'--rank'",
        ),
        (
            [
                "collateral",
                "pledge",
                "L",
                "--kind",
                "vehicle",
                "--id",
                VIN,
                "--value",
                "1",
                "--agreement-hash",
                "x",
            ],
            "must be 64 lowercase hex digits",
        ),
        (["collateral", "show"], "exactly one of --id IDENTIFIER"),
        (["collateral", "show", "WVWZZZ"], "must be a collateral id (64 lowercase hex digits)"),
    ],
)
def test_a_bad_argument_sends_nothing_and_says_what_is_wrong(monkeypatch, args, expected):
    *_, sent = world(monkeypatch)
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert sent == []


def test_show_of_an_asset_without_liens_says_so(monkeypatch):
    from lendchain.client import NodeError

    class Missing(ChainClient):
        def get(self, path):
            raise NodeError(f"GET {path}: 404 not_found: no lien is recorded on asset {HOUSE}", status=404)

    chain, *_ = world(monkeypatch)
    monkeypatch.setattr(collateral_cli, "client_from", lambda kw: Missing(chain))
    result = cli("collateral", "show", HOUSE)
    assert result.exit_code == 1 and f"no lien is recorded on asset {HOUSE}" in result.output


@pytest.mark.parametrize("command", ["pledge", "release", "revalue"])
def test_on_a_chain_before_rules_6_nothing_is_sent_and_the_upgrade_is_named(monkeypatch, command):
    *_, loan_id, sent = world(monkeypatch, version=5)
    extra = {"pledge": ["--kind", "vehicle", "--value", "1"], "revalue": ["--value", "1"], "release": []}[
        command
    ]
    result = cli("collateral", command, loan_id, "--asset", VAN, *extra)
    assert result.exit_code == 1
    assert f"this chain runs rules version 5 and collateral.{command} needs version 6" in result.output
    assert "lendchain gov propose rules.upgrade 6 HEIGHT" in result.output
    assert sent == []


def test_an_agreement_file_that_cannot_be_read_is_named(monkeypatch, tmp_path):
    *_, loan_id, sent = world(monkeypatch)
    folder = tmp_path / "agreement"
    folder.mkdir()
    result = cli(
        "collateral",
        "pledge",
        loan_id,
        "--kind",
        "vehicle",
        "--id",
        VIN,
        "--value",
        "1",
        "--agreement",
        str(folder),
    )
    assert result.exit_code == 2 and "'--agreement'" in result.output and sent == []
    assert asset_id("vehicle", VIN) == VAN
