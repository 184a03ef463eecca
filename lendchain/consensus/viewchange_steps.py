"""The replica's view-change transitions (paper 4.4), split from replica.py for size.

``ViewChangeSteps`` is a mixin: its methods run inside ``Replica.step`` and use
the replica's state directly. The rules themselves (what a VIEW-CHANGE must
prove, what NEW-VIEW must re-propose) are pure functions in viewchange.py.
"""

from __future__ import annotations

from typing import Any

from lendchain.consensus import messages as m
from lendchain.consensus import wal
from lendchain.consensus.certificate import CertificateError
from lendchain.consensus.events import Broadcast, Send
from lendchain.consensus.keys import signing_height
from lendchain.consensus.viewchange import check_view_change, decide


class ViewChangeSteps:
    _view: int
    _in_vc: bool

    def _view_record(self: Any) -> tuple[bytes, bytes]:
        return wal.view_record(self._view, self._in_vc, self._floor, self._pinned)

    def _start_view_change(self: Any, new_view: int) -> None:
        """Enter ``new_view``'s view change: stop voting in the old view and send VIEW-CHANGE."""
        if new_view < self._view or (new_view == self._view and self._in_vc):
            return
        self.counters["view_changes"] += 1
        self._attempts += 1
        self._view, self._in_vc, self._vc_started = new_view, True, self._now
        self._reset_view_state(floor=0)
        self._persist(self._view_record())
        self._send_view_change()
        self._try_new_view()

    def _send_view_change(self: Any) -> None:
        payload = self._my_vc.get(self._view)
        if payload is None:
            if self._head_cert is None and self._committed_height > 0:
                return  # we cannot prove our height yet; a peer's certificate announcement will tell us
            height = self._committed_height + 1
            prepared = self._prepared.get(height)
            block = b"" if prepared is None else self._blocks.get(height, {}).get(prepared.digest, b"")
            vc = self._sign(
                m.ViewChange,
                new_view=self._view,
                committed_height=self._committed_height,
                commit_certificate=self._head_cert,
                prepared=prepared,
                block=block,
            )
            payload = vc.encode()
            stale = [(wal.view_change_key(v), b"") for v in self._my_vc if v < self._view]
            self._my_vc = {self._view: payload}
            self._persist((wal.view_change_key(self._view), payload), *stale)
            self._add_view_change(vc)
        self._emit(Broadcast(payload))

    def _add_view_change(self: Any, vc: m.ViewChange) -> None:
        known = self._latest_vc.get(vc.signer)
        if known is not None and known.new_view > vc.new_view:
            return
        if known is not None and known.new_view == vc.new_view:
            if known.body() != vc.body():
                self._fault(vc.signer, "equivocation", f"two view changes for view {vc.new_view}")
            return
        self._latest_vc[vc.signer] = vc

    def _on_view_change(self: Any, vc: m.ViewChange) -> None:
        if vc.new_view == 0:
            self._fault(vc.signer, "bad-view-change", "view change to view 0")
            return
        if vc.new_view < self._view or (vc.new_view == self._view and not self._in_vc):
            new_view = self._new_view_sent.get(self._view)
            if new_view is not None:  # the sender missed our NEW-VIEW
                self._emit(Send(vc.signer, new_view.encode()))
            return
        try:
            check_view_change(vc, self._chain_id, self._schedule, self._app.digest if vc.block else None)
        except CertificateError as e:
            self._fault(vc.signer, "bad-view-change", str(e))
            return
        self._claim(vc.signer, vc.committed_height)
        self._add_view_change(vc)
        # Paper 4.5.2: f+1 VIEW-CHANGEs for higher views prove an honest replica gave up on ours.
        era = self._era(self._committed_height + 1)
        views = sorted(
            (vc.new_view for name, vc in self._latest_vc.items() if name != self._me and name in era.names),
            reverse=True,
        )
        if len(views) > era.f and views[era.f] > self._view and self._voting():
            self._start_view_change(views[era.f])
        self._try_new_view()

    def _try_new_view(self: Any) -> None:
        view = self._view
        if not self._in_vc or view in self._new_view_sent:
            return
        candidates = [vc for vc in self._latest_vc.values() if vc.new_view == view]
        if not candidates:
            return
        # NEW-VIEW is judged at the height it re-proposes at (the highest proven commit + 1),
        # by the members that vote there: its primary, its quorum, its VIEW-CHANGEs' signers.
        top = max(vc.committed_height for vc in candidates) + 1
        if not self._schedule.knows(top):
            return
        era = self._era(top)
        candidates = [vc for vc in candidates if vc.signer in era.names]
        if era.primary(view) != self._me or len(candidates) < era.q:
            return
        order = {name: i for i, name in enumerate(era.names)}
        # Ours first, then one that proves the highest commit, so the choice re-proposes at ``top``.
        candidates.sort(
            key=lambda vc: (vc.signer != self._me, vc.committed_height + 1 != top, order[vc.signer])
        )
        chosen = candidates[: era.q]
        decision = decide(chosen)
        height, digest, signature, block = 0, b"", b"", b""
        if decision.pinned is not None:
            height, digest = decision.floor + 1, decision.pinned.digest
            found = [
                vc.block for vc in candidates if vc.prepared and vc.prepared.digest == digest and vc.block
            ]
            if not found:
                return
            block = found[0]
            voted = self._my_votes.get((b"pp", view, height))
            if voted is not None and voted != digest:
                return
            if voted is None:
                self._record_vote(b"pp", height, digest, block)
            signature = self._sign(m.PrePrepare, view=view, height=height, digest=digest, block=b"").signature
        stripped = tuple(
            m.ViewChange(
                vc.signer,
                vc.signature,
                vc.new_view,
                vc.committed_height,
                vc.commit_certificate,
                vc.prepared,
                b"",
            )
            for vc in chosen
        )
        new_view = self._sign(
            m.NewView,
            view=view,
            view_changes=stripped,
            pinned_height=height,
            pinned_digest=digest,
            pinned_signature=signature,
            block=block,
        )
        stale = [(wal.new_view_key(v), b"") for v in self._new_view_sent]
        self._new_view_sent = {view: new_view}
        self._persist((wal.new_view_key(view), new_view.encode()), *stale)
        self._enter_view(view, decision.floor, new_view.pinned_preprepare(), chosen, announce=new_view)

    def _on_new_view(self: Any, new_view: m.NewView) -> None:
        # Judged at its signing height (the highest commit its VIEW-CHANGEs prove + 1; within our horizon).
        if new_view.view == 0 or new_view.signer != self._primary_of(new_view.view, signing_height(new_view)):
            self._fault(new_view.signer, "wrong-primary", f"NEW-VIEW for view {new_view.view}")
            return
        if new_view.view < self._view or (new_view.view == self._view and not self._in_vc):
            return
        try:
            decision = self._check_new_view(new_view)
        except CertificateError as e:
            self._fault(new_view.signer, "bad-new-view", str(e))
            return
        if new_view.view > self._view:
            self.counters["view_changes"] += 1
        self._enter_view(new_view.view, decision.floor, new_view.pinned_preprepare(), new_view.view_changes)

    def _check_new_view(self: Any, new_view: m.NewView) -> Any:
        """Paper 4.4: recompute NEW-VIEW's contents from its VIEW-CHANGEs; any difference is a fault."""
        signers: set[str] = set()
        era = self._era(signing_height(new_view))
        for vc in new_view.view_changes:
            if vc.signer not in era.names or vc.signer in signers:
                raise CertificateError(
                    f"view change by {vc.signer!r} is repeated, or from no voting member at the NEW-VIEW's height"
                )
            if vc.new_view != new_view.view:
                raise CertificateError(f"view change by {vc.signer} is for view {vc.new_view}")
            # Below the NEW-VIEW's own signing height, which _on_receive found within our horizon.
            key = self._schedule.key_of(vc.signer, signing_height(vc))
            if not self._verify_fn(key, vc.signature, m.tag(vc.KIND), self._chain_id, vc.body()):
                raise CertificateError(f"view change by {vc.signer} has a bad signature")
            check_view_change(vc, self._chain_id, self._schedule, None)
            signers.add(vc.signer)
        if len(signers) < era.q:
            raise CertificateError(f"NEW-VIEW carries {len(signers)} view changes, a quorum is {era.q}")
        decision = decide(new_view.view_changes)
        if decision.pinned is None:
            if new_view.pinned_height or new_view.block:
                raise CertificateError("NEW-VIEW re-proposes a block no prepared certificate asks for")
            return decision
        if new_view.pinned_height != decision.floor + 1 or new_view.pinned_digest != decision.pinned.digest:
            raise CertificateError("NEW-VIEW does not re-propose the highest prepared block")
        body = [new_view.view, new_view.pinned_height, new_view.pinned_digest]
        key = self._schedule.key_of(new_view.signer, new_view.pinned_height)
        if not self._verify_fn(key, new_view.pinned_signature, m.tag("preprepare"), self._chain_id, body):
            raise CertificateError("NEW-VIEW pre-prepare signature does not verify")
        try:
            block_digest = self._app.digest(new_view.block)
        except Exception as e:  # the app's decoder
            raise CertificateError(f"NEW-VIEW block does not decode: {e}") from None
        if block_digest != new_view.pinned_digest:
            raise CertificateError("NEW-VIEW block does not match the re-proposed digest")
        return decision

    def _enter_view(
        self: Any,
        view: int,
        floor: int,
        pinned: m.PrePrepare | None,
        view_changes: Any,
        announce: m.NewView | None = None,
    ) -> None:
        future = self._future if view == self._view else {}
        self._view, self._in_vc = view, False
        self._reset_view_state(floor)
        self._work_since = None
        self._last_progress, self._idle_resends = self._now, 0
        if pinned is not None:
            self._pinned = (pinned.height, pinned.digest)
            self._preprepares[pinned.height] = pinned
            self._blocks.setdefault(pinned.height, {})[pinned.digest] = pinned.block
        self._persist(self._view_record())
        if announce is not None:
            self._emit(Broadcast(announce.encode()))
        for vc in view_changes:
            self._claim(vc.signer, vc.committed_height)
        if self._committed_height < floor:
            peers = [
                vc.signer for vc in view_changes if vc.committed_height >= floor and vc.signer != self._me
            ]
            self._fetch(self._committed_height + 1, floor, peers)
        for queued in future.values():
            for message in queued:
                self._dispatch(message)
        self._advance()
