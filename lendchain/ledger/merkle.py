"""RFC 6962 (Certificate Transparency) Merkle tree hashes and inclusion proofs.

Leaves are hashed as ``sha256(0x00 || leaf)`` and inner nodes as
``sha256(0x01 || left || right)``; the two prefixes keep a leaf from ever
being mistaken for a node. The empty tree's hash is ``sha256(b"")``. For
``n`` leaves the left subtree holds the largest power of two smaller than
``n`` leaves, which is what hashing level by level and carrying an unpaired
last node up unchanged gives as well (no duplication of the last leaf, so the
second-preimage trick of Bitcoin's tree does not apply).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

_LEAF = b"\x00"
_NODE = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(_LEAF + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The RFC 6962 tree hash of ``leaves`` (raw leaf bytes, not yet hashed).

    Every block hashes two trees of one leaf per tx (its txs, its results), so
    the hashes are written out here rather than one ``leaf_hash`` or
    ``node_hash`` call per leaf and node.
    """
    if not leaves:
        return EMPTY_ROOT
    sha256 = hashlib.sha256
    return _subtree([sha256(_LEAF + leaf).digest() for leaf in leaves])


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _subtree(hashes: Sequence[bytes]) -> bytes:
    """The root over leaf hashes, level by level (the node hash written out: see ``merkle_root``)."""
    sha256 = hashlib.sha256
    level = list(hashes)
    while len(level) > 1:
        # zip stops before an unpaired last node; it is carried up unchanged.
        pairs = zip(level[::2], level[1::2], strict=False)
        paired = [sha256(_NODE + left + right).digest() for left, right in pairs]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf ``index`` (RFC 6962 section 2.1.1), nearest sibling first."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf index {index} is outside a tree of {len(leaves)} leaves")
    hashes = [leaf_hash(leaf) for leaf in leaves]
    path: list[bytes] = []
    lo, hi = 0, len(hashes)
    # Walk down from the root, remembering the sibling subtree at each split.
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            path.append(_subtree(hashes[lo + k : hi]))
            hi = lo + k
        else:
            path.append(_subtree(hashes[lo : lo + k]))
            lo = lo + k
    path.reverse()
    return path


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """True when ``proof`` shows ``leaf`` at ``index`` in a tree of ``size`` leaves with ``root``.

    The verification algorithm of RFC 9162 section 2.1.3.2.
    """
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root
