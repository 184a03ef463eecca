"""Member key schedules: which public key signs for a member at which height.

The genesis gives every member its first key, valid from height 0. The
ledger's ``member.rotate_key`` governance action later schedules a new key
from an *effective height* on; the node's driver hands each executed rotation
to the replica (``KeysLearned``), so the consensus core stays ignorant of the
ledger and of how rotations are decided.

Which height a message is judged at (``signing_height``):

======================  ===========================================================
PRE-PREPARE, PREPARE,   the height the message is for
COMMIT, CHECKPOINT
certificate             its own height (commit, prepared, checkpoint)
CERT announce           the height of the certificate it carries
VIEW-CHANGE             the signer's committed height + 1 (proven by the commit
                        certificate it carries), i.e. the height it would vote at
NEW-VIEW                the highest committed height among its VIEW-CHANGEs + 1,
                        which is where it re-proposes (the view-change floor + 1)
======================  ===========================================================

All of these are read from the message itself, so the signer and every
receiver pick the same key without agreeing on anything else.

Who votes. The same height decides who is a voting member: the genesis's
members vote from height 0, the others it names (observers) do not, and the
ledger's ``member.voting`` governance action switches a member either way from
an effective height on, with the same delay as a key rotation (so the horizon
below covers both). ``members_at(h)`` is the voting members at h, in the
schedule's order (genesis members, then the others, then members admitted
later by the ledger's ``member.admit`` in admission order, each while it votes):
quorums, the primary of a view and every certificate at h are taken over that
list, so a height's certificates are checked against the members that voted
at that height, also long after they changed.

Horizon. A schedule may know it is complete only up to some height: a node
that executed block e knows every rotation effective at or below
e + delay (the ledger's ``key_rotation_delay_blocks``), since a rotation
executed later takes effect later still. ``horizon`` is that height (None:
complete for every height, as with a fixed member list). Nothing above the
horizon is judged: the replica ignores such messages (they only tell it that
their sender is ahead) and such certificates wait until the schedule catches up.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Any


class KeysNotYetKnown(ValueError):
    """A height above the schedule's horizon: a key rotation there may not be known yet."""


class KeySchedule:
    """Member order, each member's keys by effective height (a genesis key from 0), and who votes when.

    ``members`` vote from height 0; ``others`` (observers) are known members
    that do not, until ``set_voting`` says otherwise.
    """

    def __init__(
        self,
        members: Sequence[tuple[str, bytes]],
        horizon: int | None = None,
        *,
        others: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        names = [name for name, _ in (*members, *others)]
        if not members or len(set(names)) != len(names):
            raise ValueError("members must be a non-empty list of distinct (name, public key) pairs")
        self.names = names  # every member, voting or not, in member order
        self.horizon = horizon
        self._entries: dict[str, list[tuple[int, bytes]]] = {
            name: [(0, key)] for name, key in (*members, *others)
        }
        voters = {name for name, _ in members}
        self._voting: dict[str, list[tuple[int, bool]]] = {name: [(0, name in voters)] for name in names}

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def admit(self, name: str, public_key: bytes) -> bool:
        """Add a member the genesis does not name, last in member order, not voting; False if known.

        The ledger's ``member.admit``: it votes only once a later ``set_voting``
        says so, so the height it was admitted at does not matter here (its key
        is the only one it has had until it rotates).
        """
        if name in self._entries:
            if self._entries[name][0][1] != public_key:
                raise ValueError(f"{name!r} is already a member, with another key")
            return False
        if len(public_key) != 32:
            raise ValueError(f"bad key for admitted member {name}: {public_key!r:.20}")
        self.names.append(name)
        self._entries[name] = [(0, public_key)]
        self._voting[name] = [(0, False)]
        return True

    def add(self, name: str, effective_height: int, public_key: bytes) -> bool:
        """Schedule ``public_key`` for ``name`` from ``effective_height``; False if already known."""
        if name not in self._entries:
            raise ValueError(f"key rotation for {name!r}, who is not a member")
        if effective_height < 1 or len(public_key) != 32:
            raise ValueError(
                f"bad key rotation for {name}: height {effective_height}, key {public_key!r:.20}"
            )
        entries = self._entries[name]
        if (effective_height, public_key) in entries:
            return False
        if effective_height <= entries[-1][0]:
            raise ValueError(f"key rotation for {name} at {effective_height} is not after its last one")
        entries.append((effective_height, public_key))
        return True

    def set_voting(self, name: str, effective_height: int, voting: bool) -> bool:
        """``name`` votes (or stops voting) from ``effective_height``; False if already known.

        Refused (ValueError) for a stranger, a change not after the member's last
        one, a change to what it already is, and one that would leave no voter.
        """
        if name not in self._voting:
            raise ValueError(f"voting change for {name!r}, who is not a member")
        changes = self._voting[name]
        if (effective_height, voting) in changes:
            return False
        if effective_height < 1 or effective_height <= changes[-1][0] or voting == changes[-1][1]:
            raise ValueError(
                f"voting change for {name} at {effective_height} is not after its last one, "
                f"or does not change it ({'voter' if voting else 'observer'} already)"
            )
        changes.append((effective_height, voting))
        if not voting and not self._voters(effective_height):
            changes.pop()
            raise ValueError(f"demoting {name} at {effective_height} would leave no voting member")
        return True

    def is_voter(self, name: str, height: int) -> bool:
        """Whether ``name`` votes at ``height`` (KeysNotYetKnown above the horizon, False for strangers)."""
        self._require_known(height, "members")
        return name in self._voting and self._votes(name, height)

    def voters_at(self, height: int) -> list[str]:
        """The names of the voting members at ``height``, in member order."""
        self._require_known(height, "members")
        return self._voters(height)

    def _votes(self, name: str, height: int) -> bool:
        changes = self._voting[name]
        return changes[bisect_right(changes, height, key=lambda change: change[0]) - 1][1]

    def _voters(self, height: int) -> list[str]:
        return [name for name in self.names if self._votes(name, height)]

    def _require_known(self, height: int, what: str) -> None:
        if not self.knows(height):
            raise KeysNotYetKnown(f"{what} at height {height} are not known yet (known up to {self.horizon})")

    def voting_changes(self) -> list[tuple[str, int, bool]]:
        """Every scheduled change of who votes (not the genesis roles), by member then height."""
        return [(name, h, voting) for name in self.names for h, voting in self._voting[name][1:]]

    def knows(self, height: int) -> bool:
        return self.horizon is None or height <= self.horizon

    def key_of(self, name: str, height: int) -> bytes:
        """``name``'s key valid at ``height`` (KeysNotYetKnown above the horizon, KeyError for strangers)."""
        self._require_known(height, "keys")
        entries = self._entries[name]
        return entries[bisect_right(entries, height, key=lambda entry: entry[0]) - 1][1]

    def members_at(self, height: int) -> list[tuple[str, bytes]]:
        """(name, key) of the voting members at ``height``, in member order, with the keys valid there."""
        return [(name, self.key_of(name, height)) for name in self.voters_at(height)]

    def keys_of(self, name: str) -> list[bytes]:
        """Every key ``name`` has had or will have, oldest first."""
        return [key for _, key in self._entries.get(name, [])]

    def rotations(self) -> list[tuple[str, int, bytes]]:
        """Every scheduled rotation (not the genesis keys), by member then height."""
        return [(name, h, key) for name in self.names for h, key in self._entries[name][1:]]


def members_at(members: Sequence[tuple[str, bytes]] | KeySchedule, height: int) -> list[tuple[str, bytes]]:
    """The member list valid at ``height``: a schedule resolved there, or a fixed list as is."""
    if isinstance(members, KeySchedule):
        return members.members_at(height)
    return list(members)


def signing_height(message: Any) -> int:
    """The height whose key signs ``message`` (see the table in this module's docstring)."""
    kind = message.KIND
    if kind == "viewchange":
        return message.committed_height + 1
    if kind == "newview":
        return max((vc.committed_height for vc in message.view_changes), default=0) + 1
    if kind == "cert":
        return message.certificate.height
    return message.height
