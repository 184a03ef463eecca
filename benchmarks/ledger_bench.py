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

from loan_workload import TXS_PER_LOAN, loan_lifecycles

from lendchain.cli.network import tune_gc
from lendchain.crypto import SigningKey
from lendchain.genesis import Genesis, Member
from lendchain.ledger.block import Block, check_block, make_block
from lendchain.ledger.state import BlockExecution, MemoryState, genesis_state
from lendchain.ledger.transactions import Transaction, decode_transaction, verify_signatures
from lendchain.node.store import ChainStore

CHAIN_ID = "lendchain-bench"


def build_workload(n: int) -> tuple[Genesis, list[Transaction]]:
    """One lender (also the KYC attester), n // 11 loans, phase by phase (one cohort)."""
    lender = SigningKey(b"\x01" * 32)
    genesis = Genesis(
        CHAIN_ID,
        1_700_000_000_000,
        (Member("bank1", lender.public_key, "/ip4/127.0.0.1/tcp/1", ("lender", "kyc")),),
    )
    borrowers = n // TXS_PER_LOAN
    txs = loan_lifecycles(
        CHAIN_ID, [lender], [lender], borrowers, cohort=borrowers, created_ms=genesis.genesis_time_ms
    )
    return genesis, list(txs)


def propose_blocks(
    genesis: Genesis, txs: list[Transaction], block_txs: int
) -> tuple[list[tuple[bytes, list[Transaction]]], MemoryState]:
    """Blocks of ``block_txs`` cut in order as a proposer would: (encoded block, its txs), and the state after."""
    state = genesis_state(genesis)
    parent, parent_ts = genesis.hash(), genesis.genesis_time_ms
    blocks = []
    for height, start in enumerate(range(0, len(txs), block_txs), start=1):
        chunk = txs[start : start + block_txs]
        block, execution = make_block(
            parent_hash=parent,
            parent_timestamp_ms=parent_ts,
            height=height,
            proposer="bank1",
            candidate_txs=chunk,
            reader=state,
            now_ms=parent_ts + 1,
            chain_id=CHAIN_ID,
        )
        assert not execution.dropped, execution.dropped[:3]
        failed = [r for r in execution.results if not r.ok]
        assert not failed, failed[:3]
        state.apply(execution.changes)
        parent, parent_ts = block.hash(), block.header.timestamp_ms
        blocks.append((block.encode(), chunk))
    return blocks, state


def check_next_block(
    store: ChainStore, raw: bytes, verified_tx_ids: set[bytes], chain_id: str = CHAIN_ID
) -> tuple[Block, BlockExecution]:
    """``check_block`` of ``raw`` as the next block on ``store``, as a validating node checks it
    (signatures verified already, so only their ids are passed)."""
    head = store.head()
    return check_block(
        raw,
        expected_height=head.height + 1,
        parent_hash=head.hash,
        parent_timestamp_ms=head.timestamp_ms,
        reader=store,
        now_ms=None,
        max_skew_ms=0,
        chain_id=chain_id,
        verified_tx_ids=verified_tx_ids,
    )


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
    tune_gc()  # the collector settings of a node process (``lendchain start``)

    # Proposer side (not timed as a stage): cut blocks in order.
    proposed, state = propose_blocks(genesis, txs, args.block)
    blocks = [raw for raw, _ in proposed]
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
        for raw in blocks:
            with t_execute:
                block, execution = check_next_block(store, raw, verified)
            with t_store:
                store.commit_block(raw, b"certificate", execution, block=block)
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
