"""``lendchain keys``: Ed25519 key files for nodes and parties."""

from __future__ import annotations

import click

from lendchain.cli._common import emit, read_passphrase, user_errors
from lendchain.crypto import (
    SigningKey,
    did_from_public_key,
    key_file_is_encrypted,
    read_public_key_file,
    write_key_file,
)


@click.group()
def keys() -> None:
    """Create and inspect key files (node keys and party did:key identities)."""


@keys.command("new")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--passphrase-file", type=click.Path(exists=True, dir_okay=False), help="Encrypt the key.")
@click.pass_context
@user_errors
def keys_new(ctx: click.Context, path: str, passphrase_file: str | None) -> None:
    """Write a new key to PATH (mode 0600; never overwrites) and print its did:key."""
    key = SigningKey.generate()
    passphrase = read_passphrase(passphrase_file) if passphrase_file else None
    write_key_file(path, key, passphrase)
    emit(ctx, {"path": path, "public_key": key.public_key.hex(), "did": key.did}, lambda v: v["did"])


@keys.command("show")
@click.argument("path", type=click.Path(dir_okay=False))
@click.pass_context
@user_errors
def keys_show(ctx: click.Context, path: str) -> None:
    """Print a key file's public key and did:key (no passphrase needed)."""
    public_key = read_public_key_file(path)
    value = {
        "path": path,
        "public_key": public_key.hex(),
        "did": did_from_public_key(public_key),
        "encrypted": key_file_is_encrypted(path),
    }
    emit(
        ctx,
        value,
        lambda v: f"did        {v['did']}\npublic key {v['public_key']}\nencrypted  {v['encrypted']}",
    )
