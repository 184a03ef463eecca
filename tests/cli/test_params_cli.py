"""``lendchain gov params``, ``gov propose params.set`` and ``testnet --param``.

The proposals the CLI sends are executed on a ledger test chain, which
answers the commands' reads as a node's API would.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lendchain.cli import governance as gov_cli
from lendchain.cli import main
from lendchain.cli.governance import duration_text
from lendchain.ledger.dispute_records import time_text
from lendchain.ledger.params import PARAMS
from lendchain.node.config import load_genesis
from tests.cli.test_loan_transfer_cli import ChainClient, execute
from tests.ledger.test_admission import rules_world
from tests.ledger.test_membership import vote


def world(monkeypatch, version=6):
    chain, members = rules_world(version=version)
    sent = []
    monkeypatch.setattr(gov_cli, "client_from", lambda kw: ChainClient(chain))
    monkeypatch.setattr(gov_cli, "send_tx", lambda ctx, kw, kind, payload: sent.append((kind, payload)))
    return chain, members, sent


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_a_change_is_proposed_executed_and_shown_with_its_proposal(monkeypatch):
    chain, members, sent = world(monkeypatch)
    assert cli("gov", "propose", "params.set", "currencies", "EUR,USD,JPY").exit_code == 0
    assert sent[-1] == ("gov.propose", {"action": "params.set", "key": "currencies", "value": "EUR,USD,JPY"})
    proposal_id = execute(chain, members[0], sent).tx_id.hex()
    assert vote(chain, members[1], proposal_id).ok and vote(chain, members[2], proposal_id).ok

    shown = cli("gov", "params").output.splitlines()
    assert len(shown) == len(PARAMS)  # one line each
    assert shown[0] == (
        f"{'currencies':<26} {'EUR,USD,JPY':<24} default CHF,EUR,GBP,INR,KES,USD "
        f"changed by proposal {proposal_id[:16]} at height {chain.height}; params.set changes it"
    )
    assert (
        shown[1]
        == f"{'max_term_months':<26} {'480':<24} default {'480':<14} the default; params.set changes it"
    )
    assert shown[5] == (
        f"{'key_rotation_delay_blocks':<26} {'5':<24} default {'20':<14} set by the genesis; fixed"
    )
    # A duration in milliseconds (as params.set takes it) also reads as days and hours.
    (voting,) = [line for line in shown if line.startswith("voting_period_ms ")]
    assert voting == (
        f"{'voting_period_ms':<26} {'604800000 (7 d)':<24} default {'604800000 (7 d)':<14} the default; "
        "params.set changes it"
    )
    one = json.loads(cli("--json", "gov", "params", "currencies").output)
    assert one["parameters"][0]["value"] == ["EUR", "USD", "JPY"]
    assert one["parameters"][0]["proposal_id"] == proposal_id


@pytest.mark.parametrize(
    "ms, text",
    [
        (0, "0 ms"),
        (999, "999 ms"),
        (1000, "1 s"),
        (90_000, "1 min 30 s"),
        (129_600_000, "1 d 12 h"),
        (2_592_000_000, "30 d"),
        (93_784_005, "1 d 2 h 3 min 4 s"),
    ],
)
def test_duration_text(ms, text):
    assert duration_text(ms) == text


def test_servicing_terms_changed_say_what_earlier_loans_keep(monkeypatch):
    chain, members, sent = world(monkeypatch)
    assert cli("gov", "propose", "params.set", "grace_days", "10").exit_code == 0
    proposal_id = execute(chain, members[0], sent).tx_id.hex()
    assert vote(chain, members[1], proposal_id).ok and vote(chain, members[2], proposal_id).ok
    shown = cli("gov", "params", "grace_days").output.splitlines()
    assert shown[1] == f"{'':<26} loans disbursed up to {time_text(chain.head_ms)} keep 5"


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("max_term_month", "360", "'max_term_month' is no chain parameter; did you mean 'max_term_months'?"),
        (
            "key_rotation_delay_blocks",
            "40",
            "governance does not change key_rotation_delay_blocks: every node",
        ),
        ("rules_version", "7", "governance does not change rules_version: rules.upgrade changes the rules"),
        (
            "max_term_months",
            "forever",
            "max_term_months is a whole number from 1 to 1200 (months), not 'forever'",
        ),
        ("require_kyc", "no", "require_kyc is true or false, not 'no'"),
    ],
)
def test_a_change_the_ledger_would_refuse_is_not_sent(monkeypatch, key, value, message):
    _, _, sent = world(monkeypatch)
    result = cli("gov", "propose", "params.set", key, value)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert sent == []


def test_before_rules_6_the_cli_says_how_to_get_there(monkeypatch):
    _, _, sent = world(monkeypatch, version=5)
    result = cli("gov", "propose", "params.set", "max_term_months", "360")
    assert result.exit_code == 1
    assert (
        "this chain runs rules version 5 and params.set needs version 6: schedule it first" in result.output
    )
    assert sent == []


def test_gov_params_names_the_nearest_parameter_for_an_unknown_one(monkeypatch):
    world(monkeypatch)
    result = cli("gov", "params", "grace_day")
    assert result.exit_code == 2
    assert "'grace_day' is no chain parameter; did you mean 'grace_days'?" in result.output


def test_testnet_sets_parameters_in_the_genesis_it_writes_and_refuses_a_typo(tmp_path):
    out = tmp_path / "net"
    typo = cli("testnet", "--out", str(out), "--param", "max_term_month=360")
    assert typo.exit_code == 2
    assert "'max_term_month' is no chain parameter; did you mean 'max_term_months'?" in typo.output
    for bad, message in (
        ("rules_version=5", "give the rules version with --rules-version"),
        ("require_kyc", "'require_kyc' is not KEY=VALUE"),
        ("currencies=EUR,eur", "'EUR,eur' has 'eur', which is no currency code"),
    ):
        result = cli("testnet", "--out", str(out), "--param", bad)
        assert result.exit_code == 2 and message in result.output, result.output
    assert not out.exists()
    made = cli("testnet", "--out", str(out), "--param", "currencies=EUR,USD", "--param", "require_kyc=false")
    assert made.exit_code == 0, made.output
    app = load_genesis(out / "genesis.toml", strict=True).app
    assert (app["currencies"], app["require_kyc"]) == (["EUR", "USD"], False)
