"""Governance from the command line: propose and vote changes, list proposals, show who votes.

``gov propose`` signs a ``gov.propose`` for any action but a node key's
rotation, which has its own command (``gov propose-rotate-key``: it needs the
new key's proof). Votes, proposals and the voting schedule go through the
node's API like every other command.
"""

from __future__ import annotations

from typing import Any

import click

from lendchain.cli._common import (
    client_from,
    client_options,
    emit,
    member_keys,
    read_passphrase,
    send_tx,
    signer_options,
    user_errors,
)
from lendchain.crypto import read_key_file
from lendchain.ledger.keyrotation import ACTION as ROTATE_KEY
from lendchain.ledger.keyrotation import ROTATION_TAG, proof_body, rotation_value


@click.group()
def gov() -> None:
    """Propose and vote scorecard, member-role, node-key, voting-member and rules changes (applied at 2f+1 votes)."""


@gov.command("propose")
@click.argument(
    "action", type=click.Choice(["scorecard.set", "member.roles", "member.voting", "rules.upgrade"])
)
@click.argument("key")
@click.argument("value")
@signer_options
@click.pass_context
@user_errors
def gov_propose(ctx: click.Context, action: str, key: str, value: str, **kw: Any) -> None:
    """Propose ACTION on KEY with VALUE: scorecard.set base 320, member.roles DID lender,kyc,
    member.voting DID voter|observer (from rules 2), rules.upgrade 2 HEIGHT.
    """
    send_tx(ctx, kw, "gov.propose", {"action": action, "key": key, "value": value})


@gov.command("propose-rotate-key")
@click.argument("member")
@click.argument("new_key_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--new-key-passphrase-file",
    type=click.Path(dir_okay=False),
    help="Passphrase of an encrypted NEW_KEY_FILE (default: LENDCHAIN_PASSPHRASE).",
)
@signer_options
@click.pass_context
@user_errors
def gov_propose_rotate_key(
    ctx: click.Context, member: str, new_key_file: str, new_key_passphrase_file: str | None, **kw: Any
) -> None:
    """Propose that MEMBER's node key becomes the key in NEW_KEY_FILE.

    The new key signs the proof that it is held (so nobody can assign someone
    else's key); the proposal needs 2f+1 votes and takes effect
    key_rotation_delay_blocks after the last one. Configure the member's node
    with next_key_file = NEW_KEY_FILE before that height (encrypted, it opens
    with the node key's passphrase). From that height the member's
    transactions must be signed with the new key; commands given the node's
    --config pick it from next_key_file.
    """
    new_key = read_key_file(new_key_file, read_passphrase(new_key_passphrase_file))
    with client_from(kw) as client:
        chain_id = client.get("/status")["chain_id"]
        keys = member_keys(client, member)
    if keys is None:
        raise click.UsageError(f"{member!r} is not a voting member of this chain")
    did = keys.did
    proof = new_key.sign(ROTATION_TAG, chain_id, proof_body(member, new_key.public_key))
    value = rotation_value(new_key.public_key, proof)
    send_tx(ctx, kw, "gov.propose", {"action": ROTATE_KEY, "key": did, "value": value})


@gov.command("vote")
@click.argument("proposal_id")
@signer_options
@click.pass_context
@user_errors
def gov_vote(ctx: click.Context, proposal_id: str, **kw: Any) -> None:
    """Vote for PROPOSAL_ID (the id of its gov.propose tx)."""
    send_tx(ctx, kw, "gov.vote", {"proposal_id": proposal_id})


@gov.command("list")
@client_options
@click.pass_context
@user_errors
def gov_list(ctx: click.Context, **kw: Any) -> None:
    """Show the proposals open for votes, the soonest to expire first."""
    with client_from(kw) as client:
        view = client.get("/proposals/open")
    emit(ctx, view, describe_open_proposals)


@gov.command("show")
@click.argument("proposal_id")
@client_options
@click.pass_context
@user_errors
def gov_show(ctx: click.Context, proposal_id: str, **kw: Any) -> None:
    """Show PROPOSAL_ID: its change, votes and status."""
    with client_from(kw) as client:
        view = client.get(f"/proposals/{proposal_id}")
    emit(ctx, view, describe_proposal)


def describe_proposal(view: dict[str, Any], needed: int | None = None) -> str:
    cast = view.get("counted_votes", view["votes"])  # a vote counts while its voter votes
    votes = f"{len(cast)}/{needed}" if needed else str(len(cast))
    line = f"{view['proposal_id']}  {view['action']} {view['key']} = {view['value']}  {view['status']}, {votes} votes"
    if view["status"] == "open":
        line += f", open until {view['expires_ms']} ms"
    elif view["status"] == "executed":
        line += f" (executed at height {view['executed_height']})"
    return line


def describe_open_proposals(view: dict[str, Any]) -> str:
    if not view["proposals"]:
        return "no proposal is open"
    lines = [describe_proposal(p, view["needed"]) for p in view["proposals"]]
    if view["open"] > len(view["proposals"]):
        lines.append(f"… and {view['open'] - len(view['proposals'])} more")
    return "\n".join(lines)


@gov.command("voters")
@client_options
@click.pass_context
@user_errors
def gov_voters(ctx: click.Context, **kw: Any) -> None:
    """Show who votes once every scheduled change is in effect, and each change (node route /voting/*)."""
    with client_from(kw) as client:
        view = client.get("/voting/*")
    emit(ctx, view, describe_voting)


def describe_voting(view: dict[str, Any]) -> str:
    lines = [f"voting members after every scheduled change: {', '.join(view['voters_after_changes'])}"]
    for change in view["changes"]:
        role = "votes" if change["voting"] else "stops voting"
        lines.append(f"  {change['member']} {role} from height {change['effective_height']}")
    if not view["changes"]:
        lines.append("  no change of who votes since the genesis")
    return "\n".join(lines)
