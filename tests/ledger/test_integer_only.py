"""The ledger computes with integers only, so what it stores needs no float check.

``codec.pack_trusted`` (what the ledger packs its state, results and
history with) does not refuse floats as ``codec.pack`` does; it relies on
the handlers never making one. Inputs cannot bring one in (``codec.unpack``
refuses floats in txs and blocks), so a float could only come from the
ledger's own code: true division, a float literal, ``float()``, ``math``, a
clock or a random number. This test reads that code and finds none.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime
import enum
import uuid
from pathlib import Path

import pytest

import lendchain
from lendchain import codec

LEDGER = Path(lendchain.__file__).parent / "ledger"
FLOAT_MODULES = {"math", "time", "random", "statistics", "decimal", "fractions"}


def float_sources(source: str) -> list[str]:
    """Where ``source`` could make a float (line: what), by its syntax."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.Div):
            found.append(f"{line}: true division (use //)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, (float, complex)):
            found.append(f"{line}: float literal {node.value!r}")
        elif isinstance(node, ast.Name) and node.id == "float":
            found.append(f"{line}: float")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            found += [f"{line}: import {name}" for name in names if name.split(".")[0] in FLOAT_MODULES]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            exponent = node.right
            if isinstance(exponent, ast.UnaryOp) and isinstance(exponent.op, ast.USub):
                found.append(f"{line}: negative power")
    return found


@pytest.mark.parametrize("path", sorted(LEDGER.glob("*.py")), ids=lambda p: p.name)
def test_ledger_code_makes_no_float(path):
    assert float_sources(path.read_text()) == [], f"{path.name} can make a float"


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("x = a / b", "true division"),
        ("x /= 2", "true division"),
        ("x = 0.5", "float literal"),
        ("x = float(y)", "float"),
        ("import math", "import math"),
        ("from time import time", "import time"),
        ("x = 10 ** -2", "negative power"),
    ],
)
def test_each_float_source_is_found(source, what):
    assert [what in found for found in float_sources(source)] == [True]


def test_integer_code_is_not_flagged():
    assert float_sources("x = a // b\ny = (D + b) ** n\nz = -(-a // b)\nw = 10**15\n") == []


def test_pack_trusted_writes_what_pack_writes_and_the_suite_checks_it():
    value = {"b": [1, -1, 2**64 - 1, -(2**63)], "a": {"é": b"\x00", "z": None, "c": True}, "": "x" * 300}
    assert codec.pack_trusted(value) == codec.pack(value)
    assert codec._check_trusted, "tests/conftest.py sets LENDCHAIN_CHECK_TRUSTED_PACK=1"
    with pytest.raises(codec.CodecError, match="float"):
        codec.pack_trusted({"rate": 0.085})  # caught here; in production the source test stands guard


def test_pack_trusted_hands_what_it_cannot_encode_to_pack_for_the_error():
    with pytest.raises(codec.CodecError, match="not a str"):
        codec.pack_trusted({1: 2})
    with pytest.raises(codec.CodecError, match="64-bit"):
        codec.pack_trusted([2**64])


class Kind(enum.Enum):
    A = "a"


class Amount(int):
    pass


@dataclasses.dataclass
class Row:
    number: int


def test_what_ormsgpack_would_encode_but_pack_refuses_is_refused_and_subclasses_pack_as_pack_does():
    for value in (Row(1), [datetime.datetime(2026, 12, 5)], {"id": uuid.UUID(int=1)}, Kind.A):
        with pytest.raises(codec.CodecError, match="cannot be encoded"):
            codec.pack_trusted(value)
    assert codec.pack_trusted({"amount": Amount(5), "flag": True}) == codec.pack({"amount": 5, "flag": True})
