"""An asset's collateral id: the hash that names a pledged asset on the chain, computed here, off chain.

The collateral register (``lendchain.ledger.collateral``) must let two
members recognise the same car, house or deposit without anyone putting the
VIN, the title number or the account on the chain. So the client normalises
the identifier by the rules of its kind, and the chain sees only

    sha256("lendchain/collateral-asset/1" || 0x00 || kind || 0x00 || normalised identifier)

as 64 hex digits. Normalisation is what makes two members' hashes meet: the
same VIN typed with spaces, hyphens or in lower case gives the same id, and
an identifier that cannot be the kind's (a VIN of 16 characters, an IBAN
whose check digits fail) is refused here, before it could become an id that
matches nothing. The rules per kind (``NORMALISERS``):

- ``vehicle``: the VIN, 17 letters and digits without I, O and Q (spaces and
  hyphens dropped);
- ``real_estate``: ``CC:TITLE``, the land registry's country (ISO 3166
  alpha-2) and the title or parcel number there;
- ``deposit``: the account's IBAN (its check digits verified);
- ``securities``: ``ISIN:ACCOUNT``, the ISIN (its check digit verified) and
  the holder's custody account that holds it;
- ``equipment``: ``MANUFACTURER:SERIAL``, as on the rating plate;
- ``other``: ``REGISTER:REFERENCE``, a register or issuer and its reference
  (a receivable, a deposit outside IBAN countries...).

Letters are upper-cased and white space dropped throughout; the parts of
the ``X:Y`` forms are letters, digits and ``/ . - &``. The domain tag keeps
a collateral id from ever equalling another hash on the chain (a KYC
evidence hash, a document hash) of the same bytes, and the kind keeps a
deposit from matching a vehicle. What the hash does not hide from a member
that guesses an identifier: see the ledger module.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

from lendchain.ledger.collateral import ASSET_KINDS

ASSET_TAG = b"lendchain/collateral-asset/1"
_VIN = re.compile(r"[A-HJ-NPR-Z0-9]{17}")
_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")
_ISIN = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]")
_COUNTRY = re.compile(r"[A-Z]{2}")
_PART = re.compile(r"[A-Z0-9/.\-&]{1,64}")


class AssetIdError(ValueError):
    """An identifier that cannot name an asset of its kind; the message says what it must look like."""


def _squeezed(identifier: str) -> str:
    return re.sub(r"\s+", "", identifier).upper()


def _two_parts(identifier: str, first: str, second: str, example: str) -> tuple[str, str]:
    """``X:Y`` split and normalised, each part checked; AssetIdError naming the form otherwise."""
    text = _squeezed(identifier)
    head, colon, tail = text.partition(":")
    if not colon or not _PART.fullmatch(head) or not _PART.fullmatch(tail):
        raise AssetIdError(
            f"give {first} and {second} as {first.upper().replace(' ', '_')}:{second.upper().replace(' ', '_')}"
            f", e.g. {example} (each 1 to 64 letters, digits or / . - &), not {identifier!r}"
        )
    return head, tail


def _vehicle(identifier: str) -> str:
    vin = re.sub(r"[\s\-]+", "", identifier).upper()
    if not _VIN.fullmatch(vin):
        raise AssetIdError(
            f"a VIN has 17 letters and digits, without I, O and Q (e.g. WVWZZZ1JZXW000001), not {identifier!r}"
        )
    return vin


def _real_estate(identifier: str) -> str:
    country, title = _two_parts(identifier, "country", "title", "GB:AB123456")
    if not _COUNTRY.fullmatch(country):
        raise AssetIdError(
            f"the land registry's country is its two-letter ISO 3166 code (GB, DE, KE...), not {country!r}"
        )
    return f"{country}:{title}"


def _mod97(text: str) -> int:
    return int("".join(str(int(char, 36)) for char in text)) % 97


def _deposit(identifier: str) -> str:
    iban = _squeezed(identifier)
    if not _IBAN.fullmatch(iban) or _mod97(iban[4:] + iban[:4]) != 1:
        raise AssetIdError(
            f"a deposit is named by its account's IBAN, with valid check digits (e.g. "
            f"DE89 3704 0044 0532 0130 00), not {identifier!r}"
        )
    return iban


def _isin_valid(isin: str) -> bool:
    digits = "".join(str(int(char, 36)) for char in isin)
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _securities(identifier: str) -> str:
    isin, account = _two_parts(identifier, "isin", "account", "US0378331005:CUST-12345")
    if not _ISIN.fullmatch(isin) or not _isin_valid(isin):
        raise AssetIdError(f"{isin!r} is no ISIN: 12 characters whose last is a valid check digit")
    return f"{isin}:{account}"


def _equipment(identifier: str) -> str:
    return ":".join(_two_parts(identifier, "manufacturer", "serial", "KOMATSU:PC210-12345"))


def _other(identifier: str) -> str:
    return ":".join(_two_parts(identifier, "register", "reference", "KE-MOVABLES:CR-2024-0042"))


NORMALISERS: dict[str, Callable[[str], str]] = {
    "vehicle": _vehicle,
    "real_estate": _real_estate,
    "deposit": _deposit,
    "securities": _securities,
    "equipment": _equipment,
    "other": _other,
}


def normalise(kind: str, identifier: str) -> str:
    """The identifier as its kind's rules write it; AssetIdError saying what is wrong otherwise."""
    normaliser = NORMALISERS.get(kind)
    if normaliser is None:
        raise AssetIdError(f"unknown asset kind {kind!r}; the kinds are {', '.join(ASSET_KINDS)}")
    return normaliser(identifier)


def asset_id(kind: str, identifier: str) -> str:
    """The collateral id (64 hex digits) of the asset ``identifier`` of ``kind``."""
    normalised = normalise(kind, identifier)
    return hashlib.sha256(ASSET_TAG + b"\x00" + kind.encode() + b"\x00" + normalised.encode()).hexdigest()
