"""The two ways the ledger says no.

``TxRejected`` refuses one transaction. Before inclusion (at the API, or
when a block is cut) a refused transaction is left out: bad encoding, wrong
chain, bad signature, wrong nonce, duplicate. Once its nonce and shape are
right, a transaction is included even when its handler refuses it (wrong
state, no permission, unknown loan): the refusal becomes its result and it
still consumes its nonce, so the sender's later transactions can proceed. ``InvalidBlock``
refuses a whole proposal: a block that breaks a validity rule must not be
voted for or stored.
"""

from __future__ import annotations

# Stable codes; clients and the API match on these strings, so never rename one.
REJECTION_CODES = (
    "malformed",
    "too_large",
    "wrong_chain",
    "bad_signature",
    "unknown_kind",
    "bad_payload",
    "bad_nonce",
    "forbidden",
    "invalid_state",
    "not_found",
    "duplicate",
    "expired",  # the thing acted on has run out of time (a governance proposal past its voting period)
)


class TxRejected(Exception):
    """A transaction refused with a stable ``code`` and a sentence naming the field."""

    def __init__(self, code: str, message: str) -> None:
        if code not in REJECTION_CODES:
            raise ValueError(f"unknown rejection code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class InvalidBlock(Exception):
    """A block proposal that breaks a block validity rule; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AuditError(ValueError):
    """An audit export that does not prove what it claims; the message names the entry and the check."""
