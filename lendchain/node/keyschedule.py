"""The node's side of key rotation: the consensus key schedule read from the ledger state.

The ledger records executed ``member.rotate_key`` proposals under
``keyrotation.NODE_KEYS_KEY``; the consensus core wants a ``KeySchedule``.
This module builds one from a state reader (the store at its head), tells the
replica what a newly executed block scheduled (``keys_learned``) and lists,
for the network's allow-list, every key a member has had or will have.

The horizon (how far the schedule is known to be complete) is the executed
height + the chain's ``key_rotation_delay_blocks``; for reading a finished
chain (verify-chain, the API's block view) there is no horizon.

A running node reads all of this after every block (the driver's
``keys_learned``, the daemon's commit listener) but a block changes it only
when a governance vote's outcome executes in it: ``CommittedRoster`` keeps
what the store's head shows and reads it again only after a block that wrote
one of the state keys it comes from.
"""

from __future__ import annotations

from collections.abc import Collection, Container

from lendchain.consensus.events import KeysLearned
from lendchain.consensus.keys import KeySchedule
from lendchain.genesis import Genesis
from lendchain.ledger.addresses import current_addresses
from lendchain.ledger.admission import admitted_members
from lendchain.ledger.keyrotation import (
    NODE_KEYS_KEY,
    delay_blocks,
    genesis_key_schedule,
    scheduled_rotations,
)
from lendchain.ledger.membership import VOTING_CHANGES_KEY, voting_changes
from lendchain.ledger.removal import removed_members
from lendchain.ledger.state import (
    ADDRESSES_KEY,
    ADMITTED_KEY,
    PARAMS_KEY,
    REMOVED_KEY,
    StateReader,
    get_params,
    institution_key,
    read_value,
)


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
    schedule = _schedule(genesis, admitted_of(reader), rotations_of(reader), voting_of(reader))
    if executed_height is not None:
        schedule.horizon = executed_height + delay_blocks(get_params(reader))
    return schedule


def _schedule(
    genesis: Genesis,
    admitted: tuple[tuple[str, bytes], ...],
    rotations: tuple[tuple[str, int, bytes], ...],
    voting: tuple[tuple[str, int, bool], ...],
) -> KeySchedule:
    schedule = genesis_key_schedule(genesis)
    for name, key in admitted:
        schedule.admit(name, key)
    for name, height, key in rotations:  # every member's: observers are in the schedule too
        schedule.add(name, height, key)
    for name, height, votes in voting:
        schedule.set_voting(name, height, votes)
    return schedule


def keys_learned(reader: StateReader, executed_height: int) -> KeysLearned:
    """What the replica needs after the driver executed ``executed_height``."""
    horizon = executed_height + delay_blocks(get_params(reader))
    return KeysLearned(rotations_of(reader), horizon, voting_of(reader), admitted_of(reader))


# The state keys ``CommittedRoster`` is read from, besides the records of the admitted members.
ROSTER_KEYS = (NODE_KEYS_KEY, VOTING_CHANGES_KEY, ADMITTED_KEY, ADDRESSES_KEY, REMOVED_KEY, PARAMS_KEY)


class CommittedRoster:
    """The members' keys, votes, removals and addresses at the store's head, kept between blocks.

    ``after_commit`` reads them again when the committed block wrote one of
    ``ROSTER_KEYS`` or the record of an admitted member, which is all they are
    made of; every other block leaves them as they were. The values are shared:
    callers read them and never change them.

    Every commit of the node's store is meant to come through ``NodeApp.commit``,
    which calls ``after_commit``. Should a commit ever go around it, the next
    ``after_commit`` sees a height that is not the next one and reads everything
    again, rather than keep an older member set's keys.
    """

    def __init__(self, genesis: Genesis, reader: StateReader) -> None:
        self.genesis = genesis
        self._reader = reader
        self._read()

    def _read(self) -> None:
        reader = self._reader
        self.admitted = admitted_of(reader)
        self.rotations = rotations_of(reader)
        self.voting = voting_of(reader)
        self.delay = delay_blocks(get_params(reader))
        self.removed = removed_members(reader)
        self.addresses = current_addresses(reader)
        # No horizon: the daemon's view of who signs and votes (``keys_learned`` gives the replica one).
        self.schedule = _schedule(self.genesis, self.admitted, self.rotations, self.voting)
        admitted_dids = read_value(reader, ADMITTED_KEY) or []
        self._watched = (*ROSTER_KEYS, *(institution_key(did) for did in admitted_dids))
        head = getattr(reader, "head", None)  # a store has one; a bare state reader does not
        self.height: int | None = head().height if head is not None else None

    def after_commit(self, changes: Container[bytes], height: int | None = None) -> None:
        """The store committed block ``height`` with these state ``changes``: read again if they
        touch us, or if a commit went by without this call (``height`` is not the next one)."""
        skipped = height is not None and self.height is not None and height != self.height + 1
        if skipped or any(key in changes for key in self._watched):
            self._read()
        if height is not None:
            self.height = height

    def keys_learned(self, executed_height: int) -> KeysLearned:
        """``keys_learned(store, executed_height)``, from what is kept."""
        return KeysLearned(self.rotations, executed_height + self.delay, self.voting, self.admitted)


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
