"""The replica's write-ahead log: what it must remember across a crash.

Keys (all under ``b"pbft/"``; heights and views are 8-byte big-endian):

============================  ==============================================
``view``                      ``[view, in_view_change, floor, pinned h, digest]``
``vote/<h><v><kind>``         digest this replica signed (kind pp, p or c)
``blk/<h><digest>``           a block it pre-prepared or accepted at h
``prep/<h>``                  its highest-view prepared certificate at h
``vc/<v>``                    the VIEW-CHANGE it sent for view v (wire bytes)
``nv/<v>``                    the NEW-VIEW it sent as primary of view v (the latest)
``cert/<h>``                  the commit certificate of block h (last two)
``ckpt``                      its latest stable checkpoint proof
============================  ==============================================

Votes, blocks and prepared certificates at a height are deleted once that
height commits: an honest replica never votes at a committed height again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lendchain import codec
from lendchain.consensus.certificate import (
    GENESIS_CHECKPOINT,
    CertificateError,
    CheckpointProof,
    CommitCertificate,
    PreparedCertificate,
)

PREFIX = b"pbft/"
VIEW_KEY = PREFIX + b"view"
CHECKPOINT_KEY = PREFIX + b"ckpt"
VOTE_KINDS = (b"pp", b"p", b"c")


class WalError(ValueError):
    """A WAL record that cannot be read back; the node's consensus log is damaged."""


def _be(number: int) -> bytes:
    return number.to_bytes(8, "big")


def vote_key(height: int, view: int, kind: bytes) -> bytes:
    return PREFIX + b"vote/" + _be(height) + _be(view) + kind


def block_key(height: int, digest: bytes) -> bytes:
    return PREFIX + b"blk/" + _be(height) + digest


def prepared_key(height: int) -> bytes:
    return PREFIX + b"prep/" + _be(height)


def view_change_key(view: int) -> bytes:
    return PREFIX + b"vc/" + _be(view)


def new_view_key(view: int) -> bytes:
    return PREFIX + b"nv/" + _be(view)


def cert_key(height: int) -> bytes:
    return PREFIX + b"cert/" + _be(height)


def view_record(
    view: int, in_view_change: bool, floor: int, pinned: tuple[int, bytes] | None
) -> tuple[bytes, bytes]:
    """The view, and the NEW-VIEW's floor and pinned block digest that bind votes in it."""
    pinned_height, pinned_digest = pinned or (0, b"")
    return VIEW_KEY, codec.pack([view, in_view_change, floor, pinned_height, pinned_digest])


@dataclass
class WalState:
    view: int = 0
    in_view_change: bool = False
    floor: int = 0
    pinned: tuple[int, bytes] | None = None
    votes: dict[tuple[bytes, int, int], bytes] = field(default_factory=dict)  # (kind, view, h) -> digest
    blocks: dict[int, dict[bytes, bytes]] = field(default_factory=dict)  # h -> digest -> block
    prepared: dict[int, PreparedCertificate] = field(default_factory=dict)
    view_changes: dict[int, bytes] = field(default_factory=dict)
    new_views: dict[int, bytes] = field(default_factory=dict)
    certificates: dict[int, CommitCertificate] = field(default_factory=dict)
    stable: CheckpointProof = GENESIS_CHECKPOINT
    keys_by_height: dict[int, set[bytes]] = field(default_factory=dict)


def load(records: Iterable[tuple[bytes, bytes]]) -> WalState:
    """Read back every record; raises WalError naming the first damaged one."""
    state = WalState()
    for key, value in records:
        if not key.startswith(PREFIX) or not value:
            continue
        try:
            _load_one(state, key[len(PREFIX) :], value)
        except (codec.CodecError, CertificateError, ValueError, TypeError) as e:
            raise WalError(
                f"consensus WAL record {key!r} is damaged ({e}); restore the node's data"
            ) from None
    return state


def _load_one(state: WalState, key: bytes, value: bytes) -> None:
    if key == b"view":
        view, in_view_change, floor, pinned_height, pinned_digest = codec.unpack(value)
        state.view, state.in_view_change, state.floor = int(view), bool(in_view_change), int(floor)
        state.pinned = (int(pinned_height), bytes(pinned_digest)) if pinned_height else None
    elif key == b"ckpt":
        state.stable = CheckpointProof.from_value(codec.unpack(value))
    elif key.startswith(b"vote/") and len(key) > 21 and key[21:] in VOTE_KINDS:
        height, view = int.from_bytes(key[5:13], "big"), int.from_bytes(key[13:21], "big")
        state.votes[(key[21:], view, height)] = value
        state.keys_by_height.setdefault(height, set()).add(PREFIX + key)
    elif key.startswith(b"blk/") and len(key) == 4 + 8 + 32:
        height = int.from_bytes(key[4:12], "big")
        state.blocks.setdefault(height, {})[key[12:]] = value
        state.keys_by_height.setdefault(height, set()).add(PREFIX + key)
    elif key.startswith(b"prep/") and len(key) == 13:
        height = int.from_bytes(key[5:], "big")
        state.prepared[height] = PreparedCertificate.from_value(codec.unpack(value))
        state.keys_by_height.setdefault(height, set()).add(PREFIX + key)
    elif key.startswith(b"vc/") and len(key) == 11:
        state.view_changes[int.from_bytes(key[3:], "big")] = value
    elif key.startswith(b"nv/") and len(key) == 11:
        state.new_views[int.from_bytes(key[3:], "big")] = value
    elif key.startswith(b"cert/") and len(key) == 13:
        state.certificates[int.from_bytes(key[5:], "big")] = CommitCertificate.decode(value)
    else:
        raise ValueError("unknown record kind")
