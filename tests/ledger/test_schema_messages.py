"""Every refusal of ``check_payload`` says the same sentence it always said (the checks were made
cheaper for the intake path: messages are built only for a refusal, patterns compiled once)."""

from __future__ import annotations

import pytest

from lendchain.ledger.errors import TxRejected
from lendchain.ledger.schema import Field, Schema, check_payload

SCHEMA = Schema(
    (
        Field("amount", "int", min=1, max=100),
        Field("note", "str", required=False, min=1, max=5),
        Field("blob", "bytes", required=False, max=2),
        Field("flag", "bool", required=False),
        Field("role", "str", required=False, choices=("borrower", "investor")),
        Field("hash", "str", required=False, pattern="[0-9a-f]{4}"),
    )
)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "demo.kind payload must be a map, got list"),
        ({"amount": 1, "zeta": 1, "alpha": 2}, "demo.kind payload has unknown field 'alpha'"),
        ({"note": "n"}, "demo.kind payload is missing field 'amount'"),
        ({"amount": True}, "demo.kind field 'amount' must be int, got bool"),
        ({"amount": "1"}, "demo.kind field 'amount' must be int, got str"),
        ({"amount": 0}, "demo.kind field 'amount' must be at least 1, got 0"),
        ({"amount": 101}, "demo.kind field 'amount' must be at most 100, got 101"),
        ({"amount": 1, "note": ""}, "demo.kind field 'note' must be at least 1 long, got 0"),
        ({"amount": 1, "note": "toolong"}, "demo.kind field 'note' must be at most 5 long, got 7"),
        ({"amount": 1, "blob": b"abc"}, "demo.kind field 'blob' must be at most 2 long, got 3"),
        ({"amount": 1, "flag": 1}, "demo.kind field 'flag' must be bool, got int"),
        (
            {"amount": 1, "role": "lender"},
            "demo.kind field 'role' must be one of borrower, investor, got 'lender'",
        ),
        ({"amount": 1, "hash": "abcg"}, "demo.kind field 'hash' must match [0-9a-f]{4}, got 'abcg'"),
        ({"amount": 1, "hash": "abcd0"}, "demo.kind field 'hash' must match [0-9a-f]{4}, got 'abcd0'"),
    ],
)
def test_a_refused_payload_is_told_why(payload, message):
    with pytest.raises(TxRejected) as refused:
        check_payload("demo.kind", SCHEMA, payload)
    assert (refused.value.code, refused.value.message) == ("bad_payload", message)


def test_a_payload_that_fits_passes():
    check_payload("demo.kind", SCHEMA, {"amount": 100, "note": "12345", "blob": b"ab", "flag": False})
    check_payload("demo.kind", SCHEMA, {"amount": 1, "role": "investor", "hash": "09af"})
