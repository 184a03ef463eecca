"""One PBFT replica as a pure state machine: ``Replica.step(event) -> list[action]``.

Rules of this file (after h11's ``_state.py``):

- Everything that changes the replica's state happens inside ``step``; it
  reads no clock (time comes in ``Tick``), no socket, no disk, no randomness.
- Input from peers is untrusted bytes: decode strictly, check the signer, the
  signature and the sender's role, and turn anything wrong into a ``Fault``.
  ``step`` never raises on peer input.
- A vote is persisted before it is sent: ``_persist`` queues WAL records and
  ``_emit`` flushes them as one ``Persist`` ahead of the next send/deliver.

Theory of operation (Castro & Liskov, block-based, one height in flight):

======================  =======================================================
normal case             primary of view v (members[v mod n]) PRE-PREPAREs block
                        h = committed + 1; a backup that validated it PREPAREs;
                        prepared = pre-prepare + 2f PREPAREs -> COMMIT;
                        2f+1 COMMITs = commit certificate -> Deliver.
checkpoints             after executing h with h % K == 0, CHECKPOINT(h, root);
                        2f+1 matching = stable; watermarks (stable, stable+W].
view change             no commit within the timeout while work is pending ->
                        VIEW-CHANGE(v+1); join on f+1 VIEW-CHANGEs for higher
                        views; new primary sends NEW-VIEW (see viewchange.py);
                        timeouts double per failed view, reset on commit;
                        a valid PRE-PREPARE restarts the timer once per
                        height; a backup's request timer deposes a primary
                        that leaves its oldest request out (timers.py).
catch-up                f+1 members showing a higher height, a stable checkpoint
                        or a commit certificate above ours -> FetchBlocks; each
                        SyncedBlock is checked against its certificate.
retransmission          when nothing commits for a while, re-send our latest
                        messages and our head certificate (the network may drop).
======================  =======================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from lendchain import codec
from lendchain.consensus import messages as m
from lendchain.consensus import wal as walkeys
from lendchain.consensus.app import AppHalted, BlockApp
from lendchain.consensus.catchup import CatchUpSteps
from lendchain.consensus.certificate import (
    CommitCertificate,
    PreparedCertificate,
)
from lendchain.consensus.events import (
    Action,
    Broadcast,
    Deliver,
    Executed,
    Fault,
    KeysLearned,
    Persist,
    Receive,
    Send,
    SyncedBlock,
    Tick,
)
from lendchain.consensus.keys import KeySchedule, signing_height
from lendchain.consensus.members import Era, MemberSteps
from lendchain.consensus.timers import RequestWatch, TimerSteps
from lendchain.consensus.viewchange_steps import ViewChangeSteps
from lendchain.crypto import verify as crypto_verify

MESSAGE_OVERHEAD = 1 << 20
FUTURE_VIEW_BUFFER = 16  # messages per member kept while waiting for a NEW-VIEW


class _MissingKey(Exception):
    """We would sign, but do not hold our key valid at that height, or do not vote there (``Replica._sign``)."""


class Replica(ViewChangeSteps, CatchUpSteps, TimerSteps, MemberSteps):
    def __init__(
        self,
        chain_id: str,
        members: list[tuple[str, bytes]] | KeySchedule,
        me: str,
        signing_key: Any,
        app: BlockApp,
        params: Any,
        committed_height: int,
        committed_digest: bytes,
        wal: Iterable[tuple[bytes, bytes]] = (),
        *,
        verify: Callable[[bytes, bytes, str, str, Any], bool] = crypto_verify,
        other_signing_keys: Iterable[Any] = (),
        head_view: int = 0,
    ) -> None:
        """``head_view``: the view of the head block's commit certificate. A replica whose WAL is
        empty (a member just promoted to vote, or a store without its WAL) starts in that view:
        a quorum was in it, and its NEW-VIEW settled nothing above the head (see ``_join_view``)."""
        self._schedule = members if isinstance(members, KeySchedule) else KeySchedule(members)
        names = self._schedule.names
        if me not in self._schedule:
            raise ValueError(f"{me!r} is not a member; members are {names}")
        # Every key of ours we hold, by public key: we sign with the one valid at the height.
        self._signing_keys = {k.public_key: k for k in (signing_key, *other_signing_keys)}
        if signing_key.public_key not in self._schedule.keys_of(me):
            raise ValueError(f"the signing key is not one of {me!r}'s keys in the member list")
        if committed_height < 0 or len(committed_digest) != 32:
            raise ValueError("committed_height must be >= 0 and committed_digest 32 bytes")
        self._chain_id, self._me = chain_id, me
        self._era_cache: tuple[int, Era] | None = None  # (height, its era): nearly always committed + 1
        self._missing_key_reported: set[bytes] = set()
        self._app, self._params = app, params
        self._verify_fn = verify
        self._max_message = params.max_block_bytes + MESSAGE_OVERHEAD
        self._committed_height, self._committed_digest = committed_height, committed_digest
        self._executed_height = committed_height
        self._now = 0
        self.counters = {
            key: 0
            for key in (
                "messages_in",
                "messages_out",
                "faults",
                "view_changes",
                "blocks",
                "fetches",
                "ignored",
                "request_timeouts",
                "views_followed",
            )
        }
        self._out: list[Action] = []
        self._pending_persist: list[tuple[bytes, bytes]] = []
        wal = list(wal)
        restored = walkeys.load(wal)
        self._view, self._in_vc = restored.view, restored.in_view_change
        self._my_votes = restored.votes
        self._blocks = restored.blocks
        self._prepared = restored.prepared
        self._my_vc = restored.view_changes
        self._stable = restored.stable
        self._wal_keys = restored.keys_by_height
        self._certs = restored.certificates  # commit certificates we hold: head, and head + 1 if known
        self._head_cert = self._certs.get(committed_height)
        if self._head_cert is not None and self._head_cert.digest != committed_digest:
            raise walkeys.WalError(
                f"the WAL's certificate for height {committed_height} names another block than the store"
            )
        self._reset_view_state(floor=restored.floor)
        self._pinned = restored.pinned
        self._latest_vc: dict[str, m.ViewChange] = {}
        # The NEW-VIEW we sent as primary, kept across a restart: a backup that missed it asks again.
        self._new_view_sent: dict[int, m.NewView] = {}
        for view, raw in restored.new_views.items():
            try:
                new_view = m.decode(raw, self._max_message)
            except m.MessageError as e:
                raise walkeys.WalError(f"the WAL's NEW-VIEW for view {view} is damaged ({e})") from None
            if not isinstance(new_view, m.NewView) or new_view.view != view:
                raise walkeys.WalError(f"the WAL's NEW-VIEW record for view {view} holds something else")
            self._new_view_sent[view] = new_view
        self._checkpoints: dict[tuple[int, bytes], dict[str, bytes]] = {}
        self._checkpoint_of: dict[tuple[str, int], bytes] = {}
        self._my_checkpoint: m.Checkpoint | None = self._own_checkpoint(restored.stable)
        self._roots: dict[int, bytes] = {}
        self._claims: dict[str, int] = {}
        self._fetch_target, self._fetch_sent_ms = committed_height, None
        self._attempts = 0
        self._work_since: int | None = None
        self._round_extended = (0, 0)  # the (view, height) whose PRE-PREPARE last restarted the timer
        self._stall_credit: tuple[tuple[int, bool, int], int] = ((0, False, 0), 0)  # (round, ms given)
        self._request_watch: RequestWatch | None = None  # the request timer (timers.py)
        self._request_scan_at = 0
        self.view_change_cause = ""  # why this replica's own timer last started a view change
        self._vc_started = 0
        self._last_progress = 0
        self._last_resend = 0
        self._idle_resends = 0  # retransmissions since the last progress: each one waits twice as long
        self._round_heard = 0  # when another member's message last moved the round in flight
        self._started = False
        if not wal and head_view > self._view:
            self._join_view(head_view)

    # -- read-only view ----------------------------------------------------------------

    @property
    def view(self) -> int:
        return self._view

    @property
    def primary(self) -> str:
        return self._primary_of(self._view)

    @property
    def committed_height(self) -> int:
        return self._committed_height

    @property
    def stable_checkpoint(self) -> int:
        return self._stable.height

    @property
    def in_view_change(self) -> bool:
        return self._in_vc

    # -- step ----------------------------------------------------------------------------

    def step(self, event: object) -> list[Action]:
        self._out = []
        if isinstance(event, Tick):
            self._now = max(self._now, event.now_ms)
        if not self._started:
            self._started = True
            self._last_progress = self._last_resend = self._vc_started = self._now
            self._try_deliver()
        try:
            if isinstance(event, Tick):
                if event.stalled_ms > 0:
                    self._credit_stall(event.stalled_ms)
                self._on_tick()
            elif isinstance(event, Receive):
                self._on_receive(event.sender, event.payload)
            elif isinstance(event, Executed):
                self._on_executed(event)
            elif isinstance(event, SyncedBlock):
                self._on_synced(event)
            elif isinstance(event, KeysLearned):
                self._on_keys_learned(event)
            else:
                raise TypeError(f"Replica.step got {type(event).__name__}, not a consensus event")
        except _MissingKey:
            pass  # reported once in _sign; what was persisted so far still goes out below
        self._flush()
        out, self._out = self._out, []
        return out

    def _flush(self) -> None:
        if self._pending_persist:
            self._out.append(Persist(self._pending_persist))
            self._pending_persist = []

    def _persist(self, *entries: tuple[bytes, bytes]) -> None:
        self._pending_persist.extend(entries)

    def _emit(self, action: Action) -> None:
        if isinstance(action, Send | Broadcast | Deliver):
            self._flush()
        if isinstance(action, Send | Broadcast):
            self.counters["messages_out"] += 1
        self._out.append(action)

    def _fault(self, member: str, kind: str, detail: str) -> None:
        self.counters["faults"] += 1
        self._out.append(Fault(member, kind, detail))

    def _broadcast(self, message: m.Message) -> None:
        self._emit(Broadcast(message.encode()))

    def _sign(self, cls: type[m.Message], **fields: Any) -> Any:
        """Sign with our key valid at the message's height (``keys.signing_height``).

        Without that key (a rotation of ours the operator gave no key file for) we
        sign nothing: ``_MissingKey`` ends the step, once reported as a fault of ours.
        """
        height = signing_height(cls(self._me, b"", **fields))
        if self._schedule.knows(height) and not self._schedule.is_voter(self._me, height):
            raise _MissingKey  # not a voting member there: nothing to sign, and no fault
        public_key = self._schedule.key_of(self._me, height)
        key = self._signing_keys.get(public_key)
        if key is None:
            if public_key not in self._missing_key_reported:
                self._missing_key_reported.add(public_key)
                self._fault(self._me, "no-signing-key", f"no key file for our key {public_key.hex()[:16]}…")
            raise _MissingKey
        return m.sign(key, self._chain_id, cls, self._me, **fields)

    # -- receiving -----------------------------------------------------------------------

    def _on_receive(self, sender: str, payload: bytes) -> None:
        self.counters["messages_in"] += 1
        if sender not in self._schedule:
            self._fault(sender, "non-member", "a message from outside the member list")
            return
        try:
            message = m.decode(payload, self._max_message)
        except m.MessageError as e:
            self._fault(sender, "garbage", str(e))
            return
        if message.signer != sender:
            self._fault(sender, "impersonation", f"{sender} sent a message signed as {message.signer!r}")
            return
        height = signing_height(message)
        if not self._schedule.knows(height):
            # Beyond what our schedule is sure of: no judging, but the (transport-authenticated)
            # sender is evidently ahead, which is what catch-up needs to know.
            self.counters["ignored"] += 1
            self._claim(sender, height - 1)
            return
        if not self._schedule.is_voter(sender, height):
            # A member that does not vote at that height (an observer, or one demoted before it):
            # what it signs counts for nothing there. Not a fault: it may only lag behind the change.
            self.counters["ignored"] += 1
            return
        public_key = self._schedule.key_of(sender, height)
        if not self._verify_fn(
            public_key, message.signature, m.tag(message.KIND), self._chain_id, message.body()
        ):
            self._fault(
                sender, "bad-signature", f"{message.KIND} signature does not verify at height {height}"
            )
            return
        self._dispatch(message)

    def _dispatch(self, message: m.Message) -> None:
        if isinstance(message, m.PrePrepare | m.Prepare | m.Commit):
            self._claim(message.signer, message.height - 1)
            if message.view == self._view and self._in_vc:
                self._buffer_future(message)
                return
            if message.view != self._view:
                self.counters["ignored"] += 1
                return
            if isinstance(message, m.PrePrepare):
                self._on_preprepare(message)
            else:
                self._on_vote(message)
        elif isinstance(message, m.Checkpoint):
            self._on_checkpoint(message)
        elif isinstance(message, m.ViewChange):
            self._on_view_change(message)
        elif isinstance(message, m.NewView):
            self._on_new_view(message)
        elif isinstance(message, m.CertAnnounce):
            self._on_cert_announce(message)

    def _buffer_future(self, message: m.Message) -> None:
        queue = self._future.setdefault(message.signer, [])
        if len(queue) < FUTURE_VIEW_BUFFER:
            queue.append(message)

    def _in_window(self, height: int) -> bool:
        low = self._stable.height
        return low < height <= low + self._params.watermark_window and height > self._committed_height

    # -- normal case ---------------------------------------------------------------------

    def _reset_view_state(self, floor: int) -> None:
        self._floor = floor
        self._pinned: tuple[int, bytes] | None = None
        self._preprepares: dict[int, m.PrePrepare] = {}
        self._prepares: dict[tuple[int, bytes], dict[str, bytes]] = {}
        self._commits: dict[tuple[int, bytes], dict[str, bytes]] = {}
        self._vote_of: dict[tuple[str, str, int], bytes] = {}
        self._rejected: set[int] = set()
        self._future: dict[str, list[m.Message]] = {}

    def _on_preprepare(self, pp: m.PrePrepare) -> None:
        if pp.signer != self._primary_of(pp.view, pp.height):
            self._fault(pp.signer, "wrong-primary", f"pre-prepare in view {pp.view} by a backup")
            return
        if not self._in_window(pp.height):
            self.counters["ignored"] += 1
            return
        if pp.height <= self._floor:
            self._fault(pp.signer, "below-floor", f"pre-prepare at {pp.height}, settled by NEW-VIEW")
            return
        known = self._preprepares.get(pp.height)
        pinned = self._pinned
        if (
            known is not None
            and known.digest != pp.digest
            or (pinned and pinned[0] == pp.height and pinned[1] != pp.digest)
        ):
            self._fault(pp.signer, "equivocation", f"two pre-prepares at view {pp.view} height {pp.height}")
            return
        if known is not None:
            return
        try:
            block_digest = self._app.digest(pp.block)
        except Exception as e:  # the app's decoder: anything it cannot hash is not a block
            self._fault(pp.signer, "invalid-block", f"pre-prepared block does not decode: {e}")
            return
        if block_digest != pp.digest:
            self._fault(pp.signer, "bad-digest", f"pre-prepared block at {pp.height} does not match digest")
            return
        self._preprepares[pp.height] = pp
        self._blocks.setdefault(pp.height, {})[pp.digest] = pp.block
        self._on_round_progress(pp.height)
        self._heard_round(pp.signer, pp.height)
        self._try_prepare()
        self._try_deliver()

    def _ready(self) -> bool:
        """Votes at committed + 1 wait until the block below is executed (the app validates on it)."""
        return self._executed_height == self._committed_height and not self._in_vc

    def _try_prepare(self) -> None:
        height = self._committed_height + 1
        pp = self._preprepares.get(height)
        if pp is None or not self._ready() or height in self._rejected or not self._voting():
            return
        if pp.signer == self._me:
            self._check_prepared(height, pp.digest)
            return
        voted = self._my_votes.get((b"p", self._view, height))
        if voted is None:
            try:
                reason = self._app.validate(height, self._committed_digest, pp.block, self._now)
            except AppHalted:
                raise
            except Exception as e:  # an app that raises on a hostile block: the block is invalid
                reason = f"validation failed: {type(e).__name__}: {e}"
            if reason is not None:
                self._rejected.add(height)
                self._fault(pp.signer, "invalid-block", f"block {height} in view {pp.view}: {reason}")
                return
            self._record_vote(b"p", height, pp.digest, pp.block)
        else:
            return  # already voted here (the same block is re-sent by _retransmit, never another)
        prepare = self._sign(m.Prepare, view=self._view, height=height, digest=pp.digest)
        self._broadcast(prepare)
        self._add_vote(prepare)

    def _record_vote(self, kind: bytes, height: int, digest: bytes, block: bytes | None = None) -> None:
        self._my_votes[(kind, self._view, height)] = digest
        entries = [(walkeys.vote_key(height, self._view, kind), digest)]
        if block is not None:
            entries.append((walkeys.block_key(height, digest), block))
        for key, _ in entries:
            self._wal_keys.setdefault(height, set()).add(key)
        self._persist(*entries)

    def _on_vote(self, vote: m.Prepare | m.Commit) -> None:
        if isinstance(vote, m.Prepare) and vote.signer == self._primary_of(vote.view, vote.height):
            self._fault(vote.signer, "wrong-primary", "the primary does not send PREPARE")
            return
        if not self._in_window(vote.height):
            self.counters["ignored"] += 1
            return
        self._add_vote(vote)

    def _add_vote(self, vote: m.Prepare | m.Commit) -> None:
        seen_key = (vote.KIND, vote.signer, vote.height)
        seen = self._vote_of.get(seen_key)
        if seen is not None:
            if seen != vote.digest:
                self._fault(vote.signer, "equivocation", f"two {vote.KIND}s at height {vote.height}")
            return
        self._vote_of[seen_key] = vote.digest
        self._heard_round(vote.signer, vote.height)
        log = self._prepares if isinstance(vote, m.Prepare) else self._commits
        log.setdefault((vote.height, vote.digest), {})[vote.signer] = vote.signature
        if isinstance(vote, m.Prepare):
            self._check_prepared(vote.height, vote.digest)
        else:
            self._try_deliver()

    def _check_prepared(self, height: int, digest: bytes) -> None:
        """prepared(m, v, n, i): the pre-prepare and 2f matching PREPAREs from backups (paper 4.2)."""
        pp = self._preprepares.get(height)
        if pp is None or pp.digest != digest or height != self._committed_height + 1 or not self._ready():
            return
        if pp.signer != self._me and self._my_votes.get((b"p", self._view, height)) != digest:
            return
        prepares = self._prepares.get((height, digest), {})
        q = self._era(height).q
        if len(prepares) < q - 1 or not self._voting():
            return
        if (b"c", self._view, height) in self._my_votes:
            return  # voted already; _retransmit re-sends that vote
        signatures = tuple(sorted(prepares.items())[: q - 1])
        certificate = PreparedCertificate(self._view, height, digest, pp.signature, signatures)
        known = self._prepared.get(height)
        if known is None or known.view < self._view:
            self._prepared[height] = certificate
            key = walkeys.prepared_key(height)
            self._wal_keys.setdefault(height, set()).add(key)
            self._persist((key, codec.pack(certificate.to_value())))
        self._record_vote(b"c", height, digest)
        commit = self._sign(m.Commit, view=self._view, height=height, digest=digest)
        self._broadcast(commit)
        self._add_vote(commit)

    def _maybe_propose(self) -> None:
        height = self._committed_height + 1
        if self.primary != self._me or not self._ready() or height in self._preprepares:
            return
        if height <= self._floor or not self._in_window(height):
            return
        digest = self._my_votes.get((b"pp", self._view, height))
        if digest is not None:
            block = self._blocks.get(height, {}).get(digest)
            if block is None:
                return  # pre-prepared before a crash and the block is lost: wait for a view change
        else:
            proposed = self._app.propose(height, self._committed_digest, self._now)
            if proposed is None:
                return
            block, digest = proposed, self._app.digest(proposed)
            self._blocks.setdefault(height, {})[digest] = block
            self._record_vote(b"pp", height, digest, block)
        pp = self._sign(m.PrePrepare, view=self._view, height=height, digest=digest, block=block)
        self._preprepares[height] = pp
        self._broadcast(pp)
        self._on_round_progress(height)
        self._check_prepared(height, digest)

    # -- delivery ------------------------------------------------------------------------

    def _certificate_for(self, height: int) -> CommitCertificate | None:
        q = self._era(height).q
        for (h, digest), signers in self._commits.items():
            if h == height and len(signers) >= q:
                signatures = tuple(sorted(signers.items())[:q])
                return CommitCertificate(self._view, height, digest, signatures)
        return self._certs.get(height)

    def _try_deliver(self) -> None:
        delivered = False
        while True:
            height = self._committed_height + 1
            certificate = self._certificate_for(height)
            if certificate is None:
                break
            block = self._blocks.get(height, {}).get(certificate.digest)
            if block is None:
                self._fetch(height, height, [name for name in self._era(height).names if name != self._me])
                break
            self._deliver(height, block, certificate)
            delivered = True
        if delivered:
            self._follow_certified_view()

    def _deliver(self, height: int, block: bytes, certificate: CommitCertificate) -> None:
        encoded = certificate.encode()
        self._certs[height] = certificate
        deletions = [(key, b"") for h in list(self._wal_keys) if h <= height for key in self._wal_keys.pop(h)]
        stale = [(walkeys.cert_key(h), b"") for h in self._certs if h < height - 1]
        for h in [h for h in self._certs if h < height - 1]:
            del self._certs[h]
        self._persist((walkeys.cert_key(height), encoded), *deletions, *stale)
        self._emit(Deliver(height, block, certificate.digest, encoded))
        self._committed_height, self._committed_digest, self._head_cert = (
            height,
            certificate.digest,
            certificate,
        )
        self.counters["blocks"] += 1
        self._attempts = 0
        self._work_since = None
        self._last_progress, self._idle_resends = self._now, 0
        # What the replica remembers about a height goes when the height commits (as its WAL
        # records do): a restarted replica knows no more, and memory stays bounded in a long view.
        for h in [h for h in self._blocks if h <= height]:
            del self._blocks[h]
        for h in [h for h in self._preprepares if h <= height]:
            del self._preprepares[h]
        for seen in [seen for seen in self._vote_of if seen[2] <= height]:
            del self._vote_of[seen]
        for mine in [mine for mine in self._my_votes if mine[2] <= height]:
            del self._my_votes[mine]
        for h in [h for h in self._prepared if h <= height]:
            del self._prepared[h]
        for log in (self._prepares, self._commits):
            for key in [key for key in log if key[0] <= height]:
                del log[key]

    def _on_executed(self, executed: Executed) -> None:
        if executed.height != self._executed_height + 1 or executed.height > self._committed_height:
            self.counters["ignored"] += 1
            return
        self._executed_height = executed.height
        interval = self._params.checkpoint_interval
        if executed.height % interval == 0 and self._schedule.is_voter(self._me, executed.height):
            self._roots[executed.height] = executed.state_root
            checkpoint = self._sign(m.Checkpoint, height=executed.height, state_root=executed.state_root)
            self._my_checkpoint = checkpoint
            self._broadcast(checkpoint)
            self._on_checkpoint(checkpoint)
        self._advance()

    def _advance(self) -> None:
        self._try_prepare()
        self._check_prepared_all()
        self._try_deliver()
        self._maybe_propose()

    def _check_prepared_all(self) -> None:
        pp = self._preprepares.get(self._committed_height + 1)
        if pp is not None:
            self._check_prepared(pp.height, pp.digest)
