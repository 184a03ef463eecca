"""The replica's timers (paper 4.4 and 4.5.2), split from replica.py for size.

``TimerSteps`` is a mixin: ``_on_tick`` runs inside ``Replica.step`` on every
``Tick`` and uses the replica's state directly.

The view-change timer runs while there is work (transactions pending here, or
a pre-prepared block above our height) and nothing commits. On the primary it
runs ``PRIMARY_TIMEOUTS`` timeouts, not one. Whether a slow round deposes an
honest primary is the backups' call: they move on after one timeout and it
follows them (f + 1 VIEW-CHANGEs, paper 4.5.2). With one timeout of its own, a
primary whose round under a burst outlasted it left its view just before the
round committed, and the backups, without a primary, followed a timeout later
(measured: 10 nodes on 2 cores, a 4,000-tx burst at start, a view change in
every run). It keeps a timer at all for a view only it believes in: restarted
from a WAL written before the others moved on, it proposes to no one, and
leaving is how it finds them again. It restarts when
a block commits, and once more when a valid PRE-PREPARE for the next height
arrives (``_on_round_progress``): a primary that is proposing is given a full
timeout for the round, so a slow but honest round on a loaded machine does
not depose it, which costs a view change every time (measured: 7 nodes on 2
cores changed view on nearly every block). A primary can claim that second
timeout once per height of its view, so a faulty one delays a view change by at most one
extra timeout; the per-view doubling still applies after each failed view.

Every timer is given back time in which this node could not listen: a
tick that comes late says so (``Tick.stalled_ms``), up to one timeout per
run of each timer (``_credit_stall``).

That timer only asks whether anything commits, so a primary that commits
some transactions and leaves others out forever (a censoring primary, or one
that never received them) would never be deposed. The request timer (paper
4.5.2: a backup's timer runs for a request it holds) closes that gap. On a
backup it watches the request the app says an honest primary orders first
(``BlockApp.oldest_request``). After half a timeout plus the app's estimate
of the backlog that may go before it (or half a timeout if nothing commits
and nothing is proposed: before the no-progress timer fires on a primary
that heard of nothing), the backup relays it to the primary
(``RelayRequest``). If it is still not ordered after ``REQUEST_TIMEOUTS``
timeouts plus twice that backlog estimate, the backup asks for a view
change. The backlog term keeps a long but moving queue (a loaded network)
from deposing an honest primary. Each scan may raise it (never lower it)
while the request waits: the pool may fill after the request came here, and
an honest primary may have received any of those txs before it. It is capped at
``REQUEST_MAX_BACKLOG_TIMEOUTS`` timeouts, so a primary that slows the
measured rate down cannot stretch the deadline without end. The watch
restarts when the request commits or the view changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lendchain.consensus import messages as m
from lendchain.consensus.events import RelayRequest

MAX_TIMEOUT_DOUBLINGS = 4
PRIMARY_TIMEOUTS = 2  # the primary's no-progress timer, in timeouts (a backup's is one)
REQUEST_TIMEOUTS = 4  # view-change timeouts a backup gives the primary for its oldest request
REQUEST_SCAN_MS = 250  # how often a backup asks the app which request is oldest
# The backlog estimate counts for at most this many timeouts: it comes from the commit rate
# this node measured, which a primary that commits tiny blocks slowly would drive to nothing.
REQUEST_MAX_BACKLOG_TIMEOUTS = 15


@dataclass
class RequestWatch:
    """The request a backup's request timer runs for, in one view."""

    request: bytes
    view: int
    height: int  # the committed height when the watch began
    since_ms: int
    relay_at_ms: int
    deadline_ms: int
    backlog_ms: int = 0  # the largest backlog estimate (capped) seen while it waited
    relayed: bool = False
    stall_credit_ms: int = 0  # given back for this node's own stalls (``_credit_stall``)

    def allow_backlog(self, backlog_ms: int) -> None:
        """The backlog estimate grew while the request waited: move the relay and the deadline with it.

        The pool filled after the watch began (measured: 10 nodes on 2 cores, each backup
        watched its first tx while the start-up burst of 4,000 was still arriving, then
        relayed 2,000 txs the primary held already). ``backlog_ms`` is capped by the caller,
        so the deadline still comes at most ``REQUEST_MAX_BACKLOG_TIMEOUTS`` timeouts
        (twice) after it would without any backlog.
        """
        extra = backlog_ms - self.backlog_ms
        if extra > 0:
            self.backlog_ms = backlog_ms
            self.relay_at_ms += extra
            self.deadline_ms += 2 * extra

    def due(self, now_ms: int, height: int, proposing: bool, idle_wait_ms: int) -> bool:
        """A relay or the view change is due (``relay_due``, or the deadline has passed)."""
        return now_ms >= self.deadline_ms or self.relay_due(now_ms, height, proposing, idle_wait_ms)

    def relay_due(self, now_ms: int, height: int, proposing: bool, idle_wait_ms: int) -> bool:
        """Relay once the backlog had time to move, or after ``idle_wait_ms`` of an idle primary.

        ``height`` is the committed height now; ``proposing`` whether a
        PRE-PREPARE for the next height is here (a slow round is not idle).
        """
        if self.relayed:
            return False
        idle = height == self.height and not proposing
        return now_ms >= self.relay_at_ms or (idle and now_ms - self.since_ms >= idle_wait_ms)


class TimerSteps:
    def _on_round_progress(self: Any, height: int) -> None:
        """A valid PRE-PREPARE for ``height`` (the next one) arrived: restart the view-change timer."""
        if height == self._committed_height + 1 and self._work_since is not None:
            if self._round_extended < (self._view, height):
                self._round_extended = (self._view, height)
                self._work_since = self._now

    def _heard_round(self: Any, signer: str, height: int) -> None:
        """A new PRE-PREPARE or vote from another member for the height in flight: the round moves.

        Retransmission waits a quarter timeout from the last commit, the last
        retransmission or this, whichever came last, so a slow round that is still
        being heard from is not sent again. A round of ten nodes on two cores took
        ~1 s against that quarter timeout's 0.5 s, and every round re-sent every
        vote, the primary its whole block, to every member. A member moves a height's
        round at most twice in a view (votes count once per kind and signer; the
        primary's PRE-PREPARE stands for its PREPARE), so a faulty one cannot hold
        retransmission off for long.
        """
        if height == self._committed_height + 1 and signer != self._me:
            self._round_heard = self._now

    def _credit_stall(self: Any, stalled_ms: int) -> None:
        """Give the running timers back ``stalled_ms`` in which this node could not listen.

        A tick that comes late means this node's own event loop was busy (or
        its process had no CPU): a PRE-PREPARE may be waiting unread, so that
        time says nothing about the primary. Measured: 10 nodes on 2 cores,
        ticks 150-900 ms late under the start-up burst, a backup leaving view
        0 alone before it read block 1's PRE-PREPARE in about one run in
        three. Each timer gets back at most the part of the stall it has run
        through, at most one timeout per run of the timer (the no-progress
        and view-change timers: per round, that is view, view change or not
        and committed height; the request timer: per watched request), so a
        node kept busy on purpose delays a view change by one timeout at most.
        """
        now, timeout = self._now, self._timeout()
        round_key = (self._view, self._in_vc, self._committed_height)
        given = self._stall_credit[1] if self._stall_credit[0] == round_key else 0
        running = [self._work_since] if self._work_since is not None else []
        if self._in_vc:
            running.append(self._vc_started)
        credit = min(stalled_ms, timeout - given, max((now - start for start in running), default=0))
        if credit > 0:
            self._stall_credit = (round_key, given + credit)
            if self._work_since is not None:
                self._work_since += min(credit, now - self._work_since)
            if self._in_vc:
                self._vc_started += min(credit, now - self._vc_started)
        # The request timer runs across rounds while a primary commits others' txs, so it keeps
        # its own account: one timeout in all, or a primary censoring a tx would gain one a block.
        watch = self._request_watch
        if watch is not None:
            back = min(stalled_ms, timeout - watch.stall_credit_ms, now - watch.since_ms)
            if back > 0:
                watch.stall_credit_ms += back
                watch.since_ms += back
                watch.relay_at_ms += back
                watch.deadline_ms += back

    def _timeout(self: Any) -> int:
        return self._params.view_change_timeout_ms << min(self._attempts, MAX_TIMEOUT_DOUBLINGS)

    def _on_tick(self: Any) -> None:
        now = self._now
        if self._catching_up() and now - self._fetch_sent_ms >= self._timeout():
            # A fetch left unanswered (its peer lacked the blocks, or was cut off) is asked again,
            # by voters and non-voters alike: nothing else may ask. A replica one block behind
            # holds that block's certificate, so announcements of it are not news, and a chain
            # that stalls for this replica's vote sends none of anything else.
            peers = [name for name in self._era(self._committed_height + 1).names if name != self._me]
            self._fetch(self._committed_height + 1, self._fetch_target, peers)
        if not self._voting():
            return  # no timers for a member that does not vote at the height in flight
        if self._in_vc:
            # Paper 4.5.2: the timer for the next view runs only once a quorum is in this view change,
            # so a replica alone in a higher view waits for the others instead of racing further.
            joined = sum(1 for vc in self._latest_vc.values() if vc.new_view >= self._view)
            if joined < self._era(self._committed_height + 1).q:
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
            elif now - self._work_since >= self._timeout() * (
                PRIMARY_TIMEOUTS if self.primary == self._me else 1
            ):
                self.view_change_cause = "pending work made no progress before the view-change timer fired"
                self._start_view_change(self._view + 1)
            if not self._in_vc and not self._catching_up() and self.primary != self._me:
                self._run_request_timer()
            else:
                self._request_watch = None
        resend = max(self._params.view_change_timeout_ms // 4, 1) << min(self._idle_resends, 3)
        if now - max(self._last_progress, self._last_resend, self._round_heard) >= resend:
            self._last_resend = now
            self._idle_resends += 1
            self._retransmit()

    def _run_request_timer(self: Any) -> None:
        now = self._now
        watch = self._request_watch
        # Relay to an idle primary before the no-progress timer (one timeout) would depose it.
        # Not sooner than half a timeout: on a loaded machine a primary building a big block
        # shows no PRE-PREPARE for ~0.5 s (a quarter timeout relayed 11 times per 200k run).
        half_timeout = self._timeout() // 2
        proposing = self._committed_height + 1 in self._preprepares
        due = watch is not None and watch.due(now, self._committed_height, proposing, half_timeout)
        # Ask the app again before acting, too: the request may have committed since the last scan.
        if due or now >= self._request_scan_at:
            self._request_scan_at = now + min(REQUEST_SCAN_MS, self._params.view_change_timeout_ms // 4)
            oldest = self._app.oldest_request()
            if oldest is None:
                self._request_watch = None
                return
            request, backlog_ms = oldest
            backlog_ms = min(max(backlog_ms, 0), REQUEST_MAX_BACKLOG_TIMEOUTS * self._timeout())
            if watch is None or watch.request != request or watch.view != self._view:
                relay_at = now + half_timeout + backlog_ms
                deadline = now + REQUEST_TIMEOUTS * self._timeout() + 2 * backlog_ms
                self._request_watch = RequestWatch(
                    request, self._view, self._committed_height, now, relay_at, deadline, backlog_ms
                )
                return
            watch.allow_backlog(backlog_ms)
            due = watch.due(now, self._committed_height, proposing, half_timeout)
        if not due:
            return
        if watch.relay_due(now, self._committed_height, proposing, half_timeout):
            watch.relayed = True
            self._emit(RelayRequest(self.primary, watch.request))
        if now >= watch.deadline_ms:
            self._request_watch = None
            self.counters["request_timeouts"] += 1
            self.view_change_cause = (
                f"request {watch.request.hex()[:16]} could be ordered for {now - watch.since_ms} ms "
                f"and primary {self.primary} left it out"
            )
            self._start_view_change(self._view + 1)

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
        checkpoint = self._my_checkpoint
        if checkpoint is not None and (
            checkpoint.height > self._stable.height
            # A member that missed the CHECKPOINTs of our stable height keeps its window below the
            # next height, and when its vote is needed for a quorum (f members silent), nothing
            # else moves it: the chain stalls. While work waits, ours goes again for it.
            or (checkpoint.height == self._stable.height and self._work_since is not None)
        ):
            self._broadcast(checkpoint)
