"""The parameter registry: every parameter the code reads is registered, and read through it; the
genesis bytes it stores never change; values parse and check as the README's table says."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

import lendchain
from lendchain import codec
from lendchain.ledger.params import (
    PARAMS,
    SERVICING_ERAS,
    STORED_DEFAULTS,
    ParamError,
    app_problems,
    as_text,
    for_loan,
    markdown_table,
    parse_text,
    problem,
)
from lendchain.ledger.state import DEFAULT_PARAMS, PARAMS_KEY, MemoryState, get_params
from tests.ledger.chain import Chain, make_genesis

SOURCE = Path(lendchain.__file__).parent
README = SOURCE.parent / "README.md"
# A parameter read: value/param (params.value), for_loan or servicing_param with its name.
_READ = re.compile(r"\b(?:value|param|for_loan|servicing_param)\([^()]*?,\s*\"([a-z_]+)\"")
# A read that would bypass the registry: indexing or .get on a params map.
_BYPASS = re.compile(r"\bparams(?:\[|\.get\()|\bapp\.get\(|\bapp\[")


def python_files():
    return sorted(SOURCE.rglob("*.py"))


def test_every_parameter_the_code_reads_is_registered_and_every_registered_one_is_read():
    read = set()
    for path in python_files():
        read |= set(_READ.findall(path.read_text()))
    assert read - set(PARAMS) == set(), "read but not registered"
    # key_rotation_delay_blocks is read by keyrotation.delay_blocks (``value(params, ...)``) too.
    assert set(PARAMS) - read == set(), "registered but never read"


def test_no_code_reads_a_parameter_around_the_registry():
    offenders = []
    for path in python_files():
        if path.name in ("params.py", "params_change.py"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            # The CLI's click context has a ``params`` map of its own, and the API its query's.
            if _BYPASS.search(line) and "find_root().params" not in line and "query_params" not in line:
                offenders.append(f"{path.relative_to(SOURCE)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_parameters_every_genesis_stores_are_those_of_the_first_release():
    # These bytes are in every chain's genesis state root: they never change (see params).
    assert STORED_DEFAULTS == {
        "currencies": ["CHF", "EUR", "GBP", "INR", "KES", "USD"],
        "max_term_months": 480,
        "max_offers_per_loan": 16,
        "require_kyc": True,
        "voting_period_ms": 7 * 86_400_000,
    }


@pytest.mark.parametrize("name", list(PARAMS))
def test_each_default_is_in_bounds_and_its_text_reads_back(name):
    default = PARAMS[name].default
    assert problem(name, default) is None
    assert parse_text(name, as_text(name, default)) == default


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("max_term_months", "0", "max_term_months is a whole number from 1 to 1200 (months), not '0'"),
        ("max_term_months", "+5", "not '+5'"),
        ("max_term_months", "", "not ''"),
        ("grace_days", "1e3", "grace_days is a whole number from 0 to 365 (days), not '1e3'"),
        ("require_kyc", "True", "require_kyc is true or false, not 'True'"),
        ("currencies", "EUR, USD", "has ' USD', which is no currency code"),
        ("currencies", ",".join(f"A{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(33)), "not 33"),
    ],
)
def test_a_value_as_text_is_refused_saying_what_it_must_be(name, text, message):
    with pytest.raises(ParamError, match=re.escape(message)):
        parse_text(name, text)


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("require_kyc", "false", "must be true or false, got 'false'"),
        ("require_kyc", 0, "must be true or false, got 0"),
        ("max_offers_per_loan", True, "must be an integer from 1 to 64 (offers), got True"),
        ("max_offers_per_loan", 65, "got 65"),
        ("penalty_bps", -1, "must be an integer from 0 to 100000 (basis points), got -1"),
        ("currencies", "EUR", "must be a list of currency codes"),
        ("currencies", [], "must name 1 to 32 currencies, not 0"),
        ("currencies", ["EUR", 7], "must be a list of currency codes"),
    ],
)
def test_a_genesis_value_of_the_wrong_type_or_out_of_bounds_is_named(name, value, message):
    assert message in problem(name, value)


def test_app_problems_name_unknown_keys_with_the_nearest_parameter_in_order():
    problems = app_problems(
        {"max_term_month": 360, "colour": "red", "grace_days": -1, "max_restructuring": 2}
    )
    assert [(p.key, p.unknown, p.refused_always) for p in problems] == [
        ("max_term_month", True, False),
        ("colour", True, False),
        ("grace_days", False, False),
        ("max_restructuring", True, True),  # refused before the registry too
    ]
    assert problems[0].sentence == "did you mean 'app.max_term_months'?"
    assert problems[1].sentence.startswith("the chain parameters are currencies, max_term_months,")
    assert app_problems({name: param.default for name, param in PARAMS.items()}) == []


def test_a_loan_keeps_the_servicing_terms_in_force_when_it_was_disbursed():
    params = {"grace_days": 30, SERVICING_ERAS: [[1_000, 5, 90, 1000], [2_000, 10, 60, 1000]]}
    terms = [
        for_loan(params, "grace_days", {"disbursed_ms": disbursed})
        for disbursed in (999, 1_000, 1_001, 2_000, 2_001)
    ]
    assert terms == [5, 5, 10, 10, 30]
    assert for_loan(params, "default_days", {"disbursed_ms": 1_500}) == 60
    assert for_loan(params, "default_days", {"disbursed_ms": 2_500}) == 90  # the default: never changed
    assert for_loan({}, "penalty_bps", {"disbursed_ms": None}) == 1000


def test_the_readme_table_is_the_registry():
    text = README.read_text()
    start = text.index("<!-- params-table:start")
    start = text.index("\n", start) + 1
    end = text.index("<!-- params-table:end -->")
    assert text[start:end].strip() == markdown_table(), (
        "README.md's table of chain parameters differs from the registry: paste "
        "`python -c 'from lendchain.ledger.params import markdown_table; print(markdown_table())'`"
    )


def test_a_blocks_execution_decodes_the_params_without_re_encoding_them(monkeypatch):
    """``get_params`` runs before every block: it decodes the ledger's own state as execution's reads
    do, and gives what the checked decoding gave, on a genesis that overrides a default too."""
    genesis, _ = make_genesis()
    genesis = replace(genesis, app={"key_rotation_delay_blocks": 12})
    chain = Chain.start(genesis)
    raw = chain.state.get(PARAMS_KEY)
    assert get_params(chain.state) == codec.unpack(raw) == {**DEFAULT_PARAMS, "key_rotation_delay_blocks": 12}
    checked: list[bytes] = []
    real = codec.unpack
    monkeypatch.setattr(codec, "unpack", lambda data, **limits: checked.append(data) or real(data, **limits))
    chain.run()
    assert raw not in checked
    assert get_params(MemoryState()) == DEFAULT_PARAMS
