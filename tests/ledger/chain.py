"""A tiny in-memory chain for ledger tests: genesis, keys, and block application."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lendchain.crypto import SigningKey
from lendchain.genesis import Genesis, Member
from lendchain.ledger.block import Block, check_block, make_block
from lendchain.ledger.state import BlockExecution, MemoryState, TxResult, genesis_state
from lendchain.ledger.transactions import Transaction, build_transaction

CHAIN_ID = "lendchain-ledger-test"
GENESIS_MS = 1_700_000_000_000
KYC_EXPIRES_MS = GENESIS_MS + 10**13  # far beyond any block time a test reaches


def seeded_key(n: int) -> SigningKey:
    return SigningKey(bytes([n]) * 32)


def member_key(index: int) -> SigningKey:
    """The key of ``make_genesis``'s member ``index`` (0-based: bank1 is 0)."""
    return seeded_key(100 + index)


KYC_MEMBER = 3  # bank4 has the kyc role under make_genesis's default roles


def make_genesis(roles: list[tuple[str, ...]] | None = None) -> tuple[Genesis, list[SigningKey]]:
    roles = roles or [("lender",), ("lender", "bureau"), ("regulator",), ("kyc", "bureau")]
    keys = [member_key(i) for i in range(len(roles))]
    members = tuple(
        Member(f"bank{i + 1}", key.public_key, f"/ip4/127.0.0.1/tcp/{47100 + i}", member_roles)
        for i, (key, member_roles) in enumerate(zip(keys, roles, strict=True))
    )
    return Genesis(CHAIN_ID, GENESIS_MS, members), keys


def domain_events(events) -> list[dict[str, Any]]:
    """Receipt events without the ``loan.history`` commitments a receipt ends with."""
    return [event for event in events if event["event"] != "loan.history"]


@dataclass
class Chain:
    """State plus head; ``run`` signs, cuts, checks and applies one block."""

    genesis: Genesis
    state: MemoryState
    height: int = 0
    head_hash: bytes = b""
    head_ms: int = GENESIS_MS
    nonces: dict[str, int] = field(default_factory=dict)
    blocks: list[tuple[bytes, BlockExecution]] = field(default_factory=list)
    ledger_events: tuple[dict[str, Any], ...] = ()  # of the last block: the ledger's own work (due-loan pass)

    @classmethod
    def start(cls, genesis: Genesis) -> Chain:
        return cls(genesis, genesis_state(genesis), head_hash=genesis.hash())

    def tx(
        self, key: SigningKey, kind: str, payload: dict[str, Any], nonce: int | None = None
    ) -> Transaction:
        if nonce is None:
            nonce = self.nonces.get(key.did, 0)
            self.nonces[key.did] = nonce + 1
        return build_transaction(key, CHAIN_ID, kind, nonce, payload, GENESIS_MS)

    def cut(self, txs: list[Transaction]) -> tuple[Block, BlockExecution]:
        return make_block(
            parent_hash=self.head_hash,
            parent_timestamp_ms=self.head_ms,
            height=self.height + 1,
            proposer="bank1",
            candidate_txs=txs,
            reader=self.state,
            now_ms=self.head_ms + 1000,
            chain_id=CHAIN_ID,
        )

    def apply(self, block: Block, execution: BlockExecution) -> None:
        self.state.apply(execution.changes)
        self.height = block.header.height
        self.head_hash = block.hash()
        self.head_ms = block.header.timestamp_ms
        self.blocks.append((block.encode(), execution))
        self.ledger_events = execution.ledger_events

    def check_next(self, raw: bytes, **overrides: Any) -> tuple[Block, BlockExecution]:
        """``check_block`` of ``raw`` as this chain's next block, as a peer checks a proposal."""
        args: dict[str, Any] = {
            "expected_height": self.height + 1,
            "parent_hash": self.head_hash,
            "parent_timestamp_ms": self.head_ms,
            "reader": self.state,
            "now_ms": self.head_ms + 1000,
            "max_skew_ms": 5000,
            "chain_id": CHAIN_ID,
        }
        return check_block(raw, **{**args, **overrides})

    def run(self, *txs: Transaction) -> list[TxResult]:
        """Cut a block of ``txs``, validate it as a peer would, apply it; return the results."""
        block, execution = self.cut(list(txs))
        checked, replay = self.check_next(block.encode())
        assert replay.state_root == execution.state_root
        assert replay.changes == execution.changes
        self.apply(checked, execution)
        return execution.results

    def attest(self, attester: SigningKey, subject: str, level: int = 2) -> Transaction:
        """A ``kyc.attest`` of ``subject`` by ``attester`` (a member with the kyc role)."""
        payload = {
            "subject": subject,
            "level": level,
            "expires_ms": KYC_EXPIRES_MS,
            "evidence_hash": "ab" * 32,
        }
        return self.tx(attester, "kyc.attest", payload)

    def onboard(self, party: SigningKey, attester: SigningKey, role: str = "borrower") -> None:
        """Register ``party`` and have ``attester`` attest its KYC, in one block (loan.apply needs both)."""
        results = self.run(self.tx(party, "party.register", {"role": role}), self.attest(attester, party.did))
        assert [r.code for r in results] == ["ok", "ok"], results

    def run_one(self, tx: Transaction) -> TxResult:
        results = self.run(tx)
        assert len(results) == 1, f"tx was not included: {results}"
        return results[0]
