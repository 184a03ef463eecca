"""NodeApp's "once per node": a tx is verified once and decoded once, from admission to commit.

A primary cuts a block from its mempool and a backup validates it against its
own mempool, as two nodes of one network do; the counters see every
signature check (``verify_raw``) and every decode of wire bytes.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from lendchain import codec
from lendchain.bounded import BoundedCache
from lendchain.ledger import transactions
from lendchain.ledger.block import BLOCK_TAG, Block
from lendchain.ledger.transactions import Transaction, check_stateless
from lendchain.node import app as app_module
from lendchain.node.app import NodeApp
from lendchain.node.config import MempoolConfig
from lendchain.node.mempool import Mempool, PendingTx
from lendchain.node.store import ChainStore
from tests.ledger.chain import CHAIN_ID, GENESIS_MS, Chain, make_genesis, seeded_key

NOW_MS = GENESIS_MS + 1_000
APPLY = {"amount": 9_000, "currency": "EUR", "term_months": 3, "purpose": "tools"}


@pytest.fixture
def network(tmp_path, monkeypatch):
    """Two members' apps on one genesis; each remembers only 2 checked ids beyond its mempool."""
    monkeypatch.setattr(app_module, "VERIFIED_MEMORY", 2)
    genesis = make_genesis()[0]
    apps = []
    for name in ("bank1", "bank2"):
        store = ChainStore.open(tmp_path / name, genesis, create=True)
        apps.append(NodeApp(genesis, name, store, Mempool(MempoolConfig()), logging.getLogger(name)))
    yield apps
    for node in apps:
        node.store.close()


@pytest.fixture
def counted(monkeypatch):
    """Lists that collect each signature check and each decode of wire bytes (clear after setup)."""
    verifies: list[bytes] = []
    decodes: list[bytes] = []
    real_verify, real_decode = transactions.verify_raw, transactions._decode_transaction
    monkeypatch.setattr(
        transactions, "verify_raw", lambda key, sig, msg: verifies.append(sig) or real_verify(key, sig, msg)
    )
    monkeypatch.setattr(
        transactions, "_decode_transaction", lambda raw: decodes.append(raw) or real_decode(raw)
    )
    return verifies, decodes


def registrations(count: int, first_seed: int = 1) -> list[Transaction]:
    chain = Chain.start(make_genesis()[0])
    return [
        chain.tx(seeded_key(first_seed + i), "party.register", {"role": "borrower"}) for i in range(count)
    ]


def admit(node: NodeApp, txs: list[Transaction]) -> None:
    """What the daemon does for a tx from the API or gossip: check it, remember it, pool it."""
    for tx in txs:
        check_stateless(tx, CHAIN_ID)
        node.verified.add(tx.id)
        node.mempool.add(PendingTx(tx, 0))


def propose_and_validate(primary: NodeApp, backup: NodeApp) -> bytes:
    head = primary.store.head()
    block = primary.propose(head.height + 1, head.hash, NOW_MS)
    assert block is not None
    assert backup.validate(head.height + 1, head.hash, block, NOW_MS) is None
    return block


def test_a_pooled_tx_is_not_verified_again_when_a_proposal_carries_it(network, counted):
    """The mempool outlives the bounded memory of checked ids: 5 pooled txs, memory of 2."""
    primary, backup = network
    txs = registrations(5)
    admit(primary, txs)
    admit(backup, txs)
    verifies, _ = counted
    verifies.clear()
    propose_and_validate(primary, backup)
    assert verifies == []


def test_a_tx_this_node_never_checked_is_verified_before_it_votes(network, counted):
    primary, backup = network
    txs = registrations(4)
    admit(primary, txs)
    admit(backup, txs[:3])  # the fourth has not reached the backup's mempool yet
    verifies, _ = counted
    verifies.clear()
    propose_and_validate(primary, backup)
    assert verifies == [txs[3].signature]


def test_a_forged_tx_in_a_proposal_is_refused_even_if_its_sender_is_known(network):
    primary, backup = network
    txs = registrations(2)
    admit(primary, txs)
    admit(backup, txs[:1])
    # The primary pools a tx whose signature is another tx's (a Byzantine primary could).
    real = registrations(1, first_seed=40)[0]
    forged = Transaction(
        real.chain_id, real.kind, real.sender, real.nonce, real.created_ms, real.payload, txs[1].signature
    )
    primary.mempool.add(PendingTx(forged, 0))
    head = primary.store.head()
    block = primary.propose(1, head.hash, NOW_MS)
    refusal = backup.validate(1, head.hash, block, NOW_MS)
    assert refusal is not None and "bad signature" in refusal


def test_txs_that_waited_longer_than_the_decode_cache_remembers_are_not_decoded_again(
    network, counted, monkeypatch
):
    primary, backup = network
    txs = registrations(5)
    admit(primary, txs)
    admit(backup, [transactions.decode_transaction(tx.encode()) for tx in txs])  # as received: bytes
    # Thousands of other txs went through since: the bounded cache has forgotten all of these.
    monkeypatch.setattr(transactions, "_decoded", BoundedCache(1))
    _, decodes = counted
    decodes.clear()
    block = propose_and_validate(primary, backup)
    for node in (primary, backup):
        digest = node.digest(block)
        node.commit(1, block, digest, b"certificate-1")
    assert decodes == []
    assert primary.store.head().hash == backup.store.head().hash


def test_a_block_that_is_not_full_waits_out_the_interval_since_the_last_proposal(network):
    """Batching counts from the previous proposal: a round longer than the interval adds no wait."""
    primary, backup = network
    interval = primary.genesis.consensus.block_interval_ms
    admit(primary, registrations(1))
    head = primary.store.head()
    first = primary.propose(1, head.hash, NOW_MS)
    assert first is not None  # nothing was proposed before: no wait
    digest = primary.digest(first)
    assert backup.validate(1, head.hash, first, NOW_MS) is None

    admit(primary, registrations(2, first_seed=10))  # arrive while block 1 is in its round
    assert primary.propose(2, digest, NOW_MS + interval - 1) is None  # fewer than a full block: wait
    second = primary.propose(2, digest, NOW_MS + interval)
    assert second is not None
    assert len(Block.decode(second).txs) == 2


def test_a_full_block_is_proposed_without_waiting(network):
    primary, _ = network
    primary.sizer.cap = 3
    admit(primary, registrations(1))
    head = primary.store.head()
    first = primary.propose(1, head.hash, NOW_MS)
    admit(primary, registrations(3, first_seed=10))
    second = primary.propose(2, primary.digest(first), NOW_MS + 1)
    assert second is not None and len(Block.decode(second).txs) == 3


def test_the_next_proposal_falls_due_an_interval_after_the_last_or_at_once_when_full(network):
    primary, _ = network
    interval = primary.genesis.consensus.block_interval_ms
    assert primary.proposal_due_ms() is None  # nothing to propose
    admit(primary, registrations(1))
    head = primary.store.head()
    first = primary.propose(1, head.hash, NOW_MS)
    admit(primary, registrations(1, first_seed=10))
    assert primary.proposal_due_ms() == NOW_MS + interval
    assert primary.propose(2, primary.digest(first), NOW_MS + interval) is not None
    primary.sizer.cap = 1
    assert primary.proposal_due_ms() == 0  # a full block waits for nothing


def test_the_oldest_request_is_the_first_tx_the_next_block_takes_and_moves_on_at_commit(network):
    primary, backup = network
    txs = registrations(3)
    admit(primary, txs)
    admit(backup, txs)
    assert backup.oldest_request()[0] == txs[0].id
    head = primary.store.head()
    block = primary.propose(head.height + 1, head.hash, NOW_MS)
    assert Block.decode(block).txs[0] == txs[0].encode()
    digest = backup.digest(block)
    assert backup.validate(1, head.hash, block, NOW_MS) is None
    backup.commit(1, block, digest, b"certificate-1")
    assert backup.oldest_request() is None  # all three committed
    assert primary.oldest_request()[0] == txs[0].id  # the primary has not committed yet


def test_the_oldest_request_says_how_long_the_pool_takes_at_the_measured_rate(network):
    _, backup = network
    admit(backup, registrations(30))
    backup.sizer.rate = 10.0  # txs per second
    assert backup.oldest_request()[1] == backup.backlog_ms() == 3000
    backup.sizer.rate = None  # not measured yet: the starting block size per target interval
    expected = int(1000 * 30 / (backup.sizer.cap / backup.sizer.target_s))
    assert backup.oldest_request()[1] == expected


def test_the_proposers_block_is_hashed_without_decoding_and_only_recent_blocks_are_kept(network, monkeypatch):
    primary, backup = network
    decoded: list[bytes] = []
    real = Block.decode
    monkeypatch.setattr(app_module.Block, "decode", lambda raw: decoded.append(raw) or real(raw))
    head = primary.store.head()
    blocks = []
    for height in range(1, app_module.DIGEST_MEMORY + 3):
        admit(primary, registrations(1, first_seed=100 + height))
        block = primary.propose(height, head.hash, NOW_MS + height * 10_000)
        assert primary.digest(block) == real(block).hash()
        blocks.append(block)
    assert decoded == []  # each digest came from propose, which had the block in hand
    assert backup.digest(blocks[0]) == real(blocks[0]).hash() and decoded == [blocks[0]]
    # Blocks are not kept past the cache's bound (they were ~300 KB each at full load).
    assert len(primary._digests) == app_module.DIGEST_MEMORY
    assert blocks[0] not in primary._digests and blocks[-1] in primary._digests


def test_a_validated_block_is_decoded_once_and_its_commit_names_its_txs_in_order(network, monkeypatch):
    """``validate`` decodes the block; ``commit`` stores what validate decoded and decodes nothing."""
    primary, backup = network
    txs = registrations(3)
    admit(primary, txs)
    admit(backup, txs)
    block = propose_and_validate(primary, backup)
    digest = backup.digest(block)
    decoded: list[bytes] = []
    real = Block.decode
    monkeypatch.setattr(Block, "decode", staticmethod(lambda raw: decoded.append(raw) or real(raw)))
    backup.commit(1, block, digest, b"certificate-1")
    assert decoded == []
    assert backup.store.block_bytes(1) == block and backup.store.head().hash == digest
    assert backup.last_committed_tx_ids == [tx.id for tx in txs]


@pytest.mark.parametrize("hashed_first", [True, False])
def test_a_proposal_is_decoded_once_whether_it_is_hashed_before_or_after_it_is_validated(
    network, monkeypatch, hashed_first
):
    """The replica hashes a pre-prepared block (``digest``), then validates it; either way round, once."""
    primary, backup = network
    txs = registrations(3)
    admit(primary, txs)
    admit(backup, txs)
    head = primary.store.head()
    block = primary.propose(1, head.hash, NOW_MS)
    decoded: list[bytes] = []
    real = Block.decode
    monkeypatch.setattr(Block, "decode", staticmethod(lambda raw: decoded.append(raw) or real(raw)))
    if hashed_first:
        digest = backup.digest(block)
    assert backup.validate(1, head.hash, block, NOW_MS) is None
    if not hashed_first:
        digest = backup.digest(block)
    backup.commit(1, block, digest, b"certificate-1")
    assert decoded == [block] and digest == real(block).hash()
    assert backup.store.head().hash == digest and not backup._decoded


def test_a_commit_drops_its_txs_and_the_pooled_txs_whose_nonces_it_used(network):
    """The senders' next nonces come from the block's txs (the execution's): a pooled tx whose nonce
    a committed tx of its sender took can never commit, and its sender is told so."""
    primary, backup = network
    chain = Chain.start(make_genesis()[0])
    sender = seeded_key(7)
    committed = [chain.tx(sender, "party.register", {"role": "borrower"}, nonce=0), *registrations(2, 20)]
    superseded = chain.tx(sender, "party.register", {"role": "investor"}, nonce=0)
    later = chain.tx(sender, "loan.apply", APPLY, nonce=1)
    admit(primary, committed)
    admit(backup, [superseded, later, *committed[1:]])
    block = propose_and_validate(primary, backup)
    backup.commit(1, block, backup.digest(block), b"certificate-1")
    assert len(backup.mempool) == 1 and later.id in backup.mempool
    assert backup.mempool.recent_outcome(superseded.id).code == "bad_nonce"
    assert backup.last_committed_tx_ids == [tx.id for tx in committed]


def test_a_block_header_is_hashed_once_by_the_primary_and_once_by_a_backup(network, monkeypatch):
    """The backup hashes a proposal as it arrives (``digest``), then validates and stores that same
    decoded block; the primary stores the block it built and hashed. Neither hashes it again."""
    primary, backup = network
    txs = registrations(3)
    admit(primary, txs)
    admit(backup, txs)
    hashed: list[int] = []
    real = codec.hash_value
    monkeypatch.setattr(
        codec, "hash_value", lambda value: hashed.append(value[0] == BLOCK_TAG) or real(value)
    )
    head = primary.store.head()
    block = primary.propose(1, head.hash, NOW_MS)
    digest = primary.digest(block)
    primary.commit(1, block, digest, b"certificate-1")
    assert hashed.count(True) == 1
    hashed.clear()
    assert backup.digest(block) == digest
    assert backup.validate(1, head.hash, block, NOW_MS) is None
    backup.commit(1, block, digest, b"certificate-1")
    assert hashed.count(True) == 1
    assert backup.store.head().hash == primary.store.head().hash == digest


def test_a_header_changed_by_replace_is_hashed_anew(network):
    """The hash is kept on the header object; a header built from another (a test's forgery, the
    Byzantine proposer's) is a new object and hashes its own fields."""
    primary, _ = network
    admit(primary, registrations(1))
    head = primary.store.head()
    header = Block.decode(primary.propose(1, head.hash, NOW_MS)).header
    forged = replace(header, state_root=bytes(32))
    assert header.hash() != forged.hash() == codec.hash_value([BLOCK_TAG, forged.to_value()])
