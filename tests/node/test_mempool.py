"""Mempool: bounded, nonce-ordered, and never loses a tx without saying why."""

import pytest

from lendchain.ledger.transactions import Transaction
from lendchain.node.config import MempoolConfig
from lendchain.node.mempool import Mempool, MempoolFull, PendingTx, new_pending


def tx(sender: str, nonce: int, pad: int = 0, added_ms: int = 0, signature: bytes = bytes(64)) -> PendingTx:
    """A pending tx; the pool reads only its id, sender, nonce and size, so it is not signed."""
    body = Transaction("mempool-test", "party.register", sender, nonce, 0, {"pad": "x" * pad}, signature)
    return PendingTx(body, added_ms)


def test_candidates_are_contiguous_per_sender_from_the_next_nonce():
    pool = Mempool(MempoolConfig())
    for item in [tx("a", 2), tx("a", 0), tx("b", 5), tx("a", 1), tx("a", 4), tx("b", 6)]:
        pool.add(item)
    next_nonce = {"a": 0, "b": 5}
    chosen = [(t.sender, t.nonce) for t in pool.candidates(next_nonce.__getitem__, 100, 10_000)]
    # a's 4 waits for the missing 3; senders in order of their first arrival.
    assert chosen == [("a", 0), ("a", 1), ("a", 2), ("b", 5), ("b", 6)]


def test_sender_with_a_gap_at_its_next_nonce_is_skipped():
    pool = Mempool(MempoolConfig())
    pool.add(tx("a", 3))
    pool.add(tx("b", 0))
    chosen = [(t.sender, t.nonce) for t in pool.candidates({"a": 0, "b": 0}.__getitem__, 100, 10_000)]
    assert chosen == [("b", 0)]


def test_candidates_respect_block_limits():
    pool = Mempool(MempoolConfig())
    for n in range(10):
        pool.add(tx("a", n, pad=100))
    size = len(tx("a", 0, pad=100).raw)  # nonces 0-9 encode in one byte: all txs are this size
    assert len(list(pool.candidates(lambda s: 0, 3, 10_000))) == 3
    assert len(list(pool.candidates(lambda s: 0, 100, 4 * size + size // 2))) == 4


@pytest.mark.parametrize("limit", ["max_txs", "max_bytes"])
def test_full_pool_refuses_instead_of_dropping(limit):
    two = {"max_txs": 2, "max_bytes": 2 * len(tx("a", 0).raw) + 5}[limit]
    pool = Mempool(MempoolConfig(**{limit: two}))
    pool.add(tx("a", 0))
    pool.add(tx("a", 1))
    with pytest.raises(MempoolFull, match="retry"):
        pool.add(tx("a", 2))
    assert len(pool) == 2


def test_duplicates_and_nonce_conflicts():
    pool = Mempool(MempoolConfig())
    assert pool.add(tx("a", 0)) is True
    assert pool.add(tx("a", 0)) is False
    rival = tx("a", 0, signature=bytes([1]) * 64)  # another tx with the same sender and nonce
    with pytest.raises(ValueError, match="already taken"):
        pool.add(rival)


def test_expiry_and_stale_nonces_are_reported_not_silent():
    pool = Mempool(MempoolConfig(tx_ttl_ms=1000))
    old, young = tx("a", 0, added_ms=0), tx("b", 0, added_ms=900)
    pool.add(old)
    pool.add(young)
    assert [t.tx_id for t in pool.expire(now_ms=1500)] == [old.tx_id]
    assert pool.recent_outcome(old.tx_id).status == "expired"
    assert young.tx_id in pool
    stale = tx("b", 1)
    pool.add(stale)
    pool.prune_stale("b", next_nonce=2)
    assert len(pool) == 0 and pool.size_bytes == 0
    assert pool.recent_outcome(stale.tx_id).code == "bad_nonce"


def test_remove_committed_frees_space():
    pool = Mempool(MempoolConfig(max_txs=1))
    first = tx("a", 0)
    pool.add(first)
    pool.remove([first.tx_id])
    pool.add(tx("a", 1))
    assert len(pool) == 1 and pool.size_bytes == len(tx("a", 1).raw)
    assert pool.next_free_nonce("a", committed=1) == 2


def test_next_free_nonce_walks_past_a_long_pending_run_and_notices_holes():
    pool = Mempool(MempoolConfig())
    for nonce in range(5, 2_005):
        pool.add(tx("lender", nonce))
    assert pool.next_free_nonce("lender", committed=5) == 2_005
    assert pool.next_free_nonce("lender", committed=0) == 0  # nonce 0 is not pending
    assert pool.next_free_nonce("nobody", committed=7) == 7
    pool.add(tx("lender", 2_005))
    assert pool.next_free_nonce("lender", committed=5) == 2_006
    # Committed from the bottom: the run above is still whole.
    pool.remove([tx("lender", 5).tx_id, tx("lender", 6).tx_id])
    assert pool.next_free_nonce("lender", committed=7) == 2_006
    # A hole in the middle (an expiry or rejection): the next free nonce is the hole.
    pool.remove([tx("lender", 1_000).tx_id])
    assert pool.next_free_nonce("lender", committed=7) == 1_000
    pool.add(tx("lender", 1_000))
    assert pool.next_free_nonce("lender", committed=7) == 2_006


def test_oldest_ready_is_what_a_block_would_take_first():
    pool = Mempool(MempoolConfig())
    for item in [tx("a", 4), tx("b", 1), tx("c", 0), tx("b", 0), tx("c", 1)]:
        pool.add(item)
    next_nonce = {"a": 0, "b": 0, "c": 0}
    first = next(pool.candidates(next_nonce.__getitem__, 100, 10_000))
    oldest = pool.oldest_ready(next_nonce.__getitem__)
    # a (arrived first) waits for its nonce 0; b arrived next and its nonce 0 is here,
    # although that tx itself arrived after c's.
    assert (oldest.sender, oldest.nonce) == ("b", 0) == (first.sender, first.nonce)
    pool.remove([oldest.tx_id])
    assert pool.oldest_ready({"a": 0, "b": 1, "c": 0}.__getitem__).tx_id == tx("b", 1).tx_id


def test_oldest_ready_is_none_when_no_sender_can_go_next():
    pool = Mempool(MempoolConfig())
    assert pool.oldest_ready(lambda s: 0) is None
    pool.add(tx("a", 3))
    pool.add(tx("b", 7))
    assert pool.oldest_ready(lambda s: 0) is None
    # Only the oldest arrivals are looked at.
    pool.add(tx("c", 0))
    assert pool.oldest_ready(lambda s: 0, scan=2) is None
    assert pool.oldest_ready(lambda s: 0, scan=3).sender == "c"


def test_oldest_lists_ids_in_arrival_order():
    pool = Mempool(MempoolConfig())
    items = [tx("a", 1), tx("b", 0), tx("a", 0)]
    for item in items:
        pool.add(item)
    assert pool.oldest(2) == [items[0].tx_id, items[1].tx_id]
    assert pool.oldest(10) == [item.tx_id for item in items]


def test_ids_follow_the_pool_as_txs_come_and_go():
    pool = Mempool(MempoolConfig(tx_ttl_ms=1_000))
    first, second, third = tx("a", 0, added_ms=0), tx("a", 1, added_ms=0), tx("b", 0, added_ms=5_000)
    ids = pool.ids  # taken once: a live view, as ``CheckedSignatures`` and ``Node._accept`` hold it
    for item in (first, second, third):
        pool.add(item)
    assert set(ids) == {first.tx_id, second.tx_id, third.tx_id} and len(ids) == len(pool) == 3
    pool.remove([first.tx_id])
    pool.expire(now_ms=2_000)  # second is older than the TTL; third is not
    assert set(ids) == {third.tx_id} and second.tx_id not in ids
    pool.reject(third.tx_id, "bad_nonce", "used")
    assert len(ids) == 0


def test_new_pending_builds_the_pending_tx_the_named_tuple_builds():
    tx = object()
    built = new_pending((tx, 1234))
    assert type(built) is PendingTx and built == PendingTx(tx, 1234)
    assert (built.tx, built.added_ms) == (tx, 1234)
