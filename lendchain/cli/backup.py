"""``lendchain backup`` and ``lendchain restore``: a node's chain store copied out and put back.

The copy itself is ``lendchain.node.backup``; see the README, "Backing up and
restoring a node".
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from lendchain.cli._common import client_from, client_options, config_option, emit, user_errors


@click.command()
@click.option("--name", help="The backup's directory name (default: NODE-hHEIGHT-UTCTIME).")
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    help="Then delete this node's older backups (of this chain) but the newest KEEP.",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Back up a stopped node's data directory directly (needs --config), not through its API.",
)
@client_options
@click.pass_context
@user_errors
def backup(ctx: click.Context, name: str | None, keep: int | None, offline: bool, **kw: Any) -> None:
    """Copy a node's chain store to its backup_dir while it runs: complete, checked, restorable."""
    if offline:
        value = _offline_backup(kw["config_path"], name, keep)
    else:
        with client_from(kw) as client:
            value = client.backup(name, keep)

    def human(v: dict[str, Any]) -> str:
        pruned = v.get("pruned")
        return (
            f"backup of {v['node']} at height {v['height']} (head {v['head_hash'][:16]}) in {v['path']}\n"
            f"{v['bytes'] / 1e6:.1f} MB in {v['seconds']} s"
            + ("" if v.get("tables", "linked") == "linked" else " (no hard links here: tables copied)")
            + "; to restore, stop the node, then "
            f"lendchain restore {v['path']} --config NODE.toml"
            + (f"\ndeleted older backups: {', '.join(pruned)}" if pruned else "")
        )

    emit(ctx, value, human)


def _offline_backup(config_path: str | None, name: str | None, keep: int | None) -> dict[str, Any]:
    from lendchain.node.backup import BackupError, back_up_node
    from lendchain.node.config import load_node_config
    from lendchain.node.store import ChainStore, StoreError, StoreInUse

    if not config_path:
        raise click.ClickException("--offline needs --config: the node whose data directory to copy")
    config = load_node_config(config_path)
    try:
        store = ChainStore.open(config.data_dir, config.genesis, create=False)
    except StoreError as e:
        hint = "; without --offline the running node takes the backup" if isinstance(e, StoreInUse) else ""
        raise click.ClickException(f"{e}{hint}") from None
    try:
        return back_up_node(store, config, name, keep)
    except BackupError as e:
        raise click.ClickException(str(e)) from None
    finally:
        store.close()


@click.command()
@click.argument("backup_dir", type=click.Path(file_okay=False, exists=True))
@config_option("The (stopped) node whose data directory to restore.")
@click.option("--force", is_flag=True, help="Replace a data directory that still opens cleanly.")
@click.pass_context
@user_errors
def restore(ctx: click.Context, backup_dir: str, config_path: str, force: bool) -> None:
    """Put a backup in place of a stopped node's data directory (the old one is moved aside, not deleted)."""
    from lendchain.node.backup import INFO_FILE
    from lendchain.node.config import load_node_config
    from lendchain.node.store import ChainStore, StoreError

    config = load_node_config(config_path)
    source = Path(backup_dir).resolve()
    try:
        info = json.loads((source / INFO_FILE).read_text())
    except (OSError, ValueError):
        raise click.ClickException(f"{source} is not a lendchain backup (no readable {INFO_FILE})") from None
    genesis = config.genesis
    if info.get("genesis_hash") != genesis.hash().hex():
        raise click.ClickException(
            f"{source} is a backup of chain {info.get('chain_id')!r}, not of this node's "
            f"{genesis.chain_id!r} (genesis {genesis.hash().hex()[:16]})"
        )
    data_dir = config.data_dir
    if data_dir.exists():
        _check_replaceable(data_dir, genesis, force, info)
        aside = data_dir.with_name(f"{data_dir.name}.replaced-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        data_dir.rename(aside)
    else:
        aside = None
    try:
        shutil.copytree(source, data_dir)
        (data_dir / INFO_FILE).unlink()
        with ChainStore.open(data_dir, genesis, create=False) as store:
            store.wait_verified()
            head = store.head()
    except (OSError, StoreError) as e:
        shutil.rmtree(data_dir, ignore_errors=True)
        if aside is not None:
            aside.rename(data_dir)
        raise click.ClickException(f"restore from {source} failed, {data_dir} left as it was: {e}") from None
    value = {
        "data_dir": str(data_dir),
        "height": head.height,
        "head_hash": head.hash.hex(),
        "replaced": str(aside) if aside else None,
    }

    def human(v: dict[str, Any]) -> str:
        moved = f"; the old one is in {v['replaced']}" if v["replaced"] else ""
        return (
            f"restored {v['data_dir']} at height {v['height']}{moved}\n"
            "start the node: it fetches the blocks since from its peers"
        )

    emit(ctx, value, human)


def _check_replaceable(data_dir: Path, genesis: Any, force: bool, info: dict[str, Any]) -> None:
    """Refuse to replace a data directory in use, or one that opens cleanly unless ``force``."""
    from lendchain.node.store import ChainStore, StoreError, StoreInUse

    try:
        with ChainStore.open(data_dir, genesis, create=False) as store:
            store.wait_verified()
            height = store.head().height
    except StoreInUse as e:
        raise click.ClickException(f"{e}: stop the node before restoring") from None
    except StoreError:
        return  # damaged or not a store: what a restore is for
    if not force:
        raise click.ClickException(
            f"{data_dir} opens cleanly at height {height} (the backup is at {info.get('height')}); "
            "pass --force to replace it anyway"
        )
