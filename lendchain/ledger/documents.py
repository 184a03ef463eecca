"""Private documents on a loan: sealed boxes addressed to consented members.

``doc.attach`` {loan_id, recipient, name, doc_hash, ciphertext}: the loan's
borrower, or a member the borrower consented to for scope ``documents``,
attaches a document encrypted (outside the chain, pynacl sealed box with the
recipient's Ed25519 key converted to X25519) for one ``recipient`` member,
who must also hold an unexpired ``documents`` consent from the borrower at
block time. The chain cannot read the ciphertext; it keeps it with the
sha256 of the plaintext (``doc_hash``) so the recipient can check what it
decrypts. A document's id is its tx id; the loan lists its documents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.identity import DID_PATTERN, HEX_HASH, has_consent
from lendchain.ledger.kinds import register_kind
from lendchain.ledger.loans import LOAN_ID_FIELD, load_loan, with_history
from lendchain.ledger.schema import Field, Schema
from lendchain.ledger.state import institution_key, loan_key

if TYPE_CHECKING:
    from lendchain.ledger.transactions import Transaction

MAX_CIPHERTEXT = 48 * 1024  # a tx is at most 64 KiB
MAX_DOCUMENTS_PER_LOAN = 32


def document_key(document_id: bytes) -> bytes:
    return b"doc/" + document_id


def attach_document(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    borrower = loan["borrower"]
    recipient = tx.payload["recipient"]
    now = ctx.timestamp_ms
    if tx.sender != borrower and not (
        ctx.get(institution_key(tx.sender)) is not None
        and has_consent(ctx.get, borrower, tx.sender, "documents", now)
    ):
        raise TxRejected(
            "forbidden",
            f"doc.attach sender {tx.sender} is neither the borrower nor a member with the borrower's "
            f"consent to scope 'documents'",
        )
    if ctx.get(institution_key(recipient)) is None:
        raise TxRejected(
            "not_found", f"doc.attach field 'recipient' names no consortium member ({recipient})"
        )
    if not has_consent(ctx.get, borrower, recipient, "documents", now):
        raise TxRejected(
            "forbidden",
            f"doc.attach field 'recipient': the borrower has no unexpired consent to scope 'documents' "
            f"for {recipient}",
        )
    documents = loan.get("documents", [])
    if len(documents) >= MAX_DOCUMENTS_PER_LOAN:
        raise TxRejected("invalid_state", f"loan {loan_id.hex()[:16]} already has {len(documents)} documents")
    ctx.put(
        document_key(ctx.tx_id),
        {
            "loan_id": loan_id,
            "sender": tx.sender,
            "recipient": recipient,
            "name": tx.payload["name"],
            "doc_hash": bytes.fromhex(tx.payload["doc_hash"]),
            "ciphertext": tx.payload["ciphertext"],
            "height": ctx.height,
        },
    )
    loan = {**loan, "documents": [*documents, ctx.tx_id]}
    loan["history_len"] = with_history(
        loan_id, loan, ctx, tx.kind, document_id=ctx.tx_id.hex(), recipient=recipient
    )
    ctx.put(loan_key(loan_id), loan)
    ctx.emit("doc.attached", loan_id=loan_id.hex(), document_id=ctx.tx_id.hex(), recipient=recipient)


register_kind(
    "doc.attach",
    Schema(
        (
            LOAN_ID_FIELD,
            Field("recipient", "str", pattern=DID_PATTERN),
            Field("name", "str", min=1, max=120),
            Field("doc_hash", "str", pattern=HEX_HASH),
            Field("ciphertext", "bytes", min=48, max=MAX_CIPHERTEXT),
        )
    ),
    attach_document,
)
