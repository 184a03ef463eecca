"""Executing a list of transactions against a state: the one place that does it.

``execute_txs`` is shared by the proposer (``make_block``, which leaves out
transactions that cannot be included) and by validators (``check_block``,
which refuses a block that includes one). Whether a transaction can be
included depends only on its shape, its sender's nonce and the block's rules
version (a kind, or a payload choice, that a later version added is no such
thing before it); once included, a handler's refusal is recorded as the
transaction's result (see ``errors``).

The handler of each kind (``kinds.lookup_kind``) reads and writes through a
``TxContext``; its writes reach the block only when it returns normally.

Before the first transaction the block hooks run (``kinds.register_block_hook``;
servicing's due-loan pass): at the start rather than the end, so every
transaction of the block sees loans as they stand at the block's time (a
repayment in the same block pays an instalment already marked overdue, with
its penalty) and the hooks' work does not depend on which transactions the
proposer picked. Their writes are state changes like any tx's; their events
are committed as one extra leaf, ``ledger_result_leaf``, after the tx results
in the results root (only when there are any, so a block without ledger
events has the same results root as before), and kept in state under
``ledgerev/<height>``.

Every receipt (a tx's result, or the ledger events) ends with one
``loan.history`` event per loan whose history it extended: the history's new
length and head hash (``TxContext.receipt_events``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lendchain import codec
from lendchain.ledger import merkle
from lendchain.ledger.context import BlockOverlay, TxContext
from lendchain.ledger.errors import InvalidBlock, TxRejected
from lendchain.ledger.keyrotation import acting_sender, member_signers
from lendchain.ledger.kinds import LEDGER_TX_ID, block_hooks, lookup_kind
from lendchain.ledger.rules import active_rules
from lendchain.ledger.schema import check_rules
from lendchain.ledger.state import (
    BlockExecution,
    Dropped,
    StateReader,
    TxResult,
    get_params,
    ledger_events_key,
    nonce_key,
    seal_changes,
)
from lendchain.ledger.transactions import Transaction, check_stateless


def execute_txs(
    reader: StateReader,
    txs: Sequence[Transaction],
    *,
    height: int,
    timestamp_ms: int,
    chain_id: str,
    strict: bool,
) -> tuple[list[Transaction], BlockExecution]:
    """Apply ``txs`` in order on top of ``reader``; return the included txs and the execution.

    Signatures are not checked here (callers check them once, in bulk). With
    ``strict`` a transaction that cannot be included raises ``InvalidBlock``
    naming it; without, it is left out and listed in ``execution.dropped``.
    """
    rules = active_rules(reader, height)  # UpgradeRequired: this software is too old for the block
    overlay = BlockOverlay(reader)
    params = get_params(reader)
    signers = member_signers(reader)  # empty until a member rotates its key: no per-tx cost
    ledger_events = run_block_hooks(overlay, height, timestamp_ms, params, rules)
    included: list[Transaction] = []
    results: list[TxResult] = []
    dropped: list[Dropped] = []
    seen: set[bytes] = set()
    for index, tx in enumerate(txs):
        tx_id = tx.id
        try:
            if tx_id in seen:
                raise TxRejected("duplicate", f"transaction {tx_id.hex()} appears twice in the block")
            check_stateless(tx, chain_id, check_signature=False)
            key = nonce_key(tx.sender)
            expected = overlay.read(key) or 0
            if tx.nonce != expected:
                raise TxRejected(
                    "bad_nonce", f"field 'nonce' is {tx.nonce}, but {tx.sender}'s next nonce is {expected}"
                )
            kind = lookup_kind(tx.kind)
            assert kind is not None  # check_stateless refused unknown kinds
            if kind.since > rules:
                raise TxRejected(
                    "unknown_kind",
                    f"field 'kind': {tx.kind} exists from rules version {kind.since}; "
                    f"block {height} executes under version {rules}",
                )
            if kind.schema.versioned:  # a payload choice a later rules version added
                check_rules(tx.kind, kind.schema, tx.payload, rules)
        except TxRejected as e:
            if strict:
                raise InvalidBlock(f"tx {index} ({tx_id.hex()[:16]}) cannot be included: {e}") from None
            dropped.append(Dropped(tx_id, e.code, e.message))
            continue
        seen.add(tx_id)
        overlay.write(key, expected + 1)
        context = TxContext(overlay, tx_id, height, timestamp_ms, params, rules)
        try:
            kind.handler(context, acting_sender(signers, tx, height) if signers else tx)
        except TxRejected as e:
            results.append(TxResult.executed(tx_id, e.code, e.message))
        else:
            context.commit()
            results.append(TxResult.executed(tx_id, "ok", "", tuple(context.receipt_events())))
        included.append(tx)
    changes = overlay.changes()
    state_root = seal_changes(reader, changes)
    execution = BlockExecution(
        changes, state_root, results, [tx.id for tx in included], dropped, ledger_events, included
    )
    return included, execution


def run_block_hooks(
    overlay: BlockOverlay, height: int, timestamp_ms: int, params: dict[str, Any], rules: int = 1
) -> tuple[dict[str, Any], ...]:
    """Run every block hook in one ledger context; its writes go to ``overlay``. Returns its events."""
    context = TxContext(overlay, LEDGER_TX_ID, height, timestamp_ms, params, rules)
    for hook in block_hooks():
        hook(context)
    events = context.receipt_events()
    if events:
        # Kept in state too: the node stores tx results, not these, and an audit export
        # needs them to prove a ledger-made history entry against the results root.
        context.put(ledger_events_key(height), events)
    context.commit()
    return tuple(events)


LEDGER_RESULT_TAG = "lendchain/ledger-events/1"


def ledger_result_leaf(events: Sequence[dict[str, Any]]) -> bytes:
    """The results-root leaf of a block's ledger events (a 2-array, never a tx result's 4-array)."""
    return codec.pack_trusted([LEDGER_RESULT_TAG, list(events)])


def result_leaves(results: Sequence[TxResult], ledger_events: Sequence[dict[str, Any]] = ()) -> list[bytes]:
    leaves = [result.leaf() for result in results]
    if ledger_events:
        leaves.append(ledger_result_leaf(ledger_events))
    return leaves


def results_root(results: Sequence[TxResult], ledger_events: Sequence[dict[str, Any]] = ()) -> bytes:
    return merkle.merkle_root(result_leaves(results, ledger_events))
