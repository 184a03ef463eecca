"""Backups of a chain store: a complete, checked copy of a data directory, taken while the node runs.

LevelDB writes each block as one batch into its memtable (and log), and
never changes a table file once written. A backup

1. flushes the memtable into a table file (``ChainStore.flush_memtable``),
   so the tables hold every block stored so far;
2. links a snapshot of the tables inside the data directory
   (``checksums.link_snapshot``): the store as it stood after some write
   batch, so after a whole block, while the node goes on writing;
3. copies the snapshot to ``.<name>.partial`` next to the destination and
   opens the copy as a node would (the start-up consistency checks, then
   every record read with its checksum);
4. drops the copy's consensus WAL: the votes in it are this node's, and
   older than the ones it has cast since, so a node restored from the
   backup must not take them for its last word (it starts like a node whose
   store came from a peer, and catches up);
5. writes ``lendchain-backup.json`` (chain, node, height, head, state root),
   syncs every file and renames the directory to its name. A directory under
   that name is complete; a failed or interrupted backup leaves nothing there.

The copy is a data directory: a node started on it (``data_dir``) resumes
from its height and fetches the rest from its peers, and ``lendchain
verify-chain --data-dir`` replays it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

from lendchain.node.checksums import NO_HARD_LINKS, link_snapshot
from lendchain.node.config import NodeConfig
from lendchain.node.store import ChainStore, StoreError

BACKUP_FORMAT = "lendchain-backup/1"
INFO_FILE = "lendchain-backup.json"
SNAPSHOT_DIR = "backup-snapshot"  # inside the data directory, for the hard links
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ATTEMPTS = 5  # a table compacted away between the MANIFEST copy and its link: try again
SCHEDULE_RETRY_S = 600  # a scheduled backup that failed is tried again after this (at most)
SCHEDULE_BUSY_RETRY_S = 60  # … and one that found another backup running


class BackupError(Exception):
    """A backup that was not taken; nothing is left under its name.

    ``code``: ``bad_name``, ``bad_request``, ``exists``, ``busy`` (another backup runs),
    ``stopping`` (the node is) or ``failed`` (the store or the disk).
    """

    def __init__(self, message: str, code: str = "failed") -> None:
        super().__init__(message)
        self.code = code


def default_name(node: str, height: int, now_s: float) -> str:
    """``<node>-h<height>-<UTC time>``: sorts by node, then by height."""
    stamp = datetime.fromtimestamp(now_s, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{node}-h{height:010d}-{stamp}"


def check_name(name: str) -> str:
    """``name`` if it is a plain directory name (letters, digits, ``.``, ``_``, ``-``), else BackupError."""
    if not NAME.fullmatch(name) or name in (".", ".."):
        raise BackupError(
            f"backup name {name!r} must be 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            "bad_name",
        )
    return name


def take_backup(store: ChainStore, dest: Path, node: str) -> dict[str, Any]:
    """Copy the open ``store`` (its node may be running) to the new directory ``dest``; its info.

    Blocking, and long for a large store: call it from a thread. Stops with
    BackupError when the store starts closing.
    """
    if dest.exists():
        raise BackupError(f"{dest} already exists; choose another name", "exists")
    partial = dest.with_name(f".{dest.name}.partial")
    started = time.monotonic()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        last: StoreError | None = None
        for _ in range(_ATTEMPTS):
            try:
                head, linked = _copy(store, partial)
                break
            except StoreError as e:
                last = e
        else:
            raise BackupError(f"cannot back up {store.path}: no copy read back in {_ATTEMPTS} tries ({last})")
        info = {
            "format": BACKUP_FORMAT,
            "node": node,
            "chain_id": store.genesis.chain_id,
            "genesis_hash": store.genesis.hash().hex(),
            "height": head.height,
            "head_hash": head.hash.hex(),
            "state_root": head.state_root.hex(),
            "block_time_ms": head.timestamp_ms,
            "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        (partial / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        size = _sync_files(partial)
        os.rename(partial, dest)
        _sync_dir(dest.parent)
    except OSError as e:
        raise BackupError(f"backup to {dest} failed: {e.strerror or e}") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)  # gone already once renamed
    seconds = round(time.monotonic() - started, 2)
    return {
        **info,
        "path": str(dest),
        "bytes": size,
        "seconds": seconds,
        "tables": "linked" if linked else "copied",
    }


def _copy(store: ChainStore, partial: Path) -> tuple[Any, bool]:
    """One attempt: ``partial`` becomes a checked copy of the store without its WAL.

    Returns the copy's head and whether the tables were hard-linked first
    (False: this filesystem has none, so they were copied from the store).

    StoreError: the copy does not open (a table went between the MANIFEST copy
    and its link), or the store is damaged (then every attempt says so).
    """
    _stop_if_closing(store)
    shutil.rmtree(partial, ignore_errors=True)
    store.flush_memtable()
    snapshot = store.path / SNAPSHOT_DIR
    try:
        try:
            link_snapshot(store.path, snapshot)
            linked = True
        except OSError as e:
            if e.errno not in NO_HARD_LINKS:
                raise
            # No hard links on this filesystem: copy each table straight from the store. A table
            # compacted away before its copy opened it is skipped as a link would be (one copied
            # while it goes stays readable to the end), and the copy is opened and read back below.
            linked = False
        if linked:
            partial.mkdir()
            for item in sorted(snapshot.iterdir()):
                _copy_file(store, item, partial / item.name)
        else:
            link_snapshot(store.path, partial, lambda table, to: _copy_file(store, table, to))
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)
    copy = ChainStore.open(partial, store.genesis, create=False)
    try:
        copy.wal_write([(key, b"") for key, _ in copy.wal_items()])
        while not copy.wait_verified(1.0):  # raises the damage it finds
            _stop_if_closing(store)
        return copy.head(), linked
    finally:
        copy.close()


def _copy_file(store: ChainStore, source: Path, to: Path) -> None:
    _stop_if_closing(store)
    shutil.copyfile(source, to)


def _stop_if_closing(store: ChainStore) -> None:
    if store.closing.is_set():
        raise BackupError("the node is stopping; backup abandoned", "stopping")


def _sync_files(directory: Path) -> int:
    """fsync every file in ``directory`` and the directory itself; their total size."""
    size = 0
    for item in directory.iterdir():
        if not item.is_file():
            continue
        fd = os.open(item, os.O_RDONLY)
        try:
            os.fsync(fd)
            size += os.fstat(fd).st_size
        finally:
            os.close(fd)
    _sync_dir(directory)
    return size


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def node_backups(backup_dir: Path, node: str, chain_id: str) -> list[tuple[dict[str, Any], Path]]:
    """This node's complete backups of this chain in ``backup_dir``, oldest first (written, then height).

    By when written, not by height: a node restored from an old backup writes
    lower heights than its backups from before, and those are its newest.

    Only directories whose ``lendchain-backup.json`` names the node and chain
    count; anything else there is not a backup of this node's and is left alone.
    """
    found = []
    for path in backup_dir.glob(f"*/{INFO_FILE}"):
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and info.get("node") == node and info.get("chain_id") == chain_id:
            found.append((info, path.parent))
    return sorted(found, key=lambda item: (str(item[0].get("created_utc", "")), item[0].get("height", 0)))


def prune_backups(backup_dir: Path, node: str, chain_id: str, keep: int, taken: Path) -> list[str]:
    """Delete this node's backups of this chain but the newest ``keep``, never ``taken``; the names deleted."""
    if keep < 1:
        raise BackupError(f"keep must be at least 1 (the backup just taken), not {keep}", "bad_request")
    others = [path for _, path in node_backups(backup_dir, node, chain_id) if path != taken]
    doomed = others[: max(0, len(others) - (keep - 1))]
    for path in doomed:
        shutil.rmtree(path)
    return [path.name for path in doomed]


def back_up_node(store: ChainStore, config: NodeConfig, name: str | None, keep: int | None) -> dict[str, Any]:
    """One backup of ``config``'s node (``name``: default ``default_name``), then pruned to ``keep``.

    What ``POST /backups`` runs in a thread and ``lendchain backup --offline``
    runs directly. ``keep`` is checked before anything is written.
    """
    if keep is not None and keep < 1:
        raise BackupError(f"keep must be at least 1 (the backup just taken), not {keep}", "bad_request")
    name = check_name(default_name(config.name, store.head().height, time.time()) if name is None else name)
    where, dest = config.backup_dir, config.backup_dir / name
    info = take_backup(store, dest, config.name)
    if keep is not None:
        try:
            info["pruned"] = prune_backups(where, config.name, config.genesis.chain_id, keep, dest)
        except OSError as e:  # the backup stands; the older ones stay until a later prune
            info["pruned"], info["prune_failed"] = [], f"deleting older backups failed: {e}"
    return info


class NodeBackups:
    """A running node's backups (``POST /backups``): one at a time, in a thread, counted in metrics."""

    def __init__(
        self,
        config: NodeConfig,
        store: ChainStore,
        metrics: Any,
        log: logging.Logger,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._clock = clock  # wall-clock seconds: when backups were written and are due
        self.store = store
        self.metrics = metrics
        self.log = log
        self.running = False
        # The newest backup's height, path and time (``/status``), found at start too, so
        # "no backup for a day" alerts survive a restart; None until there is one.
        self.newest: dict[str, Any] | None = None
        found = node_backups(config.backup_dir, config.name, config.genesis.chain_id)
        if found:
            info, path = found[-1]
            self._record(info["height"], str(path), (path / INFO_FILE).stat().st_mtime)

    def next_due_s(self, interval_s: int) -> float:
        """When (wall clock) the schedule takes its next backup: at once if there is none."""
        return self.newest["written_s"] + interval_s if self.newest else self._clock()

    async def run_schedule(self, interval_s: int, keep: int) -> None:
        """Back the node up whenever its newest backup is ``interval_s`` old, keeping ``keep``.

        At once when there is none, so a new node has one soon after it starts.
        The schedule follows the newest backup, so a backup taken by hand moves
        it. A failure (counted and logged by ``take``) is retried after
        ``min(interval_s, SCHEDULE_RETRY_S)``; a backup already running, a
        minute later.
        """
        while True:
            wait = self.next_due_s(interval_s) - self._clock()
            if wait > 0:
                await trio.sleep(wait)
                continue  # a backup taken by hand meanwhile moved the schedule
            try:
                await self.take(None, keep)
            except BackupError as e:
                if e.code == "stopping":
                    return
                await trio.sleep(
                    SCHEDULE_BUSY_RETRY_S if e.code == "busy" else min(interval_s, SCHEDULE_RETRY_S)
                )
            except Exception:  # a backup must never stop the node; the operator hears of it
                self.metrics.backups_failed.inc()
                self.log.exception("scheduled backup failed")
                await trio.sleep(min(interval_s, SCHEDULE_RETRY_S))

    def _record(self, height: int, path: str, written_s: float) -> None:
        self.newest = {"height": height, "path": path, "written_s": round(written_s)}
        self.metrics.observe_backup(height, written_s)

    async def take(self, name: str | None, keep: int | None) -> dict[str, Any]:
        """``back_up_node`` in a thread; BackupError (with its ``code``) when it was not taken."""
        if self.running:
            raise BackupError("a backup of this node is already running; wait for it", "busy")
        if name is None:  # an empty name is refused (check_name), not taken for the default
            name = default_name(self.config.name, self.store.head().height, self._clock())
        self.running = True
        try:
            # Abandoned on cancel: the thread stops at its next step once the store closes.
            info = await trio.to_thread.run_sync(
                back_up_node, self.store, self.config, name, keep, abandon_on_cancel=True
            )
        except BackupError as e:
            if not e.code.startswith("bad_"):  # a refused request is the caller's, not an alert
                self.metrics.backups_failed.inc()
                self.log.warning("backup %s not taken: %s", name or "(default name)", e)
            raise
        finally:
            self.running = False
        self._record(info["height"], info["path"], self._clock())
        if "prune_failed" in info:
            self.metrics.backups_failed.inc()
            self.log.warning("backup %s written, but %s", info["path"], info["prune_failed"])
        self.log.info(
            "backup of height %d written to %s (%d bytes in %.1f s%s)",
            info["height"],
            info["path"],
            info["bytes"],
            info["seconds"],
            "" if info["tables"] == "linked" else "; no hard links here, so the tables were copied",
        )
        return info
