"""``lendchain join``: everything a bank the genesis does not name needs before the members admit it.

One command on the joining bank's side writes a new directory with its node
key, the consortium's genesis, a node config with ``join = true`` (checked by
loading it, as ``lendchain start`` will), and the signed admission request
to hand to a voting member (``gov propose-admit``). Nothing is overwritten,
and nothing is sent: the bank's node has no peers until it is admitted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import click
import tomli_w

from lendchain.cli._common import emit, read_passphrase, user_errors
from lendchain.cli.admission import (
    check_address,
    check_name,
    check_roles,
    make_request,
    refuse_founding_name,
)
from lendchain.crypto import SigningKey, write_key_file
from lendchain.node.config import load_genesis, load_node_config


def _api_listen(ctx: click.Context, param: click.Parameter, value: str) -> str:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"must be 'host:port' such as '127.0.0.1:8105', not {value!r}")
    return value


def _optional_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else check_address(ctx, param, value)


@click.command()
@click.argument("name", callback=check_name)
@click.option(
    "--genesis",
    "genesis_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The consortium's genesis.toml (copied into --out).",
)
@click.option(
    "--address",
    required=True,
    callback=check_address,
    help="Multiaddr the other members dial, e.g. /dns4/node.bank5.example/tcp/47101.",
)
@click.option("--listen", callback=_optional_address, help="Multiaddr the node binds (default: --address).")
@click.option(
    "--roles", default="", callback=check_roles, help="Comma-separated roles asked for (default: none)."
)
@click.option(
    "--api-listen",
    default="127.0.0.1:8100",
    show_default=True,
    callback=_api_listen,
    help="host:port of the node's HTTP API.",
)
@click.option(
    "--passphrase-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Encrypt the node key with this passphrase (the config names the file).",
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="A new directory to write.")
@click.pass_context
@user_errors
def join(
    ctx: click.Context,
    name: str,
    genesis_path: str,
    address: str,
    listen: str | None,
    roles: list[str],
    api_listen: str,
    passphrase_file: str | None,
    out: str,
) -> None:
    """Prepare member NAME's node to join a running consortium: key, config, admission request."""
    genesis = load_genesis(genesis_path)
    refuse_founding_name(genesis, name, genesis_path)
    directory = Path(out)
    if directory.exists() and any(directory.iterdir()):
        raise click.ClickException(f"{out} is not empty; choose a new directory")
    key = SigningKey.generate()
    request = make_request(key, genesis.chain_id, name, address, roles)
    (directory / "keys").mkdir(parents=True, exist_ok=True)
    passphrase = read_passphrase(passphrase_file) if passphrase_file else None
    write_key_file(directory / "keys" / f"{name}.key", key, passphrase)
    shutil.copyfile(genesis_path, directory / "genesis.toml")
    config: dict[str, Any] = {
        "name": name,
        "join": True,
        "genesis": "genesis.toml",
        "key_file": f"keys/{name}.key",
        "data_dir": f"data/{name}",
    }
    if passphrase_file:
        config["passphrase_file"] = str(Path(passphrase_file).resolve())
    config |= {"p2p": {"listen": listen or address}, "api": {"listen": api_listen}}
    config_path = directory / f"{name}.toml"
    config_path.write_text(tomli_w.dumps(config))
    load_node_config(config_path)  # what `lendchain start` will read: refused here, not there
    request_path = directory / f"{name}-admission.json"
    request_path.write_text(json.dumps(request, indent=2) + "\n")
    value = {"config": str(config_path), "request": str(request_path), "did": request["did"]}
    emit(
        ctx,
        value,
        lambda v: "\n".join(
            [
                f"wrote {out}: {name}'s node key, config and admission request ({v['did']})",
                f"  1. hand {v['request']} to a voting member of {genesis.chain_id}, who runs",
                f"       lendchain gov propose-admit {Path(v['request']).name}",
                f"  2. start the node (it says 'joining' until the members admit it): "
                f"lendchain start --config {v['config']}",
            ]
        ),
    )
