"""The node's maintenance pass (``Node._maintenance``), run on trio's mock clock."""

import trio
import trio.testing

from lendchain.node.daemon import MAINTENANCE_S


def test_the_maintenance_pass_syncs_committed_blocks_each_second(node, monkeypatch):
    """A block committed unsynced waits for the next WAL write; on a quiet network the
    maintenance pass is what syncs it (``ChainStore.sync_committed``)."""
    calls: list[float] = []
    monkeypatch.setattr(node.store, "sync_committed", lambda: calls.append(trio.current_time()))

    async def main() -> None:
        with trio.move_on_after(2.5 * MAINTENANCE_S):
            await node._maintenance()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert calls == [MAINTENANCE_S, 2 * MAINTENANCE_S]
