"""The signed peer record in every pubsub RPC: made once, checked once per peer.

py-libp2p 0.8.1 puts its host's signed peer record (an Envelope naming the
host's addresses, signed with its key) in every pubsub RPC it sends, and the
receiver parses it and checks its signature before it reads the RPC; an RPC
whose record does not check is dropped. To send one, it lists the host's
addresses again (Multiaddr objects parsed from strings), compares them with
the cached record's and marshals the envelope again, every RPC: 0.8 % of a
node's CPU under a saturating load, 2.2 % at 1,000 tx/s offered, where
messages are small (RESULTS.md, fourth session of 2026-12-07).

A member's node has no use for the records: the addresses it dials come from
the genesis or the ledger (``keep_genesis_addresses`` takes the place of the
peerstore's update). Leaving the record out would have nodes of an earlier
release drop the RPC, so the bytes on the wire stay as they are and only the
work is saved:

- ``sender_record`` keeps the marshalled envelope while the peerstore holds
  the same local record, and compares the host's addresses with it at most
  once every ``ADDRESS_CHECK_S``: a host that starts to listen elsewhere is
  named in its records from then on, as before, a second later at most.
- ``consume_sender_record`` remembers the records it accepted, by peer and
  bytes: a peer sends the same record every time, and a record that checked
  once checks again, so the repeat is accepted without parsing and checking.
  Only where the peerstore's update is ``keep_genesis_addresses``, which has
  no effect a repeat could miss; elsewhere every record is consumed as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from libp2p.abc import IHost
from libp2p.peer import peerstore as _peerstore_module
from libp2p.peer.id import ID
from libp2p.pubsub import gossipsub as _gossipsub_module
from libp2p.pubsub import pubsub as _pubsub_module
from libp2p.pubsub import utils as _utils_module
from libp2p.pubsub.pb import rpc_pb2

from lendchain.bounded import BoundedCache

ADDRESS_CHECK_S = 1.0
ACCEPTED_RECORDS = 1024  # (host, peer, record) triples; a member's record changes only with its addresses

_issue_record: Callable[[IHost], tuple[bytes, bool]] = _peerstore_module.env_to_send_in_RPC
_consume_record: Callable[[rpc_pb2.RPC, IHost, ID], bool] = _utils_module.maybe_consume_signed_record


def keep_genesis_addresses(envelope: object, ttl: int) -> bool:
    """Accept a peer record (pubsub checked its signature) without touching the addresses."""
    return True


class _Sent:
    __slots__ = ("record", "envelope", "checked_at")

    def __init__(self, record: object, envelope: bytes, checked_at: float) -> None:
        self.record, self.envelope, self.checked_at = record, envelope, checked_at


# By id(host): an entry holds its host's record, which a new host with a reused id does not have.
_sent: BoundedCache[int, _Sent] = BoundedCache(64)
_accepted: BoundedCache[tuple[ID, ID, bytes], None] = BoundedCache(ACCEPTED_RECORDS)


def sender_record(host: IHost, clock: Callable[[], float] = time.monotonic) -> tuple[bytes, bool]:
    """``env_to_send_in_RPC``: the envelope to send and whether it was issued anew."""
    now = clock()
    local = host.get_peerstore().get_local_record()
    sent = _sent.get(id(host))
    if (
        sent is not None
        and local is not None
        and sent.record is local
        and now - sent.checked_at < ADDRESS_CHECK_S
    ):
        return sent.envelope, False
    envelope, issued = _issue_record(host)
    _sent.put(id(host), _Sent(host.get_peerstore().get_local_record(), envelope, now))
    return envelope, issued


def consume_sender_record(msg: rpc_pb2.RPC, host: IHost, peer_id: ID) -> bool:
    """``maybe_consume_signed_record``: whether the RPC's record (if any) checks."""
    if not msg.HasField("senderRecord"):
        return True
    if host.get_peerstore().consume_peer_record is not keep_genesis_addresses:
        return _consume_record(msg, host, peer_id)
    key = (host.get_id(), peer_id, msg.senderRecord)
    if key in _accepted:
        return True
    accepted = _consume_record(msg, host, peer_id)
    if accepted:
        _accepted.put(key)
    return accepted


def install() -> None:
    """Put both in the pubsub modules, which look them up by name at each RPC."""
    for module in (_pubsub_module, _gossipsub_module):
        module.env_to_send_in_RPC = sender_record  # type: ignore[attr-defined]
        module.maybe_consume_signed_record = consume_sender_record  # type: ignore[attr-defined]
