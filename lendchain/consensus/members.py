"""Who votes at a height, as a mixin of ``Replica`` (split from replica.py for size).

The ledger may promote an observer to vote, or demote a voting member, from an
effective height on (``keys.KeySchedule.set_voting``, learned through
``KeysLearned``). Each height's voting members are an ``Era``: n, f, the quorum
and the primary of every view are taken from the era of the height a message,
certificate or NEW-VIEW is for. One height is in flight at a time, so the
paper's quorum-intersection argument holds height by height.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from lendchain.consensus.events import KeysLearned
from lendchain.consensus.quorum import faulty, quorum


class Era(NamedTuple):
    """The voting members at a height, and the numbers PBFT derives from them."""

    names: tuple[str, ...]  # in member order: the primary of view v is names[v mod n]
    n: int
    f: int
    q: int

    @classmethod
    def of(cls, names: list[str]) -> Era:
        return cls(tuple(names), len(names), faulty(len(names)), quorum(len(names)))

    def primary(self, view: int) -> str:
        return self.names[view % self.n]


class MemberSteps:
    """The ``Replica`` mixin that answers who votes where, and follows the changes."""

    def _primary_of(self: Any, view: int, height: int | None = None) -> str:
        """The primary of ``view`` at ``height`` (default: the height in flight, committed + 1)."""
        return self._era(self._committed_height + 1 if height is None else height).primary(view)

    def _era(self: Any, height: int) -> Era:
        """Who votes at ``height``, and n, f and the quorum among them.

        Above the schedule's horizon nothing is judged (``_on_receive``), so there
        the era is only used to count claims and pick peers to fetch from: the
        last known one serves.
        """
        if not self._schedule.knows(height):
            height = self._schedule.horizon
        cached = self._era_cache
        if cached is not None and cached[0] == height:
            return cached[1]
        era = Era.of(self._schedule.voters_at(height))
        self._era_cache = (height, era)
        return era

    def _voting(self: Any) -> bool:
        """Whether we vote at the height in flight (a member demoted there, or not yet promoted, does not)."""
        return self._me in self._era(self._committed_height + 1).names

    def _join_view(self: Any, view: int) -> None:
        """Start in ``view``, in which the head block was committed (a replica with an empty WAL).

        Safe without that view's NEW-VIEW: a block committed at h in view v means the
        quorum entered v with a floor below h (normal-case rounds in v start above the
        floor), so what the NEW-VIEW pinned is at or below h, committed already. A replica
        with an empty WAL has no vote of its own to carry into a view change either.
        """
        self._view = view
        self._persist(self._view_record())

    def _follow_certified_view(self: Any) -> None:
        """Join the view our head block was committed in, when a quorum got there without us.

        A replica that was down, cut off or not yet voting while the others changed
        view learns it from the certificates of the blocks it fetches. By the argument
        of ``_join_view`` a commit in view v at our head height means the quorum entered
        v and its NEW-VIEW settled nothing above our head, so we enter v with our head as
        the floor instead of waiting, unable to vote, for the next view change. A vote
        we cast in an older view is never needed again: that view's NEW-VIEW was made
        without it. Not when we are v's primary at the next height: before a restore
        lost our WAL we may have proposed there, and must not propose anew.
        """
        certificate = self._head_cert
        if certificate is None or certificate.view < self._view:
            return
        if certificate.view == self._view and not self._in_vc:
            return
        if self._primary_of(certificate.view, self._committed_height + 1) == self._me:
            return
        self.counters["views_followed"] += 1
        self._enter_view(certificate.view, self._committed_height, None, ())

    def _on_keys_learned(self: Any, learned: KeysLearned) -> None:
        for name, public_key in learned.admitted:  # first: a rotation or promotion may name them
            self._schedule.admit(name, public_key)
        for name, effective_height, public_key in learned.rotations:
            self._schedule.add(name, effective_height, public_key)
        for name, effective_height, voting in learned.voting:
            if self._schedule.set_voting(name, effective_height, voting):
                self._era_cache = None
        if self._schedule.horizon is None or learned.known_through > self._schedule.horizon:
            self._schedule.horizon = learned.known_through
