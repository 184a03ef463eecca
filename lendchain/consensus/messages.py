"""PBFT messages: PrePrepare, Prepare, Commit, Checkpoint, ViewChange, NewView, CertAnnounce.

On the wire every message is one canonical msgpack array
``[kind, signer, body, signature, attachment]``. The signature covers
``signing_bytes(tag(kind), chain_id, body)``; the attachment is a block whose
integrity the body vouches for by digest (PRE-PREPARE, VIEW-CHANGE, NEW-VIEW),
or ``b""``. Decoding checks shapes and types only; who may send what, and
whether the signature is good, is the replica's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from lendchain import codec
from lendchain.consensus.certificate import (
    CertificateError,
    CommitCertificate,
    PreparedCertificate,
    _digest,
    _uint,
)
from lendchain.consensus.quorum import tag
from lendchain.crypto import SigningKey, verify


class MessageError(ValueError):
    """Bytes that are not a well-formed consensus message."""


@dataclass(frozen=True)
class Message:
    KIND: ClassVar[str] = ""
    signer: str
    signature: bytes

    def body(self) -> list[Any]:
        raise NotImplementedError

    @property
    def attachment(self) -> bytes:
        return b""

    def encode(self) -> bytes:
        return codec.pack([self.KIND, self.signer, self.body(), self.signature, self.attachment])

    def verify_signature(self, chain_id: str, public_key: bytes) -> bool:
        return verify(public_key, self.signature, tag(self.KIND), chain_id, self.body())


@dataclass(frozen=True)
class PrePrepare(Message):
    KIND: ClassVar[str] = "preprepare"
    view: int
    height: int
    digest: bytes
    block: bytes

    def body(self) -> list[Any]:
        return [self.view, self.height, self.digest]

    @property
    def attachment(self) -> bytes:
        return self.block


@dataclass(frozen=True)
class Prepare(Message):
    KIND: ClassVar[str] = "prepare"
    view: int
    height: int
    digest: bytes

    def body(self) -> list[Any]:
        return [self.view, self.height, self.digest]


@dataclass(frozen=True)
class Commit(Message):
    KIND: ClassVar[str] = "commit"
    view: int
    height: int
    digest: bytes

    def body(self) -> list[Any]:
        return [self.view, self.height, self.digest]


@dataclass(frozen=True)
class Checkpoint(Message):
    KIND: ClassVar[str] = "checkpoint"
    height: int
    state_root: bytes

    def body(self) -> list[Any]:
        return [self.height, self.state_root]


@dataclass(frozen=True)
class ViewChange(Message):
    """VIEW-CHANGE(new_view): the sender's last commit certificate and its prepared certificate above it."""

    KIND: ClassVar[str] = "viewchange"
    new_view: int
    committed_height: int
    commit_certificate: CommitCertificate | None
    prepared: PreparedCertificate | None
    block: bytes  # the prepared block, b"" when there is none or it was stripped (inside NEW-VIEW)

    def body(self) -> list[Any]:
        return [
            self.new_view,
            self.committed_height,
            None if self.commit_certificate is None else self.commit_certificate.to_value(),
            None if self.prepared is None else self.prepared.to_value(),
        ]

    @property
    def attachment(self) -> bytes:
        return self.block


@dataclass(frozen=True)
class NewView(Message):
    """NEW-VIEW(view): a quorum of VIEW-CHANGEs and the pre-prepare they force, if any."""

    KIND: ClassVar[str] = "newview"
    view: int
    view_changes: tuple[ViewChange, ...]  # blocks stripped
    pinned_height: int  # 0 when nothing is re-proposed
    pinned_digest: bytes  # b"" when nothing is re-proposed
    pinned_signature: bytes  # the primary's PRE-PREPARE signature over (view, height, digest)
    block: bytes

    def body(self) -> list[Any]:
        changes = [[vc.signer, vc.body(), vc.signature] for vc in self.view_changes]
        return [self.view, changes, self.pinned_height, self.pinned_digest, self.pinned_signature]

    @property
    def attachment(self) -> bytes:
        return self.block

    def pinned_preprepare(self) -> PrePrepare | None:
        if not self.pinned_height:
            return None
        return PrePrepare(
            self.signer, self.pinned_signature, self.view, self.pinned_height, self.pinned_digest, self.block
        )


@dataclass(frozen=True)
class CertAnnounce(Message):
    """A member's latest commit certificate, so that a replica left behind learns it is behind."""

    KIND: ClassVar[str] = "cert"
    certificate: CommitCertificate

    def body(self) -> list[Any]:
        return [self.certificate.to_value()]


def sign(key: SigningKey, chain_id: str, cls: type[Message], signer: str, **fields: Any) -> Any:
    unsigned = cls(signer, b"", **fields)
    signature = key.sign(tag(cls.KIND), chain_id, unsigned.body())
    return cls(signer, signature, **fields)


# -- decoding -------------------------------------------------------------------


def _list(value: Any, length: int, what: str) -> list[Any]:
    if not isinstance(value, list) or len(value) != length:
        raise MessageError(f"{what} must be a list of {length} items")
    return value


def _bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise MessageError(f"{what} must be bytes")
    return value


def _view_change(signer: str, body: Any, signature: bytes, block: bytes) -> ViewChange:
    new_view, committed_height, commit_cert, prepared = _list(body, 4, "view-change body")
    return ViewChange(
        signer,
        signature,
        _uint(new_view, "new view"),
        _uint(committed_height, "committed height"),
        None if commit_cert is None else CommitCertificate.from_value(commit_cert),
        None if prepared is None else PreparedCertificate.from_value(prepared),
        block,
    )


def _from_parts(kind: str, signer: str, body: Any, signature: bytes, attachment: bytes) -> Message:
    if kind in ("prepare", "commit", "preprepare"):
        view, height, digest = _list(body, 3, f"{kind} body")
        fields = (_uint(view, "view"), _uint(height, "height"), _digest(digest, "digest"))
        if kind == "preprepare":
            return PrePrepare(signer, signature, *fields, attachment)
        if attachment:
            raise MessageError(f"a {kind} carries no attachment")
        return (Prepare if kind == "prepare" else Commit)(signer, signature, *fields)
    if attachment and kind in ("checkpoint", "cert"):
        raise MessageError(f"a {kind} carries no attachment")
    if kind == "checkpoint":
        height, state_root = _list(body, 2, "checkpoint body")
        return Checkpoint(signer, signature, _uint(height, "height"), _bytes(state_root, "state root"))
    if kind == "viewchange":
        return _view_change(signer, body, signature, attachment)
    if kind == "newview":
        view, changes, pinned_height, pinned_digest, pinned_signature = _list(body, 5, "new-view body")
        if not isinstance(changes, list):
            raise MessageError("new-view view changes must be a list")
        view_changes = []
        for item in changes:
            vc_signer, vc_body, vc_signature = _list(item, 3, "new-view view change")
            if not isinstance(vc_signer, str):
                raise MessageError("view change signer must be a str")
            view_changes.append(_view_change(vc_signer, vc_body, _bytes(vc_signature, "signature"), b""))
        pinned_height = _uint(pinned_height, "pinned height")
        pinned_digest = _bytes(pinned_digest, "pinned digest")
        if pinned_height and len(pinned_digest) != 32:
            raise MessageError("pinned digest must be 32 bytes")
        return NewView(
            signer,
            signature,
            _uint(view, "view"),
            tuple(view_changes),
            pinned_height,
            pinned_digest,
            _bytes(pinned_signature, "pinned signature"),
            attachment,
        )
    if kind == "cert":
        (certificate,) = _list(body, 1, "cert body")
        return CertAnnounce(signer, signature, CommitCertificate.from_value(certificate))
    raise MessageError(f"unknown message kind {kind!r}")


def decode(payload: bytes, max_size: int) -> Message:
    """Parse one wire message; raises MessageError on anything malformed."""
    try:
        value = codec.unpack(payload, max_size=max_size)
    except codec.CodecError as e:
        raise MessageError(str(e)) from None
    kind, signer, body, signature, attachment = _list(value, 5, "a message")
    if not isinstance(kind, str) or not isinstance(signer, str):
        raise MessageError("message kind and signer must be str")
    _bytes(signature, "signature")
    _bytes(attachment, "attachment")
    try:
        return _from_parts(kind, signer, body, signature, attachment)
    except CertificateError as e:
        raise MessageError(str(e)) from None
