"""``verify_chain``: replay a node's stored chain from genesis and compare everything.

An operator's check (``lendchain verify-chain``) that the blocks, indexes and
state in a data directory are exactly what re-executing the blocks gives.
"""

from __future__ import annotations

from lendchain.ledger.block import InvalidBlock, check_block
from lendchain.ledger.state import MemoryState, genesis_changes
from lendchain.node.store import ChainStore, StoreError


def verify_chain(store: ChainStore, upto: int | None = None) -> int:
    """Re-execute every stored block from genesis and compare every hash and root.

    Returns the number of blocks checked; raises StoreError naming the first
    height where a stored block, index or the stored state disagrees with the
    replay, or the damage the background checksum check found. Holds a full
    copy of the state in memory while it runs.
    """
    genesis = store.genesis
    state = MemoryState()
    state.apply(genesis_changes(genesis))
    parent_hash, parent_ts = genesis.hash(), genesis.genesis_time_ms
    last = store.head().height if upto is None else upto
    for height in range(1, last + 1):
        raw = store.block_bytes(height)
        if raw is None:
            raise StoreError(f"verify-chain: block {height} is missing")
        try:
            block, execution = check_block(
                raw,
                expected_height=height,
                parent_hash=parent_hash,
                parent_timestamp_ms=parent_ts,
                reader=state,
                now_ms=None,
                max_skew_ms=0,
                chain_id=genesis.chain_id,
            )
        except InvalidBlock as e:
            raise StoreError(f"verify-chain: block {height} fails: {e}") from None
        if store.height_of_hash(block.hash()) != height:
            raise StoreError(f"verify-chain: the hash index does not point at block {height}")
        for index, (tx_id, result) in enumerate(zip(execution.tx_ids, execution.results, strict=True)):
            if store.tx_location(tx_id) != (height, index, result):
                raise StoreError(f"verify-chain: the tx index entry of tx {index} in block {height} is wrong")
        state.apply(execution.changes)
        parent_hash, parent_ts = block.hash(), block.header.timestamp_ms
    if upto is None:
        head = store.head()
        if head.hash != parent_hash:
            raise StoreError(f"verify-chain: the head record does not match block {last}")
        for key, value in state.values.items():
            if store.get(key) != value:
                raise StoreError(f"verify-chain: stored state key {key!r} differs from the replay at {last}")
        for key in store.state_keys():
            if key not in state.values:
                raise StoreError(f"verify-chain: stored state key {key!r} is not in the replay at {last}")
    store.wait_verified()
    return last
