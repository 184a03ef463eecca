"""``PromptLock``: a free lock is taken without a trip through trio's scheduler; the rest is ``trio.Lock``'s.

The yamux connections and streams of a member take it for every frame (see
``network_mux``); the frame benchmark counts the task steps that saves.
"""

from __future__ import annotations

import pytest
import trio

from lendchain.node.network_mux import BulkCreditStream, PromptLock, ReaderFirstYamux
from tests.network.yamux_pipe import pair


async def _others_ran_during(lock) -> list[str]:
    """Which of two ready tasks ran while this task took and released a free ``lock`` 20 times."""
    ran: list[str] = []

    async def note(name: str) -> None:
        ran.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(note, "first")
        nursery.start_soon(note, "second")
        for _ in range(20):
            async with lock:
                pass
        seen = list(ran)
    return seen


def test_a_free_lock_is_taken_without_letting_ready_tasks_run():
    assert trio.run(_others_ran_during, PromptLock()) == []
    # What it saves: trio's own lock yields to the scheduler even when free.
    assert sorted(trio.run(_others_ran_during, trio.Lock())) == ["first", "second"]


def test_taking_it_in_a_cancelled_scope_raises_cancelled_and_leaves_it_free():
    async def main() -> bool:
        lock = PromptLock()
        with trio.CancelScope() as scope:
            scope.cancel()
            async with lock:
                pytest.fail("a cancelled task took the lock")
        return scope.cancelled_caught and not lock.locked()

    assert trio.run(main)


def test_a_held_lock_is_waited_for_first_come_first_served():
    async def main() -> list[str]:
        lock, order = PromptLock(), []

        async def take(name: str, hold_s: float) -> None:
            async with lock:
                order.append(name)
                await trio.sleep(hold_s)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(take, "holder", 0.05)
            await trio.sleep(0.01)
            nursery.start_soon(take, "waiter", 0)
            await trio.sleep(0.01)
            assert lock.locked() and lock.statistics().tasks_waiting == 1
            # A task that comes while others wait may not jump the queue, not even
            # at the moment the holder lets go.
            with pytest.raises(trio.WouldBlock):
                lock.acquire_nowait()
            nursery.start_soon(take, "latecomer", 0)
        return order

    assert trio.run(main) == ["holder", "waiter", "latecomer"]


def test_it_refuses_what_trio_lock_refuses():
    async def main() -> None:
        lock = PromptLock()
        await lock.acquire()
        with pytest.raises(RuntimeError, match="re-acquire"):
            await lock.acquire()

        async def release_it() -> None:
            with pytest.raises(RuntimeError, match="don't own"):
                lock.release()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(release_it)
        assert lock.locked()
        lock.release()
        assert not lock.locked()

    trio.run(main)


def test_members_yamux_connections_and_streams_take_prompt_locks():
    async def main() -> tuple[object, ...]:
        a, b = pair(ReaderFirstYamux, 1 << 20)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.start)
            nursery.start_soon(b.start)
            out = await a.open_stream()
            into = await b.accept_stream()
            await out.write(b"hello")
            assert await into.read(5) == b"hello"
            nursery.cancel_scope.cancel()
        return a.streams_lock, a._write_lock, out, out.window_lock, into.window_lock

    streams_lock, write_lock, stream, *window_locks = trio.run(main)
    assert isinstance(stream, BulkCreditStream)
    assert all(isinstance(lock, PromptLock) for lock in (streams_lock, write_lock, *window_locks))
