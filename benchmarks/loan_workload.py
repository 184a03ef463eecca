"""Signed loan lifecycles for the in-process benchmarks, generated a cohort at a time.

Every borrower sends ``party.register``; an attester member attests its KYC;
the borrower applies (``loan.apply``), a lender member offers, the borrower
accepts, the lender disburses and takes ``term`` repayments: 11 txs per
borrower with the default term of 5.

Borrowers go through in cohorts: a cohort's registrations, then its
attestations, applications, offers, acceptances, disbursements and repayment
rounds, so every tx comes after the ones it needs. With a cohort much smaller
than a measuring window the mix of kinds is the same in every window (a long
chain's first 10,000 txs cost what its last 10,000 would if nothing grew);
with one cohort of all borrowers it is the phase-by-phase order of
``ledger_bench.py``. Only the current cohort is held in memory, so a million
txs cost no more memory than a thousand; ``signed_in_background`` signs them
in a second process while the benchmark executes.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections.abc import Iterator, Sequence
from typing import Any

from lendchain.crypto import SigningKey
from lendchain.ledger.transactions import Transaction, build_transaction, decode_transaction

TERM = 5
TXS_PER_LOAN = 6 + TERM  # register, kyc.attest, apply, offer, accept, disburse, TERM repayments
KYC_VALID_MS = 10 * 365 * 86_400_000


def borrower_key(number: int) -> SigningKey:
    """Borrower ``number`` (1, 2, …): the same key in every run."""
    return SigningKey(number.to_bytes(4, "big") * 8)


def loan_lifecycles(
    chain_id: str,
    lenders: Sequence[SigningKey],
    attesters: Sequence[SigningKey],
    borrowers: int,
    *,
    cohort: int,
    created_ms: int,
    member_nonces: dict[str, int] | None = None,
    first_borrower: int = 0,
) -> Iterator[Transaction]:
    """``borrowers`` full lifecycles (``TXS_PER_LOAN`` txs each), signed in an order that executes.

    Loan ``i`` goes to ``lenders[i % len(lenders)]`` and is attested by
    ``attesters[i % len(attesters)]``. ``member_nonces`` (did -> next nonce)
    is where the members' nonces start and is updated as txs are signed;
    borrowers are numbered from ``first_borrower`` + 1 (``borrower_key``).
    """
    nonces = member_nonces if member_nonces is not None else {}
    kyc = {"level": 2, "expires_ms": created_ms + KYC_VALID_MS, "evidence_hash": "ab" * 32}

    def sign(key: SigningKey, kind: str, payload: dict) -> Transaction:
        nonce = nonces.get(key.did, 0)
        nonces[key.did] = nonce + 1
        return build_transaction(key, chain_id, kind, nonce, payload, created_ms)

    for first in range(0, borrowers, max(1, cohort)):
        numbers = range(first, min(borrowers, first + max(1, cohort)))
        keys = [borrower_key(first_borrower + i + 1) for i in numbers]
        lender_of = [lenders[i % len(lenders)] for i in numbers]
        for borrower in keys:
            yield sign(borrower, "party.register", {"role": "borrower"})
        for i, borrower in zip(numbers, keys, strict=True):
            yield sign(attesters[i % len(attesters)], "kyc.attest", {"subject": borrower.did, **kyc})
        applies = []
        for i, borrower in zip(numbers, keys, strict=True):
            payload = {"amount": 120_000 + i, "currency": "EUR", "term_months": TERM, "purpose": "stock"}
            applies.append(sign(borrower, "loan.apply", payload))
            yield applies[-1]
        offers = []
        for lender, apply in zip(lender_of, applies, strict=True):
            offers.append(sign(lender, "loan.offer", {"loan_id": apply.id.hex(), "rate_bps": 900}))
            yield offers[-1]
        for borrower, apply, offer in zip(keys, applies, offers, strict=True):
            yield sign(borrower, "loan.accept", {"loan_id": apply.id.hex(), "offer_id": offer.id.hex()})
        for lender, apply in zip(lender_of, applies, strict=True):
            yield sign(lender, "loan.disburse", {"loan_id": apply.id.hex()})
        for _ in range(TERM):
            for lender, apply in zip(lender_of, applies, strict=True):
                yield sign(lender, "loan.repay", {"loan_id": apply.id.hex(), "amount": 24_000})


def _sign_chunks(
    out: Any,
    chain_id: str,
    lenders: list[bytes],
    attesters: list[bytes],
    borrowers: int,
    cohort: int,
    created_ms: int,
    chunk: int,
) -> None:
    """Signer process: put the lifecycles' txs in ``out`` as lists of wire bytes, then None."""
    keys = ([SigningKey(seed) for seed in lenders], [SigningKey(seed) for seed in attesters])
    txs = loan_lifecycles(chain_id, *keys, borrowers, cohort=cohort, created_ms=created_ms)
    parent = os.getppid()

    def put(item: list[bytes] | None) -> None:
        while True:
            try:
                return out.put(item, timeout=1)
            except queue.Full:
                if os.getppid() != parent:  # the benchmark died: stop signing
                    raise SystemExit(1) from None

    batch = []
    for tx in txs:
        batch.append(tx.encode())
        if len(batch) == chunk:
            put(batch)
            batch = []
    put(batch)
    put(None)


def signed_in_background(
    chain_id: str,
    lenders: Sequence[SigningKey],
    attesters: Sequence[SigningKey],
    borrowers: int,
    *,
    cohort: int,
    created_ms: int,
    chunk: int,
) -> Iterator[list[Transaction]]:
    """``loan_lifecycles`` in lists of ``chunk`` txs, signed by a second process meanwhile."""
    context = multiprocessing.get_context("spawn")
    chunks = context.Queue(maxsize=32)
    seeds = ([k.seed for k in lenders], [k.seed for k in attesters])
    signer = context.Process(
        target=_sign_chunks,
        args=(chunks, chain_id, *seeds, borrowers, cohort, created_ms, chunk),
        daemon=True,
    )
    signer.start()
    try:
        while (batch := chunks.get()) is not None:
            yield [decode_transaction(raw) for raw in batch]
    finally:
        signer.kill()
        signer.join()
