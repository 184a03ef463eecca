"""Certificates: quorums of signatures that anyone holding the member list can check.

- ``CommitCertificate``: a quorum of COMMIT signatures over (view, height,
  digest). Stored with every block; it is what makes a block final.
- ``PreparedCertificate``: the primary's PRE-PREPARE signature and a quorum
  minus one PREPAREs from other members. Carried in VIEW-CHANGE so a
  block that may have committed is re-proposed in the next view.
- ``CheckpointProof``: a quorum of CHECKPOINT signatures over (height, state
  root). Height 0 with no signatures is the genesis checkpoint.

Signatures inside a certificate are the very signatures of the messages that
formed it (same tag, same body), so a certificate needs no signer of its own.

``members`` is either a fixed (name, public key) list or a ``KeySchedule``;
a certificate is checked with the keys valid at its own height (``keys.py``),
so one formed after a member rotated its key verifies with the new key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lendchain import codec
from lendchain.consensus.keys import KeySchedule, KeysNotYetKnown, members_at
from lendchain.consensus.quorum import quorum, tag
from lendchain.crypto import verify

DIGEST_SIZE = 32
_MAX_CERT_SIZE = 16 << 20


class CertificateError(ValueError):
    """A certificate that is malformed or does not prove what it claims."""


Signatures = tuple[tuple[str, bytes], ...]
Members = Sequence[tuple[str, bytes]] | KeySchedule


def _members_at(members: Members, height: int) -> list[tuple[str, bytes]]:
    try:
        return members_at(members, height)
    except KeysNotYetKnown as e:
        raise CertificateError(str(e)) from None


def _uint(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CertificateError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _digest(value: Any, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != DIGEST_SIZE:
        raise CertificateError(f"{what} must be {DIGEST_SIZE} bytes")
    return value


def _signatures(value: Any) -> Signatures:
    if not isinstance(value, list):
        raise CertificateError("signatures must be a list of [member, signature] pairs")
    pairs = []
    for item in value:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], bytes)
        ):
            raise CertificateError("each signature must be a [member name, signature bytes] pair")
        pairs.append((item[0], item[1]))
    return tuple(pairs)


def check_quorum(
    chain_id: str,
    members: Sequence[tuple[str, bytes]],
    kind: str,
    body: list[Any],
    signatures: Signatures,
    needed: int,
    exclude: str | None = None,
) -> None:
    """Raise unless ``needed`` distinct members (other than ``exclude``) signed ``body``."""
    keys = dict(members)
    seen: set[str] = set()
    for name, signature in signatures:
        if name in seen:
            raise CertificateError(f"{kind} certificate lists {name!r} twice")
        if name == exclude:
            raise CertificateError(f"{kind} certificate counts the primary {name!r} as a backup")
        if name not in keys:
            raise CertificateError(f"{kind} certificate holds a signature by non-member {name!r}")
        if not verify(keys[name], signature, tag(kind), chain_id, body):
            raise CertificateError(f"{kind} certificate holds an invalid signature by {name!r}")
        seen.add(name)
    if len(seen) < needed:
        raise CertificateError(f"{kind} certificate has {len(seen)} signatures, a quorum needs {needed}")


@dataclass(frozen=True)
class CommitCertificate:
    view: int
    height: int
    digest: bytes
    signatures: Signatures

    def to_value(self) -> list[Any]:
        return [self.view, self.height, self.digest, [list(p) for p in self.signatures]]

    @classmethod
    def from_value(cls, value: Any) -> CommitCertificate:
        if not isinstance(value, list) or len(value) != 4:
            raise CertificateError("a commit certificate is [view, height, digest, signatures]")
        return cls(
            _uint(value[0], "view"),
            _uint(value[1], "height"),
            _digest(value[2], "digest"),
            _signatures(value[3]),
        )

    def encode(self) -> bytes:
        return codec.pack(self.to_value())

    @classmethod
    def decode(cls, data: bytes) -> CommitCertificate:
        try:
            value = codec.unpack(data, max_size=_MAX_CERT_SIZE)
        except codec.CodecError as e:
            raise CertificateError(f"commit certificate is not canonical msgpack: {e}") from None
        return cls.from_value(value)

    def signers(self, members: Members) -> list[str]:
        """The members whose signatures the certificate lists, in member order (not verified here)."""
        named = {name for name, _ in self.signatures}
        order = members.names if isinstance(members, KeySchedule) else [name for name, _ in members]
        return [name for name in order if name in named]

    def verify(self, chain_id: str, members: Members) -> None:
        """Raise CertificateError unless a quorum of members signed COMMIT(view, height, digest)."""
        members = _members_at(members, self.height)
        check_quorum(
            chain_id,
            members,
            "commit",
            [self.view, self.height, self.digest],
            self.signatures,
            quorum(len(members)),
        )


@dataclass(frozen=True)
class PreparedCertificate:
    """PRE-PREPARE(view, height, digest) by the view's primary plus quorum - 1 PREPAREs by backups.

    The block itself travels next to the certificate (checked against ``digest``),
    so that a NEW-VIEW can carry many certificates without carrying many blocks.
    """

    view: int
    height: int
    digest: bytes
    primary_signature: bytes
    prepares: Signatures

    def to_value(self) -> list[Any]:
        return [self.view, self.height, self.digest, self.primary_signature, [list(p) for p in self.prepares]]

    @classmethod
    def from_value(cls, value: Any) -> PreparedCertificate:
        if not isinstance(value, list) or len(value) != 5:
            raise CertificateError(
                "a prepared certificate is [view, height, digest, primary signature, prepares]"
            )
        if not isinstance(value[3], bytes):
            raise CertificateError("prepared certificate primary signature must be bytes")
        return cls(
            _uint(value[0], "view"),
            _uint(value[1], "height"),
            _digest(value[2], "digest"),
            value[3],
            _signatures(value[4]),
        )

    def verify(self, chain_id: str, members: Members) -> None:
        """Raise unless the view's primary pre-prepared the digest and a quorum minus one backups prepared it."""
        members = _members_at(members, self.height)
        primary, primary_key = members[self.view % len(members)]
        body = [self.view, self.height, self.digest]
        if not verify(primary_key, self.primary_signature, tag("preprepare"), chain_id, body):
            raise CertificateError(f"prepared certificate pre-prepare is not signed by primary {primary!r}")
        check_quorum(
            chain_id, members, "prepare", body, self.prepares, quorum(len(members)) - 1, exclude=primary
        )


@dataclass(frozen=True)
class CheckpointProof:
    height: int
    state_root: bytes
    signatures: Signatures

    def to_value(self) -> list[Any]:
        return [self.height, self.state_root, [list(p) for p in self.signatures]]

    @classmethod
    def from_value(cls, value: Any) -> CheckpointProof:
        if not isinstance(value, list) or len(value) != 3 or not isinstance(value[1], bytes):
            raise CertificateError("a checkpoint proof is [height, state root, signatures]")
        return cls(_uint(value[0], "height"), value[1], _signatures(value[2]))

    def verify(self, chain_id: str, members: Members) -> None:
        """Raise unless a quorum signed CHECKPOINT(height, state root); genesis needs none."""
        if self.height == 0 and not self.signatures:
            return
        members = _members_at(members, self.height)
        check_quorum(
            chain_id,
            members,
            "checkpoint",
            [self.height, self.state_root],
            self.signatures,
            quorum(len(members)),
        )


GENESIS_CHECKPOINT = CheckpointProof(0, b"", ())
