"""Sealed documents on a loan, addressed only to consented members (issue 6, item 2)."""

from __future__ import annotations

import pytest

from lendchain import codec
from lendchain.crypto import CryptoError, open_sealed, seal_to
from lendchain.ledger import queries
from tests.ledger.chain import GENESIS_MS, Chain, make_genesis, seeded_key

FAR = GENESIS_MS + 10**12
PAYSLIP = b"payslip: salary 4 200 EUR / month"


@pytest.fixture
def world():
    genesis, members = make_genesis()
    chain = Chain.start(genesis)
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    apply = {"amount": 5000, "currency": "EUR", "term_months": 6, "purpose": "a bike"}
    loan_id = chain.run_one(chain.tx(borrower, "loan.apply", apply)).tx_id.hex()
    return chain, borrower, members, loan_id


def attach(chain, sender, loan_id, recipient):
    payload = {
        "loan_id": loan_id,
        "recipient": recipient.did,
        "name": "payslip.pdf",
        "doc_hash": codec.sha256(PAYSLIP).hex(),
        "ciphertext": seal_to(recipient.public_key, PAYSLIP),
    }
    return chain.run_one(chain.tx(sender, "doc.attach", payload))


def consent(chain, borrower, member, until=FAR):
    grant = {"member": member.did, "scopes": "documents", "until_ms": until}
    assert chain.run_one(chain.tx(borrower, "consent.grant", grant)).ok


def test_borrower_attaches_for_a_consented_member_who_alone_can_read_it(world):
    chain, borrower, members, loan_id = world
    lender, other = members[0], members[1]
    consent(chain, borrower, lender)
    result = attach(chain, borrower, loan_id, lender)
    assert result.ok
    document = queries.lookup(chain.state, "loan", loan_id)["documents"][0]
    assert document["document_id"] == result.tx_id.hex() and document["recipient"] == lender.did
    ciphertext = bytes.fromhex(document["ciphertext"])
    assert PAYSLIP not in ciphertext
    plaintext = open_sealed(lender, ciphertext)
    assert codec.sha256(plaintext).hex() == document["doc_hash"]
    with pytest.raises(CryptoError):
        open_sealed(other, ciphertext)


def test_consent_revoked_before_attaching_refuses_the_document(world):
    chain, borrower, members, loan_id = world
    lender = members[0]
    consent(chain, borrower, lender)
    assert chain.run_one(chain.tx(borrower, "consent.revoke", {"member": lender.did})).ok
    refused = attach(chain, borrower, loan_id, lender)
    assert refused.code == "forbidden" and "'recipient'" in refused.message
    assert queries.lookup(chain.state, "loan", loan_id)["documents"] == []


def test_expired_consent_refuses_the_document(world):
    chain, borrower, members, loan_id = world
    consent(chain, borrower, members[0], until=chain.head_ms + 1500)
    assert attach(chain, borrower, loan_id, members[0]).code == "forbidden"


def test_member_needs_the_borrowers_consent_to_write(world):
    chain, borrower, members, loan_id = world
    lender, bureau = members[0], members[1]
    consent(chain, borrower, bureau)
    refused = attach(chain, lender, loan_id, bureau)
    assert refused.code == "forbidden" and "sender" in refused.message
    consent(chain, borrower, lender)
    assert attach(chain, lender, loan_id, bureau).ok


def test_recipient_must_be_a_member(world):
    chain, borrower, _, loan_id = world
    result = attach(chain, borrower, loan_id, seeded_key(9))
    assert result.code == "not_found" and "'recipient'" in result.message
