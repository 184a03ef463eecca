"""Ledger state: its keys, its genesis, its commitment and what a block did to it.

State is a map from byte keys to canonical msgpack values. Keys are
``<kind>/<id>``: ``nonce/<did>``, ``party/<did>``, ``inst/<did>``,
``loan/<id>``, ``loanlog/<id><n>`` (a loan's n-th history entry; each names
the hash of the one before in ``prev``, so the last one's hash commits to the
whole history), ``ledgerev/<height>`` (the events of a block's own ledger
work, see ``execute``),
``offer/<id>``, ``bloans/<did>`` and ``lloans/<did>`` (a borrower's and a
servicer's loan ids, as paged lists: see ``pagedlist``), ``members``,
``observers`` and ``admitted`` (the roster: ``roster_dids``) and ``params``.
Domain modules add their own
kinds; nothing here iterates over keys, so new kinds cost nothing.

State commitment (one hash per block, compared across nodes)::

    changes_digest_h = sha256(pack(sorted [[key, value-or-nil], ...] written by block h))
    state_root_h     = sha256("lendchain/state/1" || state_root_{h-1} || changes_digest_h)
    state_root_0     = the same with state_root_{-1} = 32 zero bytes and the genesis state as changes

The state also holds its own latest root under ``STATE_ROOT_KEY`` (left out
of the digest, and stored as the raw 32 bytes rather than msgpack), so any reader — the store at its head, or an overlay of a
pending block — yields the parent root a new block chains from.

Cost: O(number of changed keys) per block — one sort, one pack and two
hashes; no tree is kept. What it proves: two nodes with the same genesis and
the same state root at height h applied identical change sets at every
height up to h, so they hold identical states; any divergence (one differing
value) shows as a different root from that block on. What it does not give:
proofs for a single key (a light client cannot check one loan against the
root), and it cannot be recomputed from a state snapshot alone, only by
replaying the change sets from genesis (what ``verify-chain`` does).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import msgpack

from lendchain import codec
from lendchain.genesis import Genesis
from lendchain.lazy import lazy_attribute
from lendchain.ledger.params import STORED_DEFAULTS
from lendchain.ledger.params import value as param

if TYPE_CHECKING:
    from lendchain.ledger.transactions import Transaction

STATE_ROOT_TAG = b"lendchain/state/1"
ZERO_ROOT = bytes(32)
PARAMS_KEY = b"params"
RULES_KEY = b"rules"  # [[activation height, version], ...]: see ``rules``
STATE_ROOT_KEY = b"meta/state_root"
# The founding roster, never changed: who votes at a height is ``membership.voting_dids_at``.
VOTING_MEMBERS_KEY = b"members"  # DIDs of the genesis's voting members
OBSERVERS_KEY = b"observers"  # DIDs of its observers (read-only members); absent when it has none
# Members admitted later by governance (``admission``, rules 3), in admission order; absent until one is.
ADMITTED_KEY = b"admitted"
ADDRESSES_KEY = b"addresses"  # {member name: node address} changed by ``member.address`` (rules 3)
REMOVED_KEY = b"removed"  # {member name: height of the block that removed it} (``removal``, rules 3)

# The parameters every genesis state stores, with their defaults unless genesis.app overrides them
# (``params.STORED_DEFAULTS``: never grows, see ``params``); ``params.value`` reads any parameter.
DEFAULT_PARAMS: dict[str, Any] = STORED_DEFAULTS


class StateReader(Protocol):
    def get(self, key: bytes) -> bytes | None: ...


class MemoryState:
    """A StateReader over a dict; a scratch state for replays and tests."""

    def __init__(self, values: dict[bytes, bytes] | None = None) -> None:
        self.values: dict[bytes, bytes] = dict(values or {})

    def get(self, key: bytes) -> bytes | None:
        return self.values.get(key)

    def apply(self, changes: dict[bytes, bytes | None]) -> None:
        for key, value in changes.items():
            if value is None:
                self.values.pop(key, None)
            else:
                self.values[key] = value


class OverlayReader:
    """Reads ``changes`` of a pending block first (``None`` = deleted), then ``parent``."""

    def __init__(self, parent: StateReader, changes: dict[bytes, bytes | None]) -> None:
        self.parent = parent
        self.changes = changes

    def get(self, key: bytes) -> bytes | None:
        if key in self.changes:
            return self.changes[key]
        return self.parent.get(key)


_FOUR_ITEMS = b"\x94"  # msgpack fixarray header, 4 items
_BIN_32 = b"\xc4\x20"  # msgpack bin 8 header, 32 bytes: how a tx id (a sha256) packs


@dataclass(frozen=True, init=False)
class TxResult:
    """What one included transaction did: ``code`` is ``ok`` or a stable rejection code."""

    tx_id: bytes
    code: str
    message: str = ""
    events: tuple[dict[str, Any], ...] = ()

    def __init__(
        self, tx_id: bytes, code: str, message: str = "", events: tuple[dict[str, Any], ...] = ()
    ) -> None:
        # The generated __init__ of a frozen dataclass sets each field with a call of
        # object.__setattr__; one update of the instance dict does the same, for a third of
        # the cost, and a block builds one result per tx.
        self.__dict__.update(tx_id=tx_id, code=code, message=message, events=events)

    @classmethod
    def executed(
        cls, tx_id: bytes, code: str, message: str = "", events: tuple[dict[str, Any], ...] = ()
    ) -> TxResult:
        """A result as execution makes it: ``packed`` encoded at once, since the block's results
        root and its stored results both need it (no lazy first read per tx)."""
        result = cls.__new__(cls)
        result.__dict__.update(
            tx_id=tx_id,
            code=code,
            message=message,
            events=events,
            packed=codec.pack_trusted([code, message, list(events)]),
        )
        return result

    @property
    def ok(self) -> bool:
        return self.code == "ok"

    def to_value(self) -> list[Any]:
        """Stored form (the tx id is the index key, so it is not repeated)."""
        return [self.code, self.message, list(self.events)]

    @lazy_attribute
    def packed(self) -> bytes:
        """``codec.pack(self.to_value())``, encoded once: the leaf and the stored block share it."""
        return codec.pack_trusted(self.to_value())

    @classmethod
    def from_value(cls, tx_id: bytes, value: Any) -> TxResult:
        code, message, events = value
        return cls(tx_id, code, message, tuple(events))

    def leaf(self) -> bytes:
        """The bytes hashed into a block's results root: ``pack([tx_id, code, message, events])``.

        That is the array header for four items, the packed tx id, then the
        three items of ``packed`` (whose first byte is its own header, 0x93).
        """
        if len(self.tx_id) == 32:
            return _FOUR_ITEMS + _BIN_32 + self.tx_id + self.packed[1:]
        return _FOUR_ITEMS + codec.pack_trusted(self.tx_id) + self.packed[1:]

    def to_json(self) -> dict[str, Any]:
        return {
            "tx_id": self.tx_id.hex(),
            "code": self.code,
            "ok": self.ok,
            "message": self.message,
            "events": list(self.events),
        }


@dataclass(frozen=True)
class Dropped:
    """A candidate the proposer left out of its block, and why (for the mempool)."""

    tx_id: bytes
    code: str
    message: str


@dataclass(frozen=True)
class BlockExecution:
    """The effect of one block: state changes (``None`` deletes), new root, per-tx results."""

    changes: dict[bytes, bytes | None]
    state_root: bytes
    results: list[TxResult]
    tx_ids: list[bytes]
    dropped: list[Dropped] = field(default_factory=list)
    # Events of the ledger's own work at the start of the block (block hooks: the due-loan
    # pass); committed as one extra leaf after the tx results in the results root.
    ledger_events: tuple[dict[str, Any], ...] = ()
    # The included txs themselves (``tx_ids`` are their ids), as decoded for execution: the
    # node's commit reads their senders and nonces without decoding the block's txs again.
    txs: list[Transaction] = field(default_factory=list, compare=False, repr=False)


def nonce_key(did: str) -> bytes:
    return b"nonce/" + did.encode()


def party_key(did: str) -> bytes:
    return b"party/" + did.encode()


def institution_key(did: str) -> bytes:
    return b"inst/" + did.encode()


def credit_key(did: str) -> bytes:
    """A party's latest credit report (``identity``: ``credit.report``; ``disputes`` reads it too)."""
    return b"credit/" + did.encode()


def loan_key(loan_id: bytes) -> bytes:
    return b"loan/" + loan_id


def loan_history_key(loan_id: bytes, number: int) -> bytes:
    return b"loanlog/" + loan_id + number.to_bytes(4, "big")


HISTORY_TAG = b"lendchain/loan-history/1"


def history_entry_hash(raw_entry: bytes) -> bytes:
    """The hash of one history entry's canonical bytes; the next entry's ``prev`` is this."""
    return hashlib.sha256(HISTORY_TAG + raw_entry).digest()  # ``codec.sha256``, without its call


def ledger_events_key(height: int) -> bytes:
    """The events of block ``height``'s own ledger work (block hooks), kept for audit exports."""
    return b"ledgerev/" + height.to_bytes(8, "big")


def offer_key(offer_id: bytes) -> bytes:
    return b"offer/" + offer_id


def borrower_loans_key(did: str) -> bytes:
    """The ids of every loan ``did`` applied for, in order."""
    return b"bloans/" + did.encode()


def lender_loans_key(did: str) -> bytes:
    """The ids of every loan whose accepted offer is ``did``'s, or whose servicing a ``loan.transfer``
    offered to ``did`` (rules 4), in order, each once. Which of them ``did`` services now is the
    loan's ``lender``: see ``transfers``."""
    return b"lloans/" + did.encode()


def funder_loans_key(did: str) -> bytes:
    """The ids of every syndicated loan ``did`` committed to, in order (kept from rules version 2)."""
    return b"floans/" + did.encode()


# Commitment -----------------------------------------------------------------


def changes_digest(changes: dict[bytes, bytes | None]) -> bytes:
    keys = sorted(changes)
    if STATE_ROOT_KEY in changes:
        keys.remove(STATE_ROOT_KEY)
    # A list of (bytes, bytes-or-nil) pairs is already canonical: msgpack.packb gives exactly
    # codec.pack's bytes (a tuple packs as the array a list does) without walking every item,
    # and zip builds the pairs without a Python step per key.
    items = list(zip(keys, map(changes.__getitem__, keys), strict=True))
    return codec.sha256(msgpack.packb(items, use_bin_type=True))


def next_state_root(prev_root: bytes, changes: dict[bytes, bytes | None]) -> bytes:
    return codec.sha256(STATE_ROOT_TAG + prev_root + changes_digest(changes))


def current_state_root(reader: StateReader) -> bytes:
    """The root of the state ``reader`` shows (kept in the state under STATE_ROOT_KEY)."""
    root = reader.get(STATE_ROOT_KEY)
    if root is None:
        raise ValueError("the state holds no state root; it was not built from a genesis")
    return root


def seal_changes(reader: StateReader, changes: dict[bytes, bytes | None]) -> bytes:
    """Chain ``changes`` onto ``reader``'s root, record the new root in ``changes``, return it."""
    root = next_state_root(current_state_root(reader), changes)
    changes[STATE_ROOT_KEY] = root
    return root


def genesis_changes(genesis: Genesis) -> dict[bytes, bytes | None]:
    """The state at height 0: members as institutions, ledger parameters, and its root."""
    changes: dict[bytes, bytes | None] = {}
    for member in genesis.members + genesis.observers:
        changes[institution_key(member.did)] = codec.pack(
            {
                "name": member.name,
                "public_key": member.public_key,
                "roles": list(member.roles),
                "voting": member.voting,
            }
        )
    changes[VOTING_MEMBERS_KEY] = codec.pack([member.did for member in genesis.members])
    if genesis.observers:
        changes[OBSERVERS_KEY] = codec.pack([member.did for member in genesis.observers])
    version = param(genesis.app, "rules_version")
    if version != 1:  # a chain that starts on newer rules: in force from block 1 (rules.rules_at)
        changes[RULES_KEY] = codec.pack([[1, version]])
    try:
        changes[PARAMS_KEY] = codec.pack({**DEFAULT_PARAMS, **genesis.app})
    except codec.CodecError as e:
        raise ValueError(f"genesis [app] parameters cannot be stored: {e}") from None
    changes[STATE_ROOT_KEY] = next_state_root(ZERO_ROOT, changes)
    return changes


def genesis_state_root(genesis: Genesis) -> bytes:
    root = genesis_changes(genesis)[STATE_ROOT_KEY]
    assert root is not None
    return root


def genesis_state(genesis: Genesis) -> MemoryState:
    """A scratch state at height 0 (tests, benchmarks, replays)."""
    state = MemoryState()
    state.apply(genesis_changes(genesis))
    return state


# Reading ------------------------------------------------------------------------


def roster_dids(get: Callable[[bytes], Any]) -> list[str]:
    """Every member's DID in member order: genesis voters, genesis observers, then admitted members.

    ``get`` reads a decoded state value (``TxContext.get``, or ``read_value`` on a reader).
    """
    return [*(get(VOTING_MEMBERS_KEY) or []), *(get(OBSERVERS_KEY) or []), *(get(ADMITTED_KEY) or [])]


def read_value(reader: StateReader, key: bytes) -> Any | None:
    raw = reader.get(key)
    return None if raw is None else codec.unpack(raw)


def next_nonce(reader: StateReader, did: str) -> int:
    """The nonce ``did``'s next transaction must carry (0 for a new sender)."""
    return read_value(reader, nonce_key(did)) or 0


def get_params(reader: StateReader) -> dict[str, Any]:
    # Read before every block's execution: decoded as the ledger's own state (``unpack_trusted``),
    # not re-encoded to check its form, which cost three times the decoding.
    raw = reader.get(PARAMS_KEY)
    return (codec.unpack_trusted(raw) if raw is not None else None) or dict(DEFAULT_PARAMS)
