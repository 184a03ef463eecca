"""Point-in-time replay: the chain's state at a past block, rebuilt from blocks nobody need be trusted for.

A supervisor asks what the chain held at the close of a day. Every view a
node serves is computed on its current state, and a node's answer is only as
good as the node. ``replay_to`` answers instead from the genesis the reader
holds and the blocks any source serves (a stopped node's data directory, a
backup, a running node's ``GET /blocks/raw``):

- every block from height 1 to the target is decoded, linked to its parent
  by hash, its timestamp checked to be after its parent's, its tx root,
  signatures, state root and results root checked by executing it
  (``block.check_block``, as a node checks a block it is sent);
- every block's commit certificate is checked to cover that block's hash
  and to hold a quorum of valid COMMIT signatures of the members that vote
  at its height, with the keys valid there: the genesis's, then as the
  replayed governance changes them (rotations, admissions, voting changes;
  ``keyschedule.key_schedule``), learned from the blocks before it, as a
  catching-up node learns them. Nothing the source says about keys, state
  or indexes is used.

The target is a height, or a time: the last block whose timestamp is at or
before it. Timestamps strictly increase, so the block after the target, with
a timestamp after the time, proves no later block is at or before it; that
block's header and certificate are checked too (it is not executed), so the
source cannot stop the replay early. A time after the source's newest block
is refused: the chain may still add blocks at or before it.

The views are then the node's own (``NodeViews.query``) on the replayed
store, judged at the target block's time (``as_of_ms``), so the figures are
those a node showed at that block, and text and JSON are the same as at a
node's head.

Memory: the replayed state goes into a throwaway LevelDB (a ``ChainStore``
under a temporary directory, removed afterwards), written like a node's
store but without an fsync per block; nothing is held in a Python dict, so
memory is mostly LevelDB's (a 32 MB write buffer, a 64 MB block cache with
snappy, per-table indexes and filters) and one block's, not the state's.
Measured (``benchmarks/report_bench.py``, RESULTS-chain.md): a peak heap of
85 MB at 20,000 txs and 150 MB at 600,000, where ``verify_chain``'s
in-memory state took 87 and 558 MB. It needs about the disk of a node's data
directory up to the target; ``scratch_dir`` puts it where there is room.

A replay cache (``replaycache.ReplayCache``) keeps the replayed store for
the next report instead of removing it: a report at its block or after it
replays only the blocks since (``replay_into`` onto a store that already
holds checked blocks), and says so in its basis (``resumed_from``).

A data directory is read through a private copy (``DataDirBlocks``,
``datadir_snapshot``: its tables hard-linked, its small files copied), so
that the report leaves it byte for byte as it was.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lendchain.consensus.certificate import CertificateError, CommitCertificate
from lendchain.consensus.keys import KeySchedule
from lendchain.genesis import Genesis
from lendchain.ledger.block import Block, InvalidBlock, check_block
from lendchain.ledger.keyrotation import member_signers
from lendchain.ledger.rules import UpgradeRequired
from lendchain.node.datadir_snapshot import SnapshotError, snapshot_data_dir
from lendchain.node.driver import verify_certificate
from lendchain.node.keyschedule import key_schedule
from lendchain.node.store import ChainStore, StoreError
from lendchain.node.views import NodeViews

if TYPE_CHECKING:
    from lendchain.node.replaycache import ReplayCache

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


# Every refusal over blocks that fail a check, or a source that is damaged or stops short, says it.
NOTHING_REPORTED = "nothing is reported"


class ReportError(Exception):
    """No report can be made: one sentence saying what is wrong and, where it can, what to do."""


def _silent(_: str) -> None:
    """A ``note`` nobody hears."""


@dataclass(frozen=True)
class SourceHead:
    """The newest block a source holds, as it says (the replay checks the blocks, not this)."""

    height: int
    timestamp_ms: int


class BlockSource(Protocol):
    """Where the blocks come from: ``where`` names it in every sentence, ``blocks`` yields
    (height, block bytes, certificate bytes) from ``start`` to ``end`` in order."""

    where: str

    def head(self) -> SourceHead: ...
    def blocks(self, start: int, end: int) -> Iterator[tuple[int, bytes, bytes]]: ...


@dataclass(frozen=True)
class Target:
    """Replay to ``height``, or to the last block at or before ``as_of_ms``; neither: the source's head."""

    height: int | None = None
    as_of_ms: int | None = None

    def __post_init__(self) -> None:
        if self.height is not None and self.as_of_ms is not None:
            raise ValueError("a target is a height or a time, not both")


def utc_text(ms: int) -> str:
    """``ms`` (milliseconds since 1970 UTC, a block's time) as ISO 8601 UTC to the millisecond."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_as_of(text: str) -> int:
    """The time ``text`` names, in milliseconds since 1970 UTC; ValueError says what is wrong.

    A date (``2026-09-30``) means the end of that day UTC, its last
    millisecond, so that the day's blocks count: "at the close of 30
    September". A time needs its zone (``2026-09-30T17:00:00Z``, ``…+02:00``):
    read without one, a report could be hours off.
    """
    text = text.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        if day == date.max:
            raise ValueError(f"{text!r} is the last day a date can name: give a time instead")
        return (datetime.combine(day + timedelta(days=1), time(), UTC) - _EPOCH) // _MS - 1
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a date (YYYY-MM-DD, read as the end of that day UTC) nor an ISO 8601 "
            "time with its zone (such as 2026-09-30T17:00:00Z or 2026-09-30T19:00:00+02:00)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add Z for UTC, or an offset such as +02:00")
    return (moment - _EPOCH) // _MS


class DataDirBlocks:
    """The blocks and certificates in a stopped node's data directory or a backup of one.

    The directory is never opened: a private copy is (``datadir_snapshot``:
    hard links to its tables, copies of its small files, under
    ``scratch_dir``), so that reading it cannot change it, and a directory a
    node runs on is refused. Only block and certificate records are read
    (with LevelDB's checksums); the directory's own state, indexes and head
    are not trusted for anything but where the blocks end. ``note`` hears
    what the reader should know (tables copied, not linked). ``close``
    removes the copy.
    """

    def __init__(
        self,
        path: Path,
        genesis: Genesis,
        scratch_dir: str | Path | None = None,
        note: Callable[[str], None] = _silent,
    ) -> None:
        self.path = path
        self.where = f"data directory {path}"
        self._copy_dir = scratch_path(scratch_dir, "lendchain-report-source-")
        copy = self._copy_dir / "data"
        try:
            if not snapshot_data_dir(path, copy):
                note(
                    f"the table files of {self.where} were copied, not hard-linked (another filesystem than "
                    "the scratch directory's): give --scratch-dir on its filesystem to save the copy"
                )
            self._store = ChainStore.open(copy, genesis, create=False)
        except SnapshotError as e:
            shutil.rmtree(self._copy_dir, ignore_errors=True)
            raise ReportError(str(e)) from None
        except StoreError as e:
            shutil.rmtree(self._copy_dir, ignore_errors=True)
            said = str(e).replace(str(copy), str(path))
            raise ReportError(f"{said}; {NOTHING_REPORTED}") from None
        except BaseException:
            shutil.rmtree(self._copy_dir, ignore_errors=True)
            raise

    def close(self) -> None:
        self._store.close()
        shutil.rmtree(self._copy_dir, ignore_errors=True)

    def __enter__(self) -> DataDirBlocks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def head(self) -> SourceHead:
        head = self._store.head()
        return SourceHead(head.height, head.timestamp_ms)

    def blocks(self, start: int, end: int) -> Iterator[tuple[int, bytes, bytes]]:
        for height in range(start, end + 1):
            try:
                raw, certificate = self._store.block_bytes(height), self._store.certificate(height)
            except StoreError as e:
                said = str(e).replace(str(self._store.path), str(self.path))
                raise ReportError(
                    f"{self.where}: block {height} cannot be read: {said}; {NOTHING_REPORTED}"
                ) from None
            if raw is None or certificate is None:
                missing = "" if raw is None else "the commit certificate of "
                raise ReportError(
                    f"{self.where}: {missing}block {height} is missing; restore it from a backup; "
                    f"{NOTHING_REPORTED}"
                )
            yield height, raw, certificate


@dataclass
class PointInTime:
    """The replayed store at the target and what the report stands on (``basis``)."""

    store: ChainStore
    views: ReplayedViews
    basis: dict[str, Any]


class ReplayedViews(NodeViews):
    """The node's own views (``NodeViews.query``) over the replayed store: the JSON a node's API
    gave when the target block was its head (a loan's history with who signed each entry, the
    members with their genesis addresses), judged at that block's time."""

    def __init__(self, store: ChainStore, genesis: Genesis) -> None:
        self.store = store
        self.genesis = genesis
        self.signers = member_signers(store)


@contextmanager
def replay_to(
    genesis: Genesis,
    source: BlockSource,
    target: Target,
    scratch_dir: str | Path | None = None,
    cache: ReplayCache | None = None,
) -> Iterator[PointInTime]:
    """Replay ``source``'s blocks from the genesis to ``target`` into a throwaway store, checking each.

    Yields the store at the target (removed on exit); ReportError names the
    height and what did not match, or why the target cannot be reached. With
    a ``cache`` (``replaycache.ReplayCache``) the replay may resume from the
    state an earlier report kept there, and leaves its own there.
    """
    if cache is not None:
        with cache.replay(source, target, scratch_dir) as replayed:
            yield replayed
        return
    with throwaway_store(genesis, scratch_dir) as store:
        yield replay_into(genesis, source, store, target)


@contextmanager
def throwaway_store(genesis: Genesis, scratch_dir: str | Path | None) -> Iterator[ChainStore]:
    """A new store at the genesis under ``scratch_dir`` (the system's temp directory), removed on exit."""
    scratch = scratch_path(scratch_dir, "lendchain-report-")
    try:
        store = open_replay_store(scratch / "state", genesis)
        try:
            yield store
        finally:
            store.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def open_replay_store(path: Path, genesis: Genesis) -> ChainStore:
    """The store a replay writes into at ``path`` (made at the genesis if new), without an fsync per block:
    a crash loses nothing an fsync would save, as the store is a copy of what the blocks say."""
    store = ChainStore.open(path, genesis, create=True, key_filter=True)
    store.sync_writes = False
    return store


def scratch_path(scratch_dir: str | Path | None, prefix: str) -> Path:
    """A new directory under ``scratch_dir`` (or the system's temp directory) for the command's files."""
    try:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=scratch_dir))
    except OSError as e:
        raise ReportError(
            f"cannot make a scratch directory for the replay in {scratch_dir or tempfile.gettempdir()}: "
            f"{e.strerror}"
        ) from None


def replay_into(
    genesis: Genesis,
    source: BlockSource,
    store: ChainStore,
    target: Target,
    resumed_from: dict[str, Any] | None = None,
) -> PointInTime:
    """Replay ``source``'s blocks after ``store``'s head up to ``target`` into ``store``, checking each.

    The blocks ``store`` already holds are taken as checked: a new store
    holds only the genesis; a replay cache's (``resumed_from`` says which and
    where) holds blocks an earlier report replayed and checked. It must not
    be past the target (a replay only goes forward).
    """
    basis = _Replay(genesis, source, store).run(target)
    basis["resumed_from"] = resumed_from
    return PointInTime(store, ReplayedViews(store, genesis), basis)


class _Replay:
    def __init__(self, genesis: Genesis, source: BlockSource, store: ChainStore) -> None:
        self.genesis, self.source, self.store = genesis, source, store
        self.first = store.head().height  # the blocks up to it were checked before
        self.schedule: KeySchedule = key_schedule(genesis, store, executed_height=self.first)
        # The last replayed block's; a resumed store's head's was checked when it was stored.
        self.certificate: CommitCertificate | None = (
            None if self.first == 0 else CommitCertificate.decode(store.certificate(self.first))
        )
        self.after: dict[str, Any] | None = None  # the block after an as-of target, checked

    def run(self, target: Target) -> dict[str, Any]:
        head = self.source.head()
        end = self._last_height(target, head)
        start = self.store.head()
        if end < self.first or (target.as_of_ms is not None and start.timestamp_ms > target.as_of_ms):
            raise ValueError(
                f"the store is at block {self.first}, past the target: a replay only goes forward"
            )
        for height, raw, certificate in self.source.blocks(self.first + 1, end):
            if height != self.store.head().height + 1:
                raise self._failed(height, f"it comes where block {self.store.head().height + 1} was due")
            block = self._decode(height, raw)
            cert = self._certified(height, block, certificate)
            if target.as_of_ms is not None and block.header.timestamp_ms > target.as_of_ms:
                self._check_after(block, cert)
                break
            self._execute(height, raw, certificate)
            self.certificate = cert
        reached = self.store.head()
        if self.after is None and reached.height != end:
            raise ReportError(
                f"{self.source.where} served blocks up to height {reached.height}, not up to {end}; "
                f"{NOTHING_REPORTED}"
            )
        if target.as_of_ms is not None and self.after is None and reached.timestamp_ms != head.timestamp_ms:
            raise ReportError(  # its head's time let the replay start; no block after the time ends it
                f"{self.source.where} said its newest block {head.height} is at {utc_text(head.timestamp_ms)}, "
                f"but that block is at {utc_text(reached.timestamp_ms)}: nothing proves it the last block "
                f"at or before {utc_text(target.as_of_ms)}; {NOTHING_REPORTED}"
            )
        return self._basis(target)

    def _last_height(self, target: Target, head: SourceHead) -> int:
        where, genesis_ms = self.source.where, self.genesis.genesis_time_ms
        if target.height is not None:
            if target.height > head.height:
                raise ReportError(
                    f"height {target.height} is above the newest block {where} holds ({head.height})"
                )
            return target.height
        if target.as_of_ms is None:
            return head.height
        if target.as_of_ms < genesis_ms:
            raise ReportError(
                f"{utc_text(target.as_of_ms)} is before the chain's genesis ({utc_text(genesis_ms)}): "
                "the chain held nothing then"
            )
        if target.as_of_ms > head.timestamp_ms:
            raise ReportError(
                f"{utc_text(target.as_of_ms)} is after the newest block {where} holds (height {head.height}, "
                f"at {utc_text(head.timestamp_ms)}): the chain may still add blocks at or before it; "
                f"ask for an earlier time, or for --height {head.height}"
            )
        return head.height

    def _decode(self, height: int, raw: bytes) -> Block:
        try:
            return Block.decode(raw)
        except InvalidBlock as e:
            raise self._failed(height, str(e)) from None

    def _certified(self, height: int, block: Block, certificate: bytes) -> CommitCertificate:
        """The block's commit certificate, checked under the keys and voters known after its parent."""
        try:
            cert = verify_certificate(self.genesis.chain_id, self.schedule, certificate)
        except CertificateError as e:
            raise self._failed(
                height,
                f"its commit certificate does not verify under the genesis keys and the replayed "
                f"governance ({e})",
            ) from None
        if cert.height != height or cert.digest != block.hash():
            raise self._failed(
                height,
                f"its commit certificate is for block {cert.height} with hash {cert.digest.hex()[:16]}, "
                f"not for this block (hash {block.hash().hex()[:16]})",
            )
        return cert

    def _execute(self, height: int, raw: bytes, certificate: bytes) -> None:
        head = self.store.head()
        try:
            block, execution = check_block(
                raw,
                expected_height=height,
                parent_hash=head.hash,
                parent_timestamp_ms=head.timestamp_ms,
                reader=self.store,
                now_ms=None,
                max_skew_ms=0,
                chain_id=self.genesis.chain_id,
            )
        except InvalidBlock as e:
            raise self._failed(height, str(e)) from None
        except UpgradeRequired as e:
            raise ReportError(
                f"{self.source.where}: block {height} executes under rules version {e.version}, which this "
                f"lendchain release does not: report with a release that does (or at a height below {height})"
            ) from None
        try:
            self.store.commit_block(raw, certificate, execution, block=block)
        except StoreError as e:
            raise ReportError(
                f"the replay could not store block {height} ({e}); give --scratch-dir (or --cache-dir, if "
                "given) on a disk with room"
            ) from None
        self.schedule = key_schedule(self.genesis, self.store, executed_height=height)

    def _check_after(self, block: Block, cert: CommitCertificate) -> None:
        """The certified block after an as-of target: it builds on the target and is after the time."""
        head = self.store.head()
        if block.header.height != head.height + 1 or block.header.prev_hash != head.hash:
            raise self._failed(
                block.header.height, f"it does not build on block {head.height} (hash {head.hash.hex()[:16]})"
            )
        self.after = {
            "height": block.header.height,
            "hash": block.hash().hex(),
            "timestamp_ms": block.header.timestamp_ms,
            "signers": cert.signers(self.schedule),
        }

    def _failed(self, height: int, what: str) -> ReportError:
        return ReportError(
            f"{self.source.where}: block {height} fails the check: {what}; {NOTHING_REPORTED} "
            "(these blocks are not the chain the genesis and its members' certificates prove)"
        )

    def _basis(self, target: Target) -> dict[str, Any]:
        head = self.store.head()
        cert = self.certificate
        return {
            "chain_id": self.genesis.chain_id,
            "genesis_hash": self.genesis.hash().hex(),
            "source": self.source.where,
            "height": head.height,
            "block_hash": head.hash.hex(),
            "timestamp_ms": head.timestamp_ms,
            "time": utc_text(head.timestamp_ms),
            "state_root": head.state_root.hex(),
            # None at height 0: the genesis itself, which the reader holds, needs no certificate
            "certificate": None
            if cert is None
            else {"view": cert.view, "signers": cert.signers(self.schedule)},
            "blocks_checked": head.height - self.first,
            "as_of": None
            if target.as_of_ms is None
            else {"ms": target.as_of_ms, "time": utc_text(target.as_of_ms), "next_block": self.after},
        }
