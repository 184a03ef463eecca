"""A private copy of a stopped node's data directory, made without writing a byte to it.

LevelDB has no read-only open: opening a directory replays its log into a
new table, writes a new MANIFEST and log, rotates ``LOG`` and deletes the
files it no longer needs, and the chain store adds its checksum snapshot
inside it. A report reads a data directory it must leave as it found it (a
stopped node's, or a backup kept as evidence), so it opens a copy instead:

- the table files (``*.ldb``, ``*.sst``) are hard links: LevelDB never
  writes a table once it is written, and deleting a link in the copy leaves
  the source's name in place (a link changes a table's link count and
  ctime while it lasts, not its bytes or mtime). Where hard links fail (the copy on another
  filesystem than the data directory, or a file the reader does not own
  under ``fs.protected_hardlinks``) they are copied, at the cost of the disk;
- the small files LevelDB does rewrite or append to (``CURRENT``, the
  ``MANIFEST-*``, the ``*.log``, ``LOG``) are copied;
- ``LOCK`` and the store's own scratch directories are left out.

While it copies, the reader holds a shared POSIX lock on the source's
``LOCK`` file, the lock LevelDB takes (exclusively) for as long as a node
has the directory open. A node running on it makes the lock fail, and the
copy is refused: its files change under the copy. A node started during the
copy fails to open the directory, as it would beside another node. The lock
is taken on a descriptor opened read-only, so the source is not written
even then; it tells nothing about a node in the reader's own process (a
process's POSIX locks do not conflict with each other), which a report never
runs beside.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lendchain.node.checksums import NO_HARD_LINKS

TABLE_SUFFIXES = (".ldb", ".sst")  # LevelDB's immutable tables (.sst: older releases' name)
COPIED_NAMES = ("CURRENT", "LOG")  # and every MANIFEST-* and *.log


class SnapshotError(Exception):
    """The data directory cannot be copied; one sentence saying why and what to do."""


class DataDirInUse(SnapshotError):
    """A process holds the data directory's LevelDB lock: a node runs on it."""


def snapshot_data_dir(source: Path, copy: Path) -> bool:
    """Make ``copy`` (new) a LevelDB holding what ``source`` holds; True if its tables are hard links.

    DataDirInUse if a node runs on ``source``; SnapshotError if it holds no
    LevelDB or a file cannot be read or written (``copy`` is then partly made:
    the caller removes it).
    """
    if not (source / "CURRENT").is_file():
        raise SnapshotError(
            f"{source} holds no chain store (it has no CURRENT file): give a node's data directory or a "
            "backup of one"
        )
    with _shared_lock(source):
        try:
            copy.mkdir()
            return _copy_files(source, copy)
        except OSError as e:
            where = f" ({e.filename})" if e.filename else ""
            raise SnapshotError(
                f"cannot copy data directory {source} to read it: {e.strerror}{where}"
            ) from None


def _copy_files(source: Path, copy: Path) -> bool:
    linked = True
    for item in sorted(source.iterdir()):
        name = item.name
        if name.endswith(TABLE_SUFFIXES):
            if linked:
                try:
                    os.link(item, copy / name)
                    continue
                except OSError as e:
                    if e.errno not in NO_HARD_LINKS:
                        raise
                    linked = False  # the rest are copied too: they would fail the same way
            shutil.copyfile(item, copy / name)
        elif name in COPIED_NAMES or name.startswith("MANIFEST-") or name.endswith(".log"):
            shutil.copyfile(item, copy / name)
    return linked


@contextmanager
def _shared_lock(source: Path) -> Iterator[None]:
    """Hold a shared lock on ``source``'s LOCK file, or raise DataDirInUse if a node holds it."""
    lock_file = source / "LOCK"
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except FileNotFoundError:  # no LevelDB has run on it since it was copied here: no node runs on it
        yield
        return
    except OSError as e:
        raise SnapshotError(f"cannot read {lock_file}: {e.strerror}") from None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EAGAIN):
                raise DataDirInUse(
                    f"data directory {source} is in use by another process (is a node running on it?): "
                    "stop the node first, or for a running node give --node URL instead"
                ) from None
            # No POSIX locks on this filesystem (ENOLCK, EINVAL): nothing tells whether a node runs
        yield
    finally:
        os.close(fd)  # releases the lock
