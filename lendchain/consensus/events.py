"""What goes into ``Replica.step`` (events) and what comes out (actions).

The driver performs the actions of one step in order. ``Persist`` must be on
disk before any later action of the same step is performed: it protects the
vote that the following ``Send``/``Broadcast`` carries.

WAL records are key/value pairs; an empty value (``b""``) deletes the key.
The driver hands every record still on disk back to ``Replica(..., wal=...)``
on restart, in any order.
"""

from __future__ import annotations

from dataclasses import dataclass

# -- events (inputs) -----------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    """The driver's clock, in milliseconds; the replica has no other clock.

    ``stalled_ms``: how much later than planned the driver got to send this
    tick, a time in which this node itself could not have heard anyone (its
    event loop busy, or the process without a CPU). The timers do not count
    it against the primary (``TimerSteps._credit_stall``).
    """

    now_ms: int
    stalled_ms: int = 0


@dataclass(frozen=True)
class Receive:
    """Raw bytes from ``sender``, a member name authenticated by the transport."""

    sender: str
    payload: bytes


@dataclass(frozen=True)
class Executed:
    """The driver executed the block delivered at ``height``; ``state_root`` is the state after it."""

    height: int
    digest: bytes
    state_root: bytes


@dataclass(frozen=True)
class KeysLearned:
    """Admissions, key rotations and voting changes the executed chain holds, and how far they are complete.

    The driver sends it after executing a block, before ``Executed``: ``rotations``
    are (member, effective height, public key), the ones already known included
    (adding one twice is a no-op); ``known_through`` is the executed height plus
    the ledger's rotation delay (see ``keys.py``, horizon).
    """

    rotations: tuple[tuple[str, int, bytes], ...]
    known_through: int
    # Changes of who votes as (member, effective height, voting), known ones included.
    voting: tuple[tuple[str, int, bool], ...] = ()
    # Members admitted after the genesis as (member, public key), in admission order, known ones included.
    admitted: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class SyncedBlock:
    """A committed block fetched from a peer during catch-up; trusted only through its certificate."""

    height: int
    block: bytes
    certificate: bytes


# -- actions (outputs) -----------------------------------------------------------


@dataclass(frozen=True)
class Persist:
    """Write these WAL records durably before performing the next action (b"" value = delete)."""

    entries: list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Send:
    to: str
    payload: bytes


@dataclass(frozen=True)
class Broadcast:
    """Send to every other member."""

    payload: bytes


@dataclass(frozen=True)
class Deliver:
    """Execute and store this committed block; emitted in height order, once per height."""

    height: int
    block: bytes
    digest: bytes
    certificate: bytes


@dataclass(frozen=True)
class FetchBlocks:
    """This replica is behind: fetch committed blocks ``from_height..to_height`` from ``peers``."""

    from_height: int
    to_height: int
    peers: list[str]


@dataclass(frozen=True)
class RelayRequest:
    """Hand the request ``request`` (an id from ``BlockApp.oldest_request``) to the primary ``to``.

    It has waited here longer than an honest primary needs to order it; the
    primary may never have received it, nor the txs that arrived with it
    (paper 4.5.2: a backup relays a client's request to the primary). Best
    effort: the request timer deposes a primary that still leaves it out.
    """

    to: str
    request: bytes


@dataclass(frozen=True)
class Fault:
    """Evidence or suspicion of misbehaviour by ``member`` (``kind`` is a short slug)."""

    member: str
    kind: str
    detail: str


Event = Tick | Receive | Executed | SyncedBlock
Action = Persist | Send | Broadcast | Deliver | FetchBlocks | RelayRequest | Fault
