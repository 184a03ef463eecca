"""Quorum arithmetic and signature tags shared by every PBFT message and certificate.

n members tolerate f = (n - 1) // 3 Byzantine ones. A quorum is the smallest
set of which any two share at least f + 1 members, so at least one honest one:
ceil((n + f + 1) / 2). For n = 3f + 1 that is the paper's 2f + 1; for other n
it stays safe where 2f + 1 would not (n = 5 needs 4, not 3). n = 1 gives 1.
"""

from __future__ import annotations


def faulty(n: int) -> int:
    """How many Byzantine members n members tolerate."""
    return (n - 1) // 3


def quorum(n: int) -> int:
    """Votes that make a certificate among n members (2f + 1 when n = 3f + 1)."""
    return (n + faulty(n)) // 2 + 1


def tag(kind: str) -> str:
    """The domain-separation tag a signature of this message kind covers."""
    return f"lendchain/{kind}/1"
