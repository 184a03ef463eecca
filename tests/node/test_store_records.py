"""A node's own records keep their LevelDB keys (``store_records.py``): a data directory written
before they moved out of store.py reads the same."""

from __future__ import annotations

from lendchain.node.store import ChainStore
from tests.ledger.chain import make_genesis


def test_accepted_txs_and_retired_keys_live_under_their_old_keys_and_survive_a_reopen(tmp_path):
    genesis = make_genesis()[0]
    store = ChainStore.open(tmp_path / "bank1", genesis, create=True)
    try:
        store.pending_put([(b"\x01" * 32, b"raw tx")])
        store.retire_keys("bank2", [b"old key"])
        raw = dict(store._db.iterator(prefix=b"p:")) | dict(store._db.iterator(prefix=b"m:retired"))
        assert set(raw) == {b"p:" + b"\x01" * 32, b"m:retired_keys"}
    finally:
        store.close()
    reopened = ChainStore.open(tmp_path / "bank1", genesis, create=False)
    try:
        assert reopened.pending_items() == [(b"\x01" * 32, b"raw tx")]
        assert reopened.retired_keys() == {"bank2": [b"old key"]}
        reopened.pending_delete([b"\x01" * 32])
        assert reopened.pending_items() == []
    finally:
        reopened.close()
