"""An asset's collateral id (``lendchain.collateral_ids``): one id per asset however its identifier is
typed, a different one per kind, the identifier nowhere in it, and a refusal for an identifier that
cannot be of its kind."""

from __future__ import annotations

import hashlib

import pytest

from lendchain.collateral_ids import ASSET_TAG, NORMALISERS, AssetIdError, asset_id, normalise
from lendchain.ledger.collateral import ASSET_KINDS


def test_every_kind_the_ledger_takes_has_a_rule():
    assert tuple(NORMALISERS) == ASSET_KINDS


def test_the_id_is_the_tagged_sha256_of_kind_and_normalised_identifier():
    expected = hashlib.sha256(ASSET_TAG + b"\x00vehicle\x00WVWZZZ1JZXW000001").hexdigest()
    assert asset_id("vehicle", "WVWZZZ1JZXW000001") == expected
    assert b"WVWZZZ1JZXW000001".hex() not in expected


@pytest.mark.parametrize(
    ("kind", "typed", "normalised"),
    [
        (
            "vehicle",
            ["WVWZZZ1JZXW000001", "wvwzzz1jzxw000001", "WVW-ZZZ-1JZ-XW000001", " WVW ZZZ1JZXW000001 "],
            "WVWZZZ1JZXW000001",
        ),
        ("real_estate", ["GB:AB123456", "gb:ab 123456", " GB : AB123456"], "GB:AB123456"),
        ("deposit", ["DE89 3704 0044 0532 0130 00", "de89370400440532013000"], "DE89370400440532013000"),
        ("securities", ["US0378331005:CUST-1", "us0378331005 : cust-1"], "US0378331005:CUST-1"),
        ("equipment", ["Komatsu:PC210-12345", "KOMATSU : pc210-12345"], "KOMATSU:PC210-12345"),
        ("other", ["KE-Movables:CR/2024/0042", "ke-movables:cr/2024/0042"], "KE-MOVABLES:CR/2024/0042"),
    ],
)
def test_the_same_asset_typed_differently_gets_the_same_id(kind, typed, normalised):
    assert {normalise(kind, identifier) for identifier in typed} == {normalised}
    assert len({asset_id(kind, identifier) for identifier in typed}) == 1


def test_the_kind_is_part_of_the_id():
    ids = {asset_id(kind, "KOMATSU:PC210-12345") for kind in ("equipment", "other")}
    assert len(ids) == 2


@pytest.mark.parametrize(
    ("kind", "identifier", "expected"),
    [
        ("vehicle", "WVWZZZ1JZXW0000011", "a VIN has 17 letters and digits"),
        ("vehicle", "WVWZZZ1JZXW00000Q", "without I, O and Q"),
        ("deposit", "DE89 3704 0044 0532 0130 01", "with valid check digits"),
        ("deposit", "DE89", "with valid check digits"),
        ("real_estate", "GB", "give country and title as COUNTRY:TITLE"),
        ("real_estate", "G1:AB123456", "two-letter ISO 3166 code"),
        ("securities", "US0378331005", "give isin and account as ISIN:ACCOUNT"),
        ("securities", "US037833100X:CUST", "is no ISIN"),
        ("equipment", ":SERIAL", "give manufacturer and serial as MANUFACTURER:SERIAL"),
        ("other", "R:" + "X" * 65, "each 1 to 64 letters"),
        ("boat", "HIN123", "unknown asset kind 'boat'; the kinds are vehicle, real_estate"),
    ],
)
def test_an_identifier_that_cannot_be_of_its_kind_is_refused_saying_what_it_must_be(
    kind, identifier, expected
):
    with pytest.raises(AssetIdError) as refused:
        asset_id(kind, identifier)
    assert expected in str(refused.value)
