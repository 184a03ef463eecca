"""A data directory whose chain needs newer rules than this release executes.

The release that wrote it knew rules version 2; an older one (``RULES_VERSION``
1, as before ``member.voting``) warns while the upgrade is still ahead,
refuses to start a node on it once the next block needs version 2, and
``verify-chain``'s replay names the block and version instead of failing on it.
"""

from __future__ import annotations

import logging

import pytest

from lendchain.ledger import rules
from lendchain.ledger.rules import MIN_NOTICE_BLOCKS, UpgradeRequired
from lendchain.node.app import NodeApp
from lendchain.node.config import MempoolConfig
from lendchain.node.mempool import Mempool
from lendchain.node.replay import verify_chain
from lendchain.node.store import ChainStore
from tests.ledger.chain import Chain, make_genesis


def commit(store: ChainStore, chain: Chain, *txs) -> None:
    block, execution = chain.cut(list(txs))
    store.commit_block(block.encode(), b"certificate-%d" % block.header.height, execution)
    chain.apply(block, execution)


def open_app(store: ChainStore, genesis) -> NodeApp:
    return NodeApp(genesis, "bank1", store, Mempool(MempoolConfig()), logging.getLogger("bank1"))


def test_an_old_release_warns_then_refuses_a_chain_that_moved_to_newer_rules(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(rules, "RULES_VERSION", 1)  # the release before rules 2
    genesis, members = make_genesis()
    chain = Chain.start(genesis)
    activation = 4 + MIN_NOTICE_BLOCKS
    with ChainStore.open(tmp_path / "db", genesis) as store:
        payload = {"action": "rules.upgrade", "key": "2", "value": str(activation)}
        proposal = chain.tx(members[0], "gov.propose", payload)
        commit(store, chain, proposal)
        for voter in members[1:3]:
            commit(store, chain, chain.tx(voter, "gov.vote", {"proposal_id": proposal.id.hex()}))
        assert rules.scheduled_upgrades(store) == [[activation, 2]]

        with caplog.at_level(logging.WARNING):
            open_app(store, genesis)  # the upgrade is ahead: it starts, and warns
        assert f"scheduled rules version 2 from height {activation}" in caplog.text

        with monkeypatch.context() as newer:  # the release that knows rules 2 goes on past it
            newer.setattr(rules, "RULES_VERSION", 2)
            while chain.height < activation:
                commit(store, chain)
            open_app(store, genesis)
            assert verify_chain(store) == activation

        with pytest.raises(UpgradeRequired) as refused:
            open_app(store, genesis)
        assert refused.value.height == store.head().height + 1 == activation + 1
        assert refused.value.activation == activation and refused.value.version == 2
        with pytest.raises(UpgradeRequired, match=f"block {activation} executes under rules version 2"):
            verify_chain(store)
