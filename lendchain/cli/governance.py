"""Governance from the command line: propose and vote changes, list proposals, show who votes.

``gov propose`` signs a ``gov.propose`` for any action but a node key's
rotation, which has its own command (``gov propose-rotate-key``: it needs the
new key's proof). Admitting a new member takes two sides (``admission``): the
joining bank signs a request with its key (``gov admission-request``, no node
needed, or ``lendchain join``, which also writes its node's config) and a
voting member proposes it (``gov propose-admit``). Votes, proposals, the
members and the voting schedule go through the node's API like every other
command.
"""

from __future__ import annotations

import json
import re
from typing import Any

import click

from lendchain.cli._common import (
    client_from,
    client_options,
    emit,
    member_keys,
    read_passphrase,
    require_rules,
    send_tx,
    signer_options,
    user_errors,
)
from lendchain.cli.admission import (
    CHAIN_ID_MAX,
    check_address,
    check_name,
    check_roles,
    describe_admission,
    make_request,
    read_request,
    refuse_founding_name,
)
from lendchain.client import ref_path
from lendchain.crypto import read_key_file
from lendchain.ledger.admission import ACTION as MEMBER_ADMIT
from lendchain.ledger.admission import SINCE_RULES as ADMIT_SINCE
from lendchain.ledger.dispute_records import time_text
from lendchain.ledger.governance import ACTIONS as GOVERNANCE_ACTIONS
from lendchain.ledger.keyrotation import ACTION as ROTATE_KEY
from lendchain.ledger.keyrotation import ROTATION_TAG, proof_body, rotation_value
from lendchain.ledger.params import PARAMS, ParamError, as_text, parse_text, problem, unknown
from lendchain.ledger.params_change import ACTION as PARAMS_SET
from lendchain.ledger.params_change import SINCE_RULES as PARAMS_SET_SINCE
from lendchain.ledger.rules import RULES_VERSION
from lendchain.node.config import load_genesis

_PROPOSAL_ID = re.compile(r"[0-9a-f]{64}")


@click.group()
def gov() -> None:
    """Propose and vote changes to the scorecard, the members (roles, keys, votes, joining, moving, leaving),
    the chain parameters and the rules, applied at 2f+1 votes; list proposals, members and parameters."""


@gov.command("propose")
@click.argument(
    "action",
    # Every action the ledger takes but the rotation, which needs the new key's proof (below).
    type=click.Choice([action for action in GOVERNANCE_ACTIONS if action != ROTATE_KEY]),
    metavar="ACTION",  # the choices, listed in the usage line, would bury KEY and VALUE; errors list them
)
@click.argument("key")
@click.argument("value")
@signer_options
@click.pass_context
@user_errors
def gov_propose(ctx: click.Context, action: str, key: str, value: str, **kw: Any) -> None:
    """Propose ACTION on KEY with VALUE: scorecard.set base 320, member.roles DID lender,kyc,
    member.voting DID voter|observer (from rules 2), rules.upgrade 2 HEIGHT,
    member.admit NAME VALUE (from rules 3; prefer propose-admit, which checks
    the joining bank's request before it sends it), member.remove DID REASON
    (from rules 3; demote a voting member first), member.address DID MULTIADDR
    (from rules 3: its node moved), params.set NAME VALUE (from rules 6: a chain
    parameter, see `gov params`; checked here before it is sent).
    """
    if action == PARAMS_SET:
        _check_params_change(kw, key, value)
    send_tx(ctx, kw, "gov.propose", {"action": action, "key": key, "value": value})


def _check_params_change(kw: dict[str, Any], name: str, text: str) -> None:
    """Refuse a params.set the ledger would refuse for its key, value or rules, before signing it."""
    param = PARAMS.get(name)
    if param is None:
        raise click.BadParameter(unknown(name, PARAMS_SET_SINCE), param_hint="'KEY'")
    if not param.changeable:
        raise click.BadParameter(
            f"governance does not change {name}: {param.fixed_because}", param_hint="'KEY'"
        )
    try:
        parse_text(name, text)
    except ParamError as e:
        raise click.BadParameter(str(e), param_hint="'VALUE'") from None
    with client_from(kw) as client:
        status = client.get("/status")
    require_rules(status, PARAMS_SET_SINCE, PARAMS_SET, "propose the change")
    # A parameter a later version added is no parameter to the ledger before it (``params.since``).
    require_rules(status, param.since, f"{PARAMS_SET} {name}", "propose the change")


@gov.command("params")
@click.argument("name", default="*")
@client_options
@click.pass_context
@user_errors
def gov_params(ctx: click.Context, name: str, **kw: Any) -> None:
    """Show every chain parameter (or NAME): its value in force, its default and where the value came
    from (node route /params/*); `gov propose params.set NAME VALUE` changes one."""
    if name != "*" and name not in PARAMS:
        raise click.BadParameter(unknown(name, RULES_VERSION), param_hint="'NAME'")
    with client_from(kw) as client:
        view = client.get(ref_path("/params", name))
    emit(ctx, view, describe_params)


def describe_params(view: dict[str, Any]) -> str:
    lines = []
    for row in view["parameters"]:
        source = {"default": "the default", "genesis": "set by the genesis"}.get(row["source"])
        if source is None:  # governance
            source = f"changed by proposal {row['proposal_id'][:16]} at height {row['changed_height']}"
        current = as_text(row["name"], row["value"]) if _readable(row) else json.dumps(row["value"])
        default = as_text(row["name"], row["default"])
        if row["name"].endswith("_ms") and _readable(row):  # milliseconds, as params.set takes them
            current += f" ({duration_text(row['value'])})"
            default += f" ({duration_text(row['default'])})"
        changeable = "params.set changes it" if row["changeable"] else "fixed"
        lines.append(f"{row['name']:<26} {current:<24} default {default:<14} {source}; {changeable}")
        for era in row.get("earlier_loans", ()):
            lines.append(
                f"{'':<26} loans disbursed up to {time_text(era['disbursed_until_ms'])} keep {era['value']}"
            )
    return "\n".join(lines)


def duration_text(ms: int) -> str:
    """A duration in milliseconds as days, hours, minutes and seconds: ``604800000`` is "7 d"."""
    if ms < 1000:
        return f"{ms} ms"
    seconds, parts = ms // 1000, []
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    return " ".join(parts)


def _readable(row: dict[str, Any]) -> bool:
    """Whether the value is one ``params.as_text`` writes (a genesis may hold anything)."""
    return problem(row["name"], row["value"]) is None


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


@gov.command("admission-request")
@click.argument("name", callback=check_name)
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The joining bank's node key file (made with `lendchain keys new`).",
)
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False),
    help="Passphrase of an encrypted key (default: LENDCHAIN_PASSPHRASE).",
)
@click.option(
    "--address",
    required=True,
    callback=check_address,
    help="Multiaddr the bank's node listens on, e.g. /dns4/node.bank5.example/tcp/47101.",
)
@click.option(
    "--roles",
    default="",
    callback=check_roles,
    help="Comma-separated roles asked for: lender, kyc, bureau, regulator, investor_platform (default: none).",
)
@click.option("--chain-id", help="Id of the chain to join.")
@click.option(
    "--genesis",
    "genesis_path",
    type=click.Path(exists=True, dir_okay=False),
    help="The chain's genesis.toml, instead of --chain-id (also refuses a name or key it already has).",
)
@click.option("--out", type=click.Path(dir_okay=False), help="File to write; never overwritten.")
@click.pass_context
@user_errors
def gov_admission_request(
    ctx: click.Context,
    name: str,
    key_path: str,
    passphrase_file: str | None,
    address: str,
    roles: list[str],
    chain_id: str | None,
    genesis_path: str | None,
    out: str | None,
) -> None:
    """Sign a joining bank's request to become member NAME, with its node key (no node needed).

    Writes a JSON request to hand to a voting member, who proposes it with
    `gov propose-admit`: the chain id, name, public key, did:key, address and
    roles, the key's signature of them (its proof) and the member.admit value
    they make.
    """
    genesis = None
    if genesis_path is not None:
        if chain_id is not None:
            raise click.UsageError("give the chain either as --chain-id or as --genesis, not both")
        genesis = load_genesis(genesis_path)
        chain_id = genesis.chain_id
    if not chain_id or len(chain_id) > CHAIN_ID_MAX:
        raise click.UsageError(
            f"give the chain to join: --chain-id ID (1 to {CHAIN_ID_MAX} characters) or --genesis genesis.toml"
        )
    key = read_key_file(key_path, read_passphrase(passphrase_file))
    if genesis is not None:
        refuse_founding_name(genesis, name, genesis_path)
        holder = genesis.member_by_key(key.public_key)
        if holder is not None:
            raise click.BadParameter(
                f"{key_path} is {holder.name}'s node key in {genesis_path}", param_hint="'--key'"
            )
    request = make_request(key, chain_id, name, address, roles)
    if out is None:
        click.echo(json.dumps(request, indent=2))
        click.echo(f"Save this request and {_handoff(chain_id, 'FILE')}", err=True)
        return
    try:
        with open(out, "x") as file:
            file.write(json.dumps(request, indent=2) + "\n")
    except FileExistsError:
        raise click.ClickException(f"{out} already exists; remove it or choose another --out") from None
    except OSError as e:
        raise click.ClickException(f"cannot write {out}: {e.strerror}") from None
    emit(ctx, {"path": out, **request}, lambda v: f"Wrote {out}: {_handoff(chain_id, out)}")


def _handoff(chain_id: str, path: str) -> str:
    return f"hand it to a voting member of {chain_id}, who runs `lendchain gov propose-admit {path}`."


@gov.command("propose-admit")
@click.argument("request_file", type=click.Path(exists=True, dir_okay=False))
@signer_options
@click.pass_context
@user_errors
def gov_propose_admit(ctx: click.Context, request_file: str, **kw: Any) -> None:
    """Propose admitting the bank that signed REQUEST_FILE (its `gov admission-request`).

    Nothing is sent unless the request holds together: its fields, its key's
    proof, the chain it asks to join (this node's), and rules version 3 on the
    chain. The proposal needs 2f+1 votes; the new member then has its roles
    but does not vote until a member.voting proposal promotes it.
    """
    request = read_request(request_file)
    with client_from(kw) as client:
        status = client.get("/status")
    if request.chain_id != status["chain_id"]:
        raise click.BadParameter(
            f"{request_file} asks to join chain {request.chain_id!r}, but this node is on "
            f"{status['chain_id']!r}; ask for a request made for this chain",
            param_hint="'REQUEST_FILE'",
        )
    require_rules(status, ADMIT_SINCE, MEMBER_ADMIT, "propose the admission")
    send_tx(ctx, kw, "gov.propose", {"action": MEMBER_ADMIT, "key": request.name, "value": request.value})


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
    # The node answers ``/proposals/open`` with the open list, not a proposal: `gov list` prints that.
    if not _PROPOSAL_ID.fullmatch(proposal_id):
        raise click.BadParameter(
            "a proposal is named by the id of its gov.propose tx, 64 lowercase hex digits "
            "(`lendchain gov list` shows the open ones)",
            param_hint="'PROPOSAL_ID'",
        )
    with client_from(kw) as client:
        view = client.get(ref_path("/proposals", proposal_id))
    emit(ctx, view, describe_proposal)


def describe_proposal(view: dict[str, Any], needed: int | None = None) -> str:
    """One proposal a line: its change, status and the votes that count, by their members' names
    (``member_names``; the DIDs from an older node, which names none), the proposer's first."""
    cast = view.get("counted_votes", view["votes"])  # a vote counts while its voter votes
    votes = f"{len(cast)}/{needed}" if needed else str(len(cast))
    names = view.get("member_names", {})
    if cast:
        votes += f" votes ({', '.join(names.get(did, did) for did in cast)})"
    else:
        votes += " votes"
    if view["action"] == MEMBER_ADMIT:
        change = describe_admission(view["key"], view["value"])
    else:
        change = f"{view['key']} = {view['value']}"
    line = f"{view['proposal_id']}  {view['action']} {change}  {view['status']}, {votes}"
    if view["status"] == "open":
        line += f", open until {time_text(view['expires_ms'])}"
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


@gov.command("members")
@click.argument("name", default="*")
@client_options
@click.pass_context
@user_errors
def gov_members(ctx: click.Context, name: str, **kw: Any) -> None:
    """Show every member (or NAME): roles, vote, how it joined, address, removal (node route /members/*)."""
    with client_from(kw) as client:
        view = client.get(ref_path("/members", name))
    emit(ctx, view, describe_members)


def describe_members(view: dict[str, Any]) -> str:
    lines = []
    for member in view["members"]:
        if "removed_height" in member:
            part = f"removed at {member['removed_height']}: {member['removal_reason']}"
        else:
            since = f" from {member['voting_since']}" if member["voting_since"] else ""
            part = ("votes" if member["voting"] else "observes") + since
        joined = f"admitted at {member['admitted_height']}" if member["joined"] == "admitted" else "genesis"
        roles = ",".join(member["roles"]) or "no roles"
        lines.append(f"{member['name']:<12} {part:<24} {roles:<24} {joined:<18} {member.get('address', '-')}")
        lines.append(f"{'':<12} {member['did']}")
        if "open_loans_serviced" in member:  # asked for one member: what its removal waits for
            serviced, pending = member["open_loans_serviced"], member["transfers_pending_to"]
            recovering = member.get("written_off_recovering")  # an older release's node leaves it out
            recoveries = (
                f", recovers {recovering} written-off loan{'s' if recovering != 1 else ''}"
                if recovering is not None
                else ""
            )
            lines.append(
                f"{'':<12} services {serviced} open loan{'s' if serviced != 1 else ''}, "
                f"{pending} transfer{'s' if pending != 1 else ''} pending to it{recoveries}"
            )
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
