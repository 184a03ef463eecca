"""The chain store's background checksum check: every record read once, checksums verified.

LevelDB checks a table's checksums only when it reads that table, so a
truncated or bit-flipped file holding old records would show only when a peer
asks for an old block. ``ChecksumCheck`` reads every record once, in a thread,
while the node runs (store.py's docstring says why not before it is ready).
What it finds is kept in ``damage``; the store then refuses writes and the
daemon stops on it.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import plyvel

if TYPE_CHECKING:
    from lendchain.node.store import StoreError

# The check's snapshot of the table files, inside the data directory.
SNAPSHOT_DIR = "verify-snapshot"
_SNAPSHOT_ATTEMPTS = 5
_SNAPSHOT_OPEN_FILES = 64  # LevelDB's minimum; it keeps that many tables mapped at most


def leveldb_says(error: plyvel.Error) -> str:
    """LevelDB's own message ("IO error: <file>: No space left on device"), as text."""
    raw = error.args[0] if error.args else b""
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def open_files(path: Path) -> str:
    """The files LevelDB reads to open ``path``, for messages that do not name one."""
    names = ["CURRENT"]
    try:
        current = (path / "CURRENT").read_text(errors="replace").strip()
    except OSError:
        current = ""
    if current.startswith("MANIFEST-"):
        names.append(current)
    names += sorted(p.name for p in path.glob("*.log"))
    return ", ".join(names)


# What os.link raises where a filesystem has no hard links (or none left for a file).
NO_HARD_LINKS = frozenset(
    {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}
)


def link_snapshot(path: Path, snapshot: Path, place: Callable[[Path, Path], object] | None = None) -> None:
    """Make ``snapshot`` (new) a LevelDB of the table files ``path`` holds now.

    A copy of the MANIFEST, which names whole tables only, and hard links to
    the tables (``snapshot`` inside ``path``): the store as it stood after
    some write batch, without what is still in the memtable. A table
    compacted away between the MANIFEST copy and its link leaves a snapshot
    LevelDB refuses to open (try again); one written after the copy is an
    extra file LevelDB deletes when it opens. ``place`` links a table into
    the snapshot; a copy does as well (LevelDB never changes a table once
    written), at the cost of the disk. By default ``os.link``.
    """
    place = place or os.link
    shutil.rmtree(snapshot, ignore_errors=True)
    snapshot.mkdir()
    manifest = (path / "CURRENT").read_text().strip()
    shutil.copyfile(path / manifest, snapshot / manifest)
    (snapshot / "CURRENT").write_text(manifest + "\n")
    for table in path.glob("*.ldb"):
        try:
            place(table, snapshot / table.name)
        except FileNotFoundError:  # compacted away meanwhile; not in the MANIFEST copy either
            continue


class KeyPass(Protocol):
    """Told every stored key by the pass (``store_absent.AbsentKeys``)."""

    def seen(self, keys: list[bytes]) -> None: ...

    def scanned(self) -> None: ...


_KEY_CHUNK = 4096  # keys handed to a ``KeyPass`` at once


class ChecksumCheck:
    """One pass over the store at ``path`` (open as ``db``), started at once in its own thread.

    ``read_failed(path, error)`` turns LevelDB's error into the store's
    StoreError, which becomes ``damage``. ``keys``, if given, is told every
    key the pass reads, and ``scanned`` once it read all of them without
    damage (a snapshot holds the table files only: the caller knows whether
    they hold every write it has not told ``keys`` of itself).
    """

    def __init__(
        self,
        db: plyvel.DB,
        path: Path,
        read_failed: Callable[[Path, plyvel.Error], StoreError],
        keys: KeyPass | None = None,
    ) -> None:
        self._db = db
        self.path = path
        self._read_failed = read_failed
        self._keys = keys
        self.damage: StoreError | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"verify {path.name}", daemon=True)
        self._thread.start()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the pass to end; False if it still runs after ``timeout_s``."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop the pass (between two records) and wait for its thread, unless called from it."""
        self._stopping.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        """Scan a snapshot: hard links to the table files and a copy of the MANIFEST.

        The snapshot is opened as a LevelDB of its own. LevelDB maps the tables
        it reads into memory, so scanning the node's own handle left every
        table mapped and the node's RSS as large as its data directory; the
        snapshot's handle caches few tables and unmaps all of them when it
        closes. Same inodes, so damage in the data directory shows in the
        snapshot. Without hard links (a data directory that is a mount point)
        the node's own handle is scanned.
        """
        snapshot = self.path / SNAPSHOT_DIR
        for _ in range(_SNAPSHOT_ATTEMPTS):
            if self._stopping.is_set():
                return
            try:
                db = self._open_snapshot(snapshot)
            except (OSError, plyvel.Error):
                # A table compacted away between reading CURRENT and linking it, no hard
                # links here, or no room for the snapshot's own small files: never damage
                # (opening the store checked CURRENT, MANIFEST and the tables' presence).
                shutil.rmtree(snapshot, ignore_errors=True)
                continue
            try:
                return self._scan(db, snapshot)
            finally:
                db.close()
                shutil.rmtree(snapshot, ignore_errors=True)
        self._scan(self._db, self.path)

    def _open_snapshot(self, snapshot: Path) -> plyvel.DB:
        link_snapshot(self.path, snapshot)
        return plyvel.DB(str(snapshot), paranoid_checks=True, max_open_files=_SNAPSHOT_OPEN_FILES)

    def _scan(self, db: plyvel.DB, where: Path) -> None:
        told, stopping = self._keys, self._stopping
        try:
            with db.iterator(include_value=False, verify_checksums=True, fill_cache=False) as keys:
                if told is None:
                    for _ in keys:
                        if stopping.is_set():
                            return
                else:
                    chunk: list[bytes] = []
                    for key in keys:
                        chunk.append(key)
                        if len(chunk) == _KEY_CHUNK:
                            if stopping.is_set():
                                return
                            told.seen(chunk)
                            chunk = []
                    told.seen(chunk)
        except plyvel.Error as e:
            said = leveldb_says(e).replace(str(where), str(self.path))
            self.damage = self._read_failed(self.path, plyvel.CorruptionError(said.encode()))
            return
        if told is not None and not stopping.is_set():
            told.scanned()
