"""The view-change rules, as pure functions over VIEW-CHANGE messages.

Castro & Liskov section 4.4, for one block in flight: a replica votes at
height h only after it committed h - 1, so the only height whose fate a view
change can still decide is the one above the highest commit certificate in
the quorum of VIEW-CHANGEs (``C``). NEW-VIEW re-proposes, at ``C + 1``, the
block of the highest-view prepared certificate there, if there is one; heights
up to ``C`` are settled by the commit certificate and fetched by replicas that
lack them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lendchain.consensus.certificate import CertificateError, Members, PreparedCertificate
from lendchain.consensus.messages import ViewChange


@dataclass(frozen=True)
class NewViewDecision:
    floor: int  # C: the highest height committed according to the quorum
    pinned: PreparedCertificate | None  # the certificate whose block NEW-VIEW must re-propose at C + 1


def check_view_change(
    vc: ViewChange,
    chain_id: str,
    members: Members,
    digest_of: Callable[[bytes], bytes] | None,
) -> None:
    """Raise CertificateError unless the VIEW-CHANGE's proofs hold.

    ``digest_of`` checks the attached prepared block; None when the block was
    stripped (VIEW-CHANGEs inside a NEW-VIEW).
    """
    cert = vc.commit_certificate
    if vc.committed_height == 0:
        if cert is not None:
            raise CertificateError("a view change at height 0 carries no commit certificate")
    else:
        if cert is None or cert.height != vc.committed_height:
            raise CertificateError(f"view change claims height {vc.committed_height} without its certificate")
        cert.verify(chain_id, members)
    prepared = vc.prepared
    if prepared is None:
        return
    if prepared.height != vc.committed_height + 1:
        raise CertificateError("a prepared certificate must be for the height above the committed one")
    if prepared.view >= vc.new_view:
        raise CertificateError("a prepared certificate must come from a view before the new one")
    prepared.verify(chain_id, members)
    if digest_of is not None:
        try:
            block_digest = digest_of(vc.block)
        except Exception as e:  # the app's decoder: any failure means a bad block
            raise CertificateError(f"prepared block does not decode: {e}") from None
        if block_digest != prepared.digest:
            raise CertificateError("prepared block does not hash to the certificate's digest")


def decide(view_changes: Sequence[ViewChange]) -> NewViewDecision:
    """What NEW-VIEW must contain, given a quorum of checked VIEW-CHANGEs."""
    floor = max(vc.committed_height for vc in view_changes)
    pinned: PreparedCertificate | None = None
    for vc in view_changes:
        cert = vc.prepared
        if cert is not None and cert.height == floor + 1 and (pinned is None or cert.view > pinned.view):
            pinned = cert
    return NewViewDecision(floor, pinned)
