"""Checkpoints (paper 4.3) and catch-up, as a mixin of ``Replica`` (split for size).

A replica learns it is behind from proof it can check: f+1 members whose
signed messages show a higher height, a stable checkpoint above its own, or a
commit certificate above its own. It then asks for the blocks (``FetchBlocks``)
and accepts each ``SyncedBlock`` only with a valid commit certificate, so the
peer that serves it need not be trusted.
"""

from __future__ import annotations

from typing import Any

from lendchain import codec
from lendchain.consensus import messages as m
from lendchain.consensus import wal
from lendchain.consensus.certificate import CertificateError, CheckpointProof, CommitCertificate
from lendchain.consensus.events import FetchBlocks, SyncedBlock


class CatchUpSteps:
    def _on_checkpoint(self: Any, checkpoint: m.Checkpoint) -> None:
        self._claim(checkpoint.signer, checkpoint.height)
        height, root = checkpoint.height, checkpoint.state_root
        if height % self._params.checkpoint_interval != 0:
            self._fault(checkpoint.signer, "bad-checkpoint", f"checkpoint at {height}, not a multiple of K")
            return
        horizon = max(self._stable.height, self._committed_height) + self._params.watermark_window
        if height <= self._stable.height or height > horizon:
            return
        seen = self._checkpoint_of.get((checkpoint.signer, height))
        if seen is not None:
            if seen != root:
                self._fault(checkpoint.signer, "equivocation", f"two state roots for checkpoint {height}")
            return
        self._checkpoint_of[(checkpoint.signer, height)] = root
        votes = self._checkpoints.setdefault((height, root), {})
        votes[checkpoint.signer] = checkpoint.signature
        if len(votes) >= self._era(height).q:
            self._make_stable(CheckpointProof(height, root, tuple(sorted(votes.items()))))

    def _make_stable(self: Any, proof: CheckpointProof) -> None:
        """Paper 4.3: 2f+1 matching CHECKPOINTs make it stable; discard everything at or below it."""
        self._stable = proof
        self._persist((wal.CHECKPOINT_KEY, codec.pack(proof.to_value())))
        mine = self._roots.get(proof.height)
        if mine is not None and mine != proof.state_root:
            self._fault(self._me, "state-divergence", f"our state root at {proof.height} differs from 2f+1")
        for key in [key for key in self._checkpoints if key[0] <= proof.height]:
            del self._checkpoints[key]
        for key in [key for key in self._checkpoint_of if key[1] <= proof.height]:
            del self._checkpoint_of[key]
        for h in [h for h in self._roots if h <= proof.height]:
            del self._roots[h]
        if self._committed_height < proof.height:
            signers = [name for name, _ in proof.signatures if name != self._me]
            self._fetch(self._committed_height + 1, proof.height, signers)
        self._maybe_propose()

    def _own_checkpoint(self: Any, proof: CheckpointProof) -> m.Checkpoint | None:
        """Our CHECKPOINT among a stable proof's signatures: a restarted replica can send it again."""
        for signer, signature in proof.signatures:
            if signer == self._me:
                return m.Checkpoint(self._me, signature, proof.height, proof.state_root)
        return None

    def _claim(self: Any, member: str, committed: int) -> None:
        """Record that ``member``'s messages show it committed ``committed``; f+1 such claims are proof."""
        if member == self._me or committed <= self._claims.get(member, 0):
            return
        self._claims[member] = committed
        heights = sorted(self._claims.values(), reverse=True)
        f = self._era(self._committed_height + 1).f
        if len(heights) > f and heights[f] > self._committed_height:
            target = heights[f]
            peers = [name for name, h in sorted(self._claims.items()) if h >= target]
            self._fetch(self._committed_height + 1, target, peers)

    def _fetch(self: Any, start: int, end: int, peers: list[str]) -> None:
        retry = self._fetch_sent_ms is None or self._now - self._fetch_sent_ms >= self._timeout()
        if end > self._fetch_target or retry:
            self._fetch_target = max(self._fetch_target, end)
            self._fetch_sent_ms = self._now
            self.counters["fetches"] += 1
            self._emit(FetchBlocks(start, self._fetch_target, peers))

    def _catching_up(self: Any) -> bool:
        return self._fetch_target > self._committed_height

    def _on_synced(self: Any, synced: SyncedBlock) -> None:
        if synced.height != self._committed_height + 1 or not self._schedule.knows(synced.height):
            self.counters["ignored"] += 1  # the driver feeds rotations as it executes; fetched again later
            return
        try:
            certificate = CommitCertificate.decode(synced.certificate)
            if certificate.height != synced.height:
                raise CertificateError(f"certificate is for height {certificate.height}")
            certificate.verify(self._chain_id, self._schedule)
            if self._app.digest(synced.block) != certificate.digest:
                raise CertificateError("block does not match its certificate")
        except Exception as e:  # CertificateError, or the app failing to decode the block
            self._fault("sync", "bad-synced-block", f"block {synced.height}: {e}")
            return
        self._certs[synced.height] = certificate
        self._blocks.setdefault(synced.height, {})[certificate.digest] = synced.block
        self._try_deliver()

    def _on_cert_announce(self: Any, announce: m.CertAnnounce) -> None:
        certificate = announce.certificate
        self._claim(announce.signer, certificate.height)
        height = certificate.height
        if height <= self._committed_height:
            if height == self._committed_height and self._head_cert is None:
                if certificate.digest == self._committed_digest and self._verified(certificate):
                    self._head_cert = self._certs[height] = certificate
            return
        if height in self._certs or not self._verified(certificate):
            return
        if height == self._committed_height + 1:
            self._certs[height] = certificate
            self._try_deliver()
        else:
            self._fetch(self._committed_height + 1, height, [announce.signer])

    def _verified(self: Any, certificate: CommitCertificate) -> bool:
        try:
            certificate.verify(self._chain_id, self._schedule)
        except CertificateError:
            return False
        return True
