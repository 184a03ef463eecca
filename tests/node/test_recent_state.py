"""The chain store's memory of the last blocks' state changes (``node/recent_state.py``).

Every state read the store answers from memory must be what LevelDB holds at
the head: after each commit, after keys are deleted, once old blocks are
forgotten, after a failed write and after a reopen.
"""

from __future__ import annotations

import pytest

from lendchain.ledger.block import check_block
from lendchain.ledger.servicing import DAY_MS
from lendchain.node.recent_state import RecentState
from lendchain.node.store import ChainStore, StoreError
from tests.ledger.chain import KYC_MEMBER, Chain, make_genesis, member_key, seeded_key

LENDER = member_key(0)
BORROWERS = [seeded_key(1 + i) for i in range(3)]
APPLY = {"amount": 9_000, "currency": "EUR", "term_months": 3, "purpose": "tools"}


def on_disk(store: ChainStore, key: bytes) -> bytes | None:
    """What LevelDB itself holds for state ``key`` (the store's checked read, no memory)."""
    return store._get(b"s:" + key)


def lifecycle_blocks(chain: Chain):
    """Txs, block by block, that walk three loans through repayment: new keys, rewritten ones and
    deleted ones (repayments a month apart move the loans to the next slot of the due-loan
    index, and the page and slot they leave are deleted)."""
    yield [chain.tx(b, "party.register", {"role": "borrower"}) for b in BORROWERS]
    yield [chain.attest(member_key(KYC_MEMBER), b.did) for b in BORROWERS]
    applies = [chain.tx(b, "loan.apply", APPLY) for b in BORROWERS]
    yield applies
    loans = [tx.id.hex() for tx in applies]
    offers = [chain.tx(LENDER, "loan.offer", {"loan_id": loan, "rate_bps": 700}) for loan in loans]
    yield offers
    yield [
        chain.tx(b, "loan.accept", {"loan_id": loan, "offer_id": offer.id.hex()})
        for b, loan, offer in zip(BORROWERS, loans, offers, strict=True)
    ]
    yield [chain.tx(LENDER, "loan.disburse", {"loan_id": loan}) for loan in loans]
    for _ in range(3):
        chain.head_ms += 30 * DAY_MS
        yield [chain.tx(LENDER, "loan.repay", {"loan_id": loan, "amount": 3_000}) for loan in loans]


def validate_and_commit(store: ChainStore, chain: Chain, txs) -> dict[bytes, bytes | None]:
    """Cut a block on ``chain``, check it against ``store`` as a backup does, commit it to both."""
    block, proposed = chain.cut(txs)
    head = store.head()
    checked, execution = check_block(
        block.encode(),
        expected_height=head.height + 1,
        parent_hash=head.hash,
        parent_timestamp_ms=head.timestamp_ms,
        reader=store,
        now_ms=None,
        max_skew_ms=0,
        chain_id=chain.genesis.chain_id,
    )
    assert execution.changes == proposed.changes and execution.results == proposed.results
    store.commit_block(block.encode(), b"certificate", execution, block=checked)
    chain.apply(block, proposed)
    return execution.changes


@pytest.mark.parametrize("blocks_held", [1, 2, 8])
def test_reads_after_every_commit_are_what_leveldb_holds(tmp_path, blocks_held):
    genesis = make_genesis()[0]
    chain = Chain.start(genesis)
    touched: set[bytes] = set()
    deleted = 0
    with ChainStore.open(tmp_path / "db", genesis) as store:
        store._recent = RecentState(max_blocks=blocks_held)
        for txs in lifecycle_blocks(chain):
            changes = validate_and_commit(store, chain, txs)
            touched |= changes.keys()
            deleted += sum(value is None for value in changes.values())
            for key in touched:
                assert store.get(key) == on_disk(store, key) == chain.state.get(key), key
        assert deleted > 0  # due-index pages and slots: their reads say None
        assert [r.code for _, e in chain.blocks[-3:] for r in e.results] == ["ok"] * 9
    with ChainStore.open(tmp_path / "db", genesis) as store:  # a new store remembers nothing
        assert store._recent.blocks == ()
        assert all(store.get(key) == chain.state.get(key) for key in touched)


def test_the_last_blocks_changes_are_read_from_memory_and_older_ones_from_leveldb(tmp_path, monkeypatch):
    genesis = make_genesis()[0]
    chain = Chain.start(genesis)
    with ChainStore.open(tmp_path / "db", genesis) as store:
        store._recent = RecentState(max_blocks=2)
        blocks = lifecycle_blocks(chain)
        first = validate_and_commit(store, chain, next(blocks))
        second = validate_and_commit(store, chain, next(blocks))
        third = validate_and_commit(store, chain, next(blocks))
        read = []
        real_get = store._get
        monkeypatch.setattr(store, "_get", lambda key: read.append(key) or real_get(key))
        only_first = next(key for key in first if key not in second and key not in third)
        only_second = next(key for key in second if key not in third)
        in_third = next(iter(third))
        assert store.get(in_third) == third[in_third] and read == []
        assert store.get(only_second) == second[only_second] and read == []
        assert store.get(only_first) == first[only_first] and read == [b"s:" + only_first]


def test_a_failed_block_write_forgets_what_the_memory_held(tmp_path):
    genesis = make_genesis()[0]
    chain = Chain.start(genesis)
    with ChainStore.open(tmp_path / "db", genesis) as store:
        blocks = lifecycle_blocks(chain)
        for _ in range(3):
            validate_and_commit(store, chain, next(blocks))
        held = {key: store.get(key) for changes in store._recent.blocks for key in changes}
        # The batch reaches LevelDB, then the "fsync" fails: the memory would be older than the disk.
        block, execution = chain.cut(next(blocks))
        store.block_write_fault = lambda: "fsync_error"
        with pytest.raises(StoreError, match="Input/output error"):
            store.commit_block(block.encode(), b"certificate", execution)
        assert store._recent.blocks == ()
        rewritten = [key for key in execution.changes if key in held and held[key] != execution.changes[key]]
        assert rewritten  # the nonces and the state root at least
        for key in execution.changes:
            assert store.get(key) == on_disk(store, key) == execution.changes[key]


def test_memory_is_bounded_by_blocks_and_by_bytes():
    recent = RecentState(max_blocks=3, max_bytes=100)
    for n in range(5):
        recent.remember({b"k%d" % n: b"v"}, 10)
    assert recent.blocks == ({b"k4": b"v"}, {b"k3": b"v"}, {b"k2": b"v"})
    assert recent.held_bytes() == 30
    recent.remember({b"big": b"v"}, 91)  # with the block before it would pass 100 bytes
    assert recent.blocks == ({b"big": b"v"},) and recent.held_bytes() == 91
    recent.remember({b"huge": b"v"}, 101)  # more than the whole bound: nothing is held
    assert recent.blocks == () and recent.held_bytes() == 0
    recent.remember({b"k": None}, 5)
    recent.forget()
    assert recent.blocks == () and recent.held_bytes() == 0
