"""The replica's timers (paper 4.4 and 4.5.2), split from replica.py for size.

``TimerSteps`` is a mixin: ``_on_tick`` runs inside ``Replica.step`` on every
``Tick`` and uses the replica's state directly.

The view-change timer runs while there is work (transactions pending here, or
a pre-prepared block above our height) and nothing commits. It restarts when
a block commits, and once more when a valid PRE-PREPARE for the next height
arrives (``_on_round_progress``): a primary that is proposing is given a full
timeout for the round, so a slow but honest round on a loaded machine does
not depose it, which costs a view change every time (measured: 7 nodes on 2
cores changed view on nearly every block). A primary can claim that second
timeout once per height of its view, so a faulty one delays a view change by at most one
extra timeout; the per-view doubling still applies after each failed view.
"""

from __future__ import annotations

from typing import Any

from lendchain.consensus import messages as m

MAX_TIMEOUT_DOUBLINGS = 4


class TimerSteps:
    def _on_round_progress(self: Any, height: int) -> None:
        """A valid PRE-PREPARE for ``height`` (the next one) arrived: restart the view-change timer."""
        if height == self._committed_height + 1 and self._work_since is not None:
            if self._round_extended < (self._view, height):
                self._round_extended = (self._view, height)
                self._work_since = self._now

    def _timeout(self: Any) -> int:
        return self._params.view_change_timeout_ms << min(self._attempts, MAX_TIMEOUT_DOUBLINGS)

    def _on_tick(self: Any) -> None:
        now = self._now
        if self._in_vc:
            # Paper 4.5.2: the timer for the next view runs only once a quorum is in this view change,
            # so a replica alone in a higher view waits for the others instead of racing further.
            joined = sum(1 for vc in self._latest_vc.values() if vc.new_view >= self._view)
            if joined < self._q:
                self._vc_started = now
            elif now - self._vc_started >= self._timeout():
                self._start_view_change(self._view + 1)
        else:
            self._maybe_propose()
            waiting = self._app.has_pending_work() or any(
                h > self._committed_height for h in self._preprepares
            )
            if not waiting or self._catching_up():
                self._work_since = None
            elif self._work_since is None:
                self._work_since = now
            elif now - self._work_since >= self._timeout():
                self._start_view_change(self._view + 1)
        resend = max(self._params.view_change_timeout_ms // 4, 1) << min(self._idle_resends, 3)
        if now - max(self._last_progress, self._last_resend) >= resend:
            self._last_resend = now
            self._idle_resends += 1
            self._retransmit()

    def _retransmit(self: Any) -> None:
        """Re-send what a peer that lost our messages needs to make progress."""
        if self._in_vc:
            self._send_view_change()
        else:
            new_view = self._new_view_sent.get(self._view)
            if new_view is not None and self._committed_height <= self._floor:
                self._broadcast(new_view)
            height = self._committed_height + 1
            pp = self._preprepares.get(height)
            if pp is not None and pp.signer == self._me:
                self._broadcast(pp)
            for kind, cls in ((b"p", m.Prepare), (b"c", m.Commit)):
                digest = self._my_votes.get((kind, self._view, height))
                if digest is not None:
                    vote = self._sign(cls, view=self._view, height=height, digest=digest)
                    self._broadcast(vote)
                    self._add_vote(vote)
        if self._head_cert is not None:
            self._broadcast(self._sign(m.CertAnnounce, certificate=self._head_cert))
        if self._my_checkpoint is not None and self._my_checkpoint.height > self._stable.height:
            self._broadcast(self._my_checkpoint)
