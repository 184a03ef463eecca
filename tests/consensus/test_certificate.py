"""Commit certificates: checkable by anyone holding the member list."""

from __future__ import annotations

import pytest

from lendchain import codec
from lendchain.consensus.certificate import CertificateError, CommitCertificate
from lendchain.consensus.quorum import tag
from tests.consensus.harness import CHAIN, Cluster

DIGEST = codec.sha256(b"block")


def make(c: Cluster, signers: list[str], chain: str = CHAIN, view: int = 0) -> CommitCertificate:
    body = [view, 7, DIGEST]
    return CommitCertificate(
        view, 7, DIGEST, tuple((s, c.keys[s].sign(tag("commit"), chain, body)) for s in signers)
    )


def test_round_trip_and_verify() -> None:
    c = Cluster()
    cert = make(c, ["r0", "r2", "r3"])
    again = CommitCertificate.decode(cert.encode())
    assert again == cert and again.height == 7 and again.digest == DIGEST
    again.verify(CHAIN, c.members)
    assert again.signers(c.members) == ["r0", "r2", "r3"]


@pytest.mark.parametrize(
    ("signers", "chain", "message"),
    [
        (["r0", "r1"], CHAIN, "a quorum needs 3"),
        (["r0", "r1", "r1"], CHAIN, "twice"),
        (["r0", "r1", "r2"], "other-chain", "invalid signature"),
    ],
)
def test_bad_certificates_are_refused(signers: list[str], chain: str, message: str) -> None:
    c = Cluster()
    with pytest.raises(CertificateError, match=message):
        make(c, signers, chain).verify(CHAIN, c.members)


def test_non_member_signature_is_refused() -> None:
    c = Cluster()
    other = Cluster(n=5)
    with pytest.raises(CertificateError, match="non-member"):
        make(other, ["r0", "r1", "r4"]).verify(CHAIN, c.members)


def test_a_signature_for_another_view_does_not_count() -> None:
    c = Cluster()
    cert = make(c, ["r0", "r1", "r2"], view=1)
    forged = CommitCertificate(0, cert.height, cert.digest, cert.signatures)
    with pytest.raises(CertificateError):
        forged.verify(CHAIN, c.members)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        codec.pack([0, 1]),
        codec.pack([0, 1, b"short", []]),
        codec.pack([0, 1, DIGEST, [[1, b""]]]),
    ],
)
def test_garbage_does_not_decode(data: bytes) -> None:
    with pytest.raises(CertificateError):
        CommitCertificate.decode(data)
