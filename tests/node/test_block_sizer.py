"""Proposals sized to what the network commits (node/app.py ``BlockSizer``)."""

from __future__ import annotations

from lendchain.genesis import ConsensusParams
from lendchain.node.app import BLOCK_ROUND_TIMEOUTS, BlockSizer


def test_starts_at_the_start_size_within_bounds():
    assert BlockSizer(max_txs=2000, target_s=0.5).cap == 500
    assert BlockSizer(max_txs=300, target_s=0.5).cap == 300
    assert BlockSizer(max_txs=50, target_s=0.5).cap == 50


def test_follows_the_commit_rate_of_busy_cycles():
    sizer = BlockSizer(max_txs=2000, target_s=0.5)
    sizer.on_commit(500, now_s=10.0, work_left=True)
    assert sizer.rate is None  # nothing to measure against yet
    sizer.on_commit(500, now_s=10.5, work_left=True)  # 1000 tx/s
    assert sizer.rate == 1000 and sizer.cap == 500
    for t in (11.0, 11.25, 11.5, 11.75, 12.0, 12.25, 12.5, 12.75):  # 500 txs per 0.25 s: 2000 tx/s
        sizer.on_commit(500, now_s=t, work_left=True)
    assert 1900 < sizer.rate <= 2000
    assert 950 < sizer.cap <= 1000


def test_a_slow_network_gets_small_blocks_but_never_below_the_floor():
    sizer = BlockSizer(max_txs=2000, target_s=0.5)
    sizer.on_commit(500, now_s=0.0, work_left=True)
    for i in range(1, 20):
        sizer.on_commit(50, now_s=i * 1.0, work_left=True)  # 50 tx/s
    assert sizer.cap == 100


def test_never_above_the_genesis_limit():
    sizer = BlockSizer(max_txs=2000, target_s=0.5)
    sizer.on_commit(2000, now_s=0.0, work_left=True)
    for i in range(1, 20):
        sizer.on_commit(2000, now_s=i * 0.1, work_left=True)  # 20,000 tx/s
    assert sizer.cap == 2000


def test_an_idle_wait_is_not_measured_as_a_slow_network():
    sizer = BlockSizer(max_txs=2000, target_s=0.5)
    sizer.on_commit(500, now_s=0.0, work_left=True)
    sizer.on_commit(500, now_s=0.25, work_left=False)  # 2000 tx/s, then the mempool ran dry
    assert sizer.cap == 1000
    sizer.on_commit(10, now_s=60.0, work_left=True)  # a minute later: a lone tx
    assert sizer.cap == 1000 and sizer.rate == 2000


def settled_cap(target_s: float, fixed_s: float, per_tx_s: float) -> int:
    """The cap after 200 busy rounds that each take ``fixed_s`` plus ``per_tx_s`` per tx of a full block."""
    sizer = BlockSizer(max_txs=2000, target_s=target_s)
    now = 0.0
    for _ in range(200):
        txs = sizer.cap
        now += fixed_s + per_tx_s * txs
        sizer.on_commit(txs, now_s=now, work_left=True)
    return sizer.cap


def test_blocks_settle_where_a_round_takes_the_target_and_a_fixed_round_time_shrinks_them():
    # Rounds of 0.45 s fixed plus 0.25 ms per tx (10 nodes on 2 cores): a quarter of the 2 s
    # timeout leaves blocks of ~200 txs, the node's half a timeout ~2,000 (the genesis's limit).
    assert 150 <= settled_cap(0.5, 0.45, 0.00025) <= 200
    node_target = BLOCK_ROUND_TIMEOUTS * ConsensusParams().view_change_timeout_ms / 1000
    assert node_target == 1.0
    assert settled_cap(node_target, 0.45, 0.00025) >= 1900
