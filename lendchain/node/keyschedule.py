"""The node's side of key rotation: the consensus key schedule read from the ledger state.

The ledger records executed ``member.rotate_key`` proposals under
``keyrotation.NODE_KEYS_KEY``; the consensus core wants a ``KeySchedule``.
This module builds one from a state reader (the store at its head), tells the
replica what a newly executed block scheduled (``keys_learned``) and lists,
for the network's allow-list, every key a member has had or will have.

The horizon (how far the schedule is known to be complete) is the executed
height + the chain's ``key_rotation_delay_blocks``; for reading a finished
chain (verify-chain, the API's block view) there is no horizon.
"""

from __future__ import annotations

from collections.abc import Collection

from lendchain.consensus.events import KeysLearned
from lendchain.consensus.keys import KeySchedule
from lendchain.genesis import Genesis
from lendchain.ledger.admission import admitted_members
from lendchain.ledger.keyrotation import delay_blocks, genesis_key_schedule, scheduled_rotations
from lendchain.ledger.membership import voting_changes
from lendchain.ledger.state import StateReader, get_params


def rotations_of(reader: StateReader) -> tuple[tuple[str, int, bytes], ...]:
    """Every executed rotation as (member, effective height, public key), by member, then height.

    Observers' too: an observer may be promoted to vote (``member.voting``).
    """
    return tuple(
        (name, height, key)
        for name, entries in sorted(scheduled_rotations(reader).items())
        for height, key in entries
    )


def admitted_of(reader: StateReader) -> tuple[tuple[str, bytes], ...]:
    """Every member admitted after the genesis (``member.admit``) as (name, public key), in admission order."""
    return tuple((member.name, member.public_key) for member in admitted_members(reader))


def voting_of(reader: StateReader) -> tuple[tuple[str, int, bool], ...]:
    """Every executed change of who votes as (member, effective height, voting), by member, then height."""
    return tuple(
        (name, height, bool(voting))
        for name, entries in sorted(voting_changes(reader).items())
        for height, voting in entries
    )


def key_schedule(genesis: Genesis, reader: StateReader, executed_height: int | None = None) -> KeySchedule:
    """Every member's keys and votes as ``reader`` knows them; a horizon only with ``executed_height``."""
    schedule = genesis_key_schedule(genesis)
    for name, key in admitted_of(reader):
        schedule.admit(name, key)
    for name, height, key in rotations_of(reader):  # every member's: observers are in the schedule too
        schedule.add(name, height, key)
    for name, height, voting in voting_of(reader):
        schedule.set_voting(name, height, voting)
    if executed_height is not None:
        schedule.horizon = executed_height + delay_blocks(get_params(reader))
    return schedule


def keys_learned(reader: StateReader, executed_height: int) -> KeysLearned:
    """What the replica needs after the driver executed ``executed_height``."""
    horizon = executed_height + delay_blocks(get_params(reader))
    return KeysLearned(rotations_of(reader), horizon, voting_of(reader), admitted_of(reader))


def member_keys(schedule: KeySchedule, removed: Collection[str] = ()) -> dict[str, list[bytes]]:
    """Every key of every member but the ``removed``, observers included, newest first (the allow-list)."""
    return {name: schedule.keys_of(name)[::-1] for name in schedule.names if name not in removed}


def unheld_rotation(reader: StateReader, name: str, held: list[bytes]) -> tuple[int, bytes] | None:
    """(effective height, key) of ``name``'s newest scheduled node key when it is none of ``held``.

    A node that does not hold its member's next key stops signing consensus
    messages at that height (and keeps its old network identity): worth an
    alarm from the moment the rotation is voted through, not from that height.
    """
    entries = scheduled_rotations(reader).get(name, [])
    if not entries or entries[-1][1] in held:
        return None
    return entries[-1][0], entries[-1][1]
