"""The replay cache: the state a report replayed, kept for the next report to resume from.

Every report replays its chain from the genesis, which takes minutes on a
long chain. With a cache directory (``lendchain report --cache-dir DIR``,
or ``LENDCHAIN_REPORT_CACHE``), a report keeps its replayed LevelDB there,
under the genesis hash, with a record of the block it reached (height,
hash, time, state root). A later report whose block is at or after that one
resumes from it: only the blocks after it are replayed, each checked as
always (re-executed, its certificate verified under the keys the replayed
governance holds). The cache is the reader's own work, but the source is
not trusted to agree with it: the source's block at the cache's height is
read and hashed, and a source that disagrees (or holds fewer blocks) gets a
replay from the genesis, as does a report at an earlier block (which cannot
go backwards). Each says so through ``note`` (stderr in the CLI).

Resume in place, under a lock. The replay writes into the cache's own
store, holding an exclusive ``flock`` on ``DIR/<genesis hash>/lock`` for the
whole report; a second report meanwhile does not wait but replays from the
genesis without the cache. Copying the cache to a throwaway directory
first would cost a copy of the whole state per report (hard links do not
help: a LevelDB opened on linked tables compacts them into new files, so
only the first report gains), to protect against nothing a lock and the
store's own atomicity do not: every block reaches the store in one write
batch, and only after it passed every check, so the store always holds a
prefix of checked blocks. A report that fails on a block (tampered, or its
certificate forged) leaves the cache at the block before it.

The record is removed before the store changes and written, atomically,
after it is closed: a report killed halfway leaves no record, and the next
report discards the cache. So does one whose record is unreadable or
disagrees with the store's head, whose store does not open (the store's
start-up checks) or fails its checksums (every record read once), or whose
head's certificate does not verify: the cache is removed with a warning
and the report replays from the genesis. A replay from the genesis goes
into ``DIR/<genesis hash>/replaying`` and replaces the cache when it gets
at least as far as the cache had.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lendchain.consensus.certificate import CertificateError
from lendchain.genesis import Genesis
from lendchain.ledger.block import Block, InvalidBlock
from lendchain.node.driver import verify_certificate
from lendchain.node.keyschedule import key_schedule
from lendchain.node.pointintime import (
    BlockSource,
    PointInTime,
    ReportError,
    Target,
    open_replay_store,
    replay_into,
    throwaway_store,
)
from lendchain.node.store import RESTORE_ADVICE, ChainStore, Head, StoreError

CACHE_ENV = "LENDCHAIN_REPORT_CACHE"
RECORD_FORMAT = "lendchain-report-cache/1"
_RECORD = "reached.json"  # the block the store reached, written after it is closed
_STATE = "state"  # the cache's store
_FRESH = "replaying"  # a replay from the genesis, until it replaces the cache
_LOCK = "lock"


class _Unusable(Exception):
    """Why the cache cannot be used (a phrase after "discarded:")."""


class ReplayCache:
    """A cache directory's store for ``genesis``; ``note`` hears each sentence the reader should see."""

    def __init__(self, root: str | Path, genesis: Genesis, note: Callable[[str], None]) -> None:
        self.genesis = genesis
        self.dir = Path(root) / genesis.hash().hex()
        self.note = note

    @contextmanager
    def replay(
        self, source: BlockSource, target: Target, scratch_dir: str | Path | None
    ) -> Iterator[PointInTime]:
        """``replay_to`` with the cache: resume from it if it can, else replay from the genesis."""
        lock = self._lock()
        if lock is None:
            with throwaway_store(self.genesis, scratch_dir) as store:
                yield replay_into(self.genesis, source, store, target)
            return
        try:
            cached = self._load()
            kept = -1 if cached is None else cached.head().height
            if cached is not None:
                try:
                    below, disagreement = self._resumable(cached, source, target)
                except BaseException:
                    cached.close()
                    raise
                if below:
                    cached.close()
                    os.close(lock)
                    lock = None  # the cache is not used: another report may use it meanwhile
                    self.note(
                        f"the report's block is before block {kept}, where the replay cache {self.dir} "
                        f"stands, and a replay only goes forward: replaying from the genesis (the cache stays "
                        f"at block {kept})"
                    )
                    with throwaway_store(self.genesis, scratch_dir) as store:
                        yield replay_into(self.genesis, source, store, target)
                    return
                if disagreement is None:
                    with self._resumed(cached, source, target) as replayed:
                        yield replayed
                    return
                cached.close()
                self.note(
                    f"{disagreement}: replaying from the genesis (the replay cache {self.dir} is replaced if "
                    f"the replay gets to block {kept})"
                )
            with self._fresh(source, target, kept, scratch_dir) as replayed:
                yield replayed
        finally:
            if lock is not None:
                os.close(lock)  # releases the flock

    # -- using the cache ---------------------------------------------------------------

    def _resumable(self, store: ChainStore, source: BlockSource, target: Target) -> tuple[bool, str | None]:
        """(the target is before the cache's block, why the source does not agree with the cache or None)."""
        head = store.head()
        if target.height is not None and target.height < head.height:
            return True, None
        if target.as_of_ms is not None and target.as_of_ms < head.timestamp_ms:
            return True, None
        held = source.head().height
        if held < head.height:
            return (
                False,
                f"{source.where} holds blocks up to height {held}, fewer than the replay cache's {head.height}",
            )
        if head.height == 0:
            return False, None
        try:
            [(_, raw, _)] = source.blocks(head.height, head.height)
            served = Block.decode(raw).hash()
        except (ReportError, InvalidBlock) as e:
            return (
                False,
                f"{source.where}'s block {head.height} cannot be compared with the replay cache's ({e})",
            )
        if served != head.hash:
            return False, (
                f"{source.where}'s block {head.height} has hash {served.hex()[:16]}, not the replay cache's "
                f"{head.hash.hex()[:16]}"
            )
        return False, None

    @contextmanager
    def _resumed(self, store: ChainStore, source: BlockSource, target: Target) -> Iterator[PointInTime]:
        head = store.head()
        self.note(f"resuming from block {head.height} of the replay cache {self.dir}")
        resumed_from = {"height": head.height, "block_hash": head.hash.hex(), "cache": str(self.dir)}
        self._forget()
        try:
            yield replay_into(self.genesis, source, store, target, resumed_from)
        finally:
            self._settle(store, self._record, self._remove)

    @contextmanager
    def _fresh(
        self, source: BlockSource, target: Target, kept: int, scratch_dir: str | Path | None
    ) -> Iterator[PointInTime]:
        fresh = self.dir / _FRESH
        shutil.rmtree(fresh, ignore_errors=True)  # a replay killed halfway
        try:
            store = open_replay_store(fresh, self.genesis)
        except StoreError as e:
            shutil.rmtree(fresh, ignore_errors=True)
            self.note(f"warning: the replay cache {self.dir} cannot be written ({e}): replaying without it")
            with throwaway_store(self.genesis, scratch_dir) as store:
                yield replay_into(self.genesis, source, store, target)
            return

        def keep(head: Head) -> None:
            if head.height < kept:
                shutil.rmtree(fresh, ignore_errors=True)
                return
            self._forget()
            shutil.rmtree(self.dir / _STATE, ignore_errors=True)
            fresh.rename(self.dir / _STATE)
            self._record(head)

        try:
            yield replay_into(self.genesis, source, store, target)
        finally:
            self._settle(store, keep, lambda: shutil.rmtree(fresh, ignore_errors=True))

    def _settle(self, store: ChainStore, keep: Callable[[Head], None], drop: Callable[[], None]) -> None:
        """Close ``store`` and ``keep`` its head, or ``drop`` it if a write to it failed.

        Even after a failed check (a ReportError) or an interrupted report,
        the store holds only blocks that passed every check.
        """
        head, failed = store.head(), store.write_error
        store.close()
        if failed is not None:
            drop()
            return
        try:
            keep(head)
        except OSError as e:
            self.note(f"warning: the replay cache {self.dir} could not be kept ({e.strerror}); it is removed")
            drop()
            self._remove()

    # -- the directory ---------------------------------------------------------------

    def _lock(self) -> int | None:
        """The cache's lock, held; None (and a note) if it cannot be made or another report holds it."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.dir / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            self.note(
                f"warning: the replay cache {self.dir} cannot be used ({e.strerror}): replaying from the "
                "genesis without it"
            )
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            self.note(
                f"the replay cache {self.dir} is in use by another report: replaying from the genesis without it"
            )
            return None
        return fd

    def _load(self) -> ChainStore | None:
        """The cache's store at its recorded block, checked; None if there is none or it is discarded."""
        state, record = self.dir / _STATE, self.dir / _RECORD
        if not record.exists():
            if state.exists():
                self._discard(
                    "it holds no record of the block it reached (a report stopped while writing it)"
                )
            return None
        try:
            reached = _read_record(record, self.genesis)
            if not (state / "CURRENT").is_file():
                raise _Unusable(f"its record says block {reached['height']}, and it holds no store")
        except _Unusable as e:
            self._discard(str(e))
            return None
        try:
            store = ChainStore.open(state, self.genesis, create=False, key_filter=True)
        except StoreError as e:
            self._discard(str(e))
            return None
        try:
            self._check(store, reached)
        except (StoreError, _Unusable) as e:
            store.close()
            self._discard(str(e))
            return None
        store.sync_writes = False
        return store

    def _check(self, store: ChainStore, reached: dict[str, Any]) -> None:
        head = store.head()
        found = {
            "height": head.height,
            "block_hash": head.hash.hex(),
            "timestamp_ms": head.timestamp_ms,
            "state_root": head.state_root.hex(),
        }
        if found != reached:
            raise _Unusable(f"its store is at block {head.height}, and its record says {reached['height']}")
        store.wait_verified()  # every record read once with its checksum; raises the damage found
        if head.height == 0:
            return
        schedule = key_schedule(self.genesis, store, executed_height=head.height)
        try:
            cert = verify_certificate(self.genesis.chain_id, schedule, store.certificate(head.height) or b"")
        except CertificateError as e:
            raise _Unusable(f"the certificate of its block {head.height} does not verify ({e})") from None
        if (cert.height, cert.digest) != (head.height, head.hash):
            raise _Unusable(f"the certificate of its block {head.height} is for another block")

    def _record(self, head: Head) -> None:
        record = {
            "format": RECORD_FORMAT,
            "genesis_hash": self.genesis.hash().hex(),
            "height": head.height,
            "block_hash": head.hash.hex(),
            "timestamp_ms": head.timestamp_ms,
            "state_root": head.state_root.hex(),
        }
        partial = self.dir / f"{_RECORD}.partial"
        partial.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        partial.replace(self.dir / _RECORD)

    def _forget(self) -> None:
        (self.dir / _RECORD).unlink(missing_ok=True)

    def _discard(self, why: str) -> None:
        why = why.replace(
            f"; {RESTORE_ADVICE}", ""
        )  # the store's advice to a node: here the replay is the fix
        self.note(f"warning: the replay cache {self.dir} is discarded: {why}; replaying from the genesis")
        self._remove()

    def _remove(self) -> None:
        self._forget()
        shutil.rmtree(self.dir / _STATE, ignore_errors=True)


def _read_record(path: Path, genesis: Genesis) -> dict[str, Any]:
    """The block a cache's record says its store reached (without ``format`` and ``genesis_hash``)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise _Unusable(f"its record {path.name} is unreadable ({e})") from None
    fields = {"height": int, "block_hash": str, "timestamp_ms": int, "state_root": str}
    if (
        not isinstance(record, dict)
        or record.get("format") != RECORD_FORMAT
        or any(type(record.get(name)) is not kind for name, kind in fields.items())
    ):
        raise _Unusable(f"its record {path.name} is not a {RECORD_FORMAT} record")
    if record.get("genesis_hash") != genesis.hash().hex():
        raise _Unusable(f"its record {path.name} is of another genesis")
    return {name: record[name] for name in fields}
