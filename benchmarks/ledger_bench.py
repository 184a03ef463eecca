"""Single-process ledger benchmark: decode, verify, execute and store signed loan txs.

Builds N signed transactions that walk loans through their whole life
(register, KYC attestation, apply, offer, accept, disburse, repayments),
cuts them into blocks of B as a proposer would, then measures what a
validating node does with them, stage by stage, on a fresh LevelDB:

  decode    decode_transaction of every tx's wire bytes
  verify    Ed25519 signature checks (1 thread, and W threads)
  execute   check_block with signatures already verified: decode, tx root,
            execution, state and results roots
  store     ChainStore.commit_block (one synced WriteBatch per block)

Usage: python benchmarks/ledger_bench.py [--txs 20000] [--block 1000] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from lendchain.crypto import SigningKey
from lendchain.genesis import Genesis, Member
from lendchain.ledger.block import check_block, make_block
from lendchain.ledger.state import genesis_state
from lendchain.ledger.transactions import (
    Transaction,
    build_transaction,
    decode_transaction,
    verify_signatures,
)
from lendchain.node.store import ChainStore

CHAIN_ID = "lendchain-bench"
TXS_PER_LOAN = 11  # register, kyc.attest, apply, offer, accept, disburse, 5 repayments
TERM = 5


def build_workload(n: int) -> tuple[Genesis, list[Transaction]]:
    lender = SigningKey(b"\x01" * 32)
    genesis = Genesis(
        CHAIN_ID,
        1_700_000_000_000,
        (Member("bank1", lender.public_key, "/ip4/127.0.0.1/tcp/1", ("lender", "kyc")),),
    )
    borrowers = [SigningKey(i.to_bytes(4, "big") * 8) for i in range(1, n // TXS_PER_LOAN + 1)]
    nonces: dict[str, int] = {}

    def sign(key: SigningKey, kind: str, payload: dict) -> Transaction:
        nonce = nonces.get(key.did, 0)
        nonces[key.did] = nonce + 1
        return build_transaction(key, CHAIN_ID, kind, nonce, payload, 1_700_000_000_000)

    txs = [sign(b, "party.register", {"role": "borrower"}) for b in borrowers]
    kyc = {"level": 2, "expires_ms": 1_700_000_000_000 + 10 * 365 * 86_400_000, "evidence_hash": "ab" * 32}
    txs += [sign(lender, "kyc.attest", {"subject": b.did, **kyc}) for b in borrowers]
    applies = [
        sign(
            b,
            "loan.apply",
            {"amount": 120_000 + i, "currency": "EUR", "term_months": TERM, "purpose": "stock"},
        )
        for i, b in enumerate(borrowers)
    ]
    txs += applies
    offers = [sign(lender, "loan.offer", {"loan_id": a.id.hex(), "rate_bps": 900}) for a in applies]
    txs += offers
    txs += [
        sign(b, "loan.accept", {"loan_id": a.id.hex(), "offer_id": o.id.hex()})
        for b, a, o in zip(borrowers, applies, offers, strict=True)
    ]
    txs += [sign(lender, "loan.disburse", {"loan_id": a.id.hex()}) for a in applies]
    for _ in range(TERM):
        txs += [sign(lender, "loan.repay", {"loan_id": a.id.hex(), "amount": 24_000}) for a in applies]
    return genesis, txs


class Clock:
    """Wall and CPU time of a stage (CPU time is steadier on a shared machine)."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu

    def __add__(self, other: Clock) -> Clock:
        total = Clock()
        total.wall, total.cpu = self.wall + other.wall, self.cpu + other.cpu
        return total


def rate(count: int, clock: Clock) -> str:
    return (
        f"{count / clock.wall:>9,.0f} tx/s wall ({clock.wall:5.2f} s)"
        f"  {count / clock.cpu:>9,.0f} tx/s per CPU-second ({clock.cpu:5.2f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=20_000)
    parser.add_argument("--block", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    started = time.perf_counter()
    genesis, txs = build_workload(args.txs)
    print(f"built and signed {len(txs)} txs in {time.perf_counter() - started:.1f} s")

    # Proposer side (not timed as a stage): cut blocks in order.
    state = genesis_state(genesis)
    parent, parent_ts = genesis.hash(), genesis.genesis_time_ms
    blocks: list[bytes] = []
    for height, start in enumerate(range(0, len(txs), args.block), start=1):
        block, execution = make_block(
            parent_hash=parent,
            parent_timestamp_ms=parent_ts,
            height=height,
            proposer="bank1",
            candidate_txs=txs[start : start + args.block],
            reader=state,
            now_ms=parent_ts + 1,
            chain_id=CHAIN_ID,
        )
        assert not execution.dropped, execution.dropped[:3]
        failed = [r for r in execution.results if not r.ok]
        assert not failed, failed[:3]
        state.apply(execution.changes)
        parent, parent_ts = block.hash(), block.header.timestamp_ms
        blocks.append(block.encode())
    wire = [tx.encode() for tx in txs]

    t_decode, t_verify1, t_verify, t_execute, t_store = Clock(), Clock(), Clock(), Clock(), Clock()
    with t_decode:
        decoded = [decode_transaction(raw) for raw in wire]
    with t_verify1:
        assert all(verify_signatures(decoded, workers=1))
    decoded = [decode_transaction(raw) for raw in wire]
    with t_verify:
        assert all(verify_signatures(decoded, workers=args.workers))
    verified = {tx.id for tx in decoded}

    with tempfile.TemporaryDirectory() as tmp:
        store = ChainStore.open(tmp, genesis)
        for height, raw in enumerate(blocks, start=1):
            head = store.head()
            with t_execute:
                _, execution = check_block(
                    raw,
                    expected_height=height,
                    parent_hash=head.hash,
                    parent_timestamp_ms=head.timestamp_ms,
                    reader=store,
                    now_ms=None,
                    max_skew_ms=0,
                    chain_id=CHAIN_ID,
                    verified_tx_ids=verified,
                )
            with t_store:
                store.commit_block(raw, b"certificate", execution)
        assert store.head().state_root == state.get(b"meta/state_root")
        store.close()

    n = len(txs)
    print(f"{n} txs in {len(blocks)} blocks of {args.block}")
    print(f"stage                 {'(CPU time counts both threads when verifying on 2)':>50}")
    print(f"decode                 {rate(n, t_decode)}")
    print(f"verify (1 thread)      {rate(n, t_verify1)}")
    print(f"verify ({args.workers} threads)     {rate(n, t_verify)}")
    print(f"execute (check_block)  {rate(n, t_execute)}")
    print(f"store (commit_block)   {rate(n, t_store)}")
    print(f"execute+store          {rate(n, t_execute + t_store)}")
    print(f"decode+verify+execute+store {rate(n, t_decode + t_verify + t_execute + t_store)}")


if __name__ == "__main__":
    main()
