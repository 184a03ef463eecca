"""A certified test chain whose books differ from one date to the next, in a stopped node's data directory.

bank1 disburses loan A on the genesis day (2023-11-14). Nothing happens
until 2024-05-20, when bank2 lends loan B; the first block that day finds
A's first instalment 90 days past due and defaults it. On 2024-05-23 bank1
writes A off. So the books as of 2023-11-20 hold A alone, live; as of
2024-05-20 A defaulted and B outstanding; at the head A written off.
Every block carries a commit certificate by bank1, bank2 and bank3.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import tomli_w

from lendchain.genesis import Genesis
from lendchain.node.store import ChainStore
from tests.ledger.chain import Chain
from tests.ledger.test_domain_audit import CertifiedBlocks
from tests.ledger.test_loan_transfer import APPLY, loan, ok, open_loan, with_borrower

FIRST_DAY = "2023-11-20"  # A live, B not yet applied for
SECOND_DAY = "2024-05-20"  # A defaulted, B disbursed; A's write-off comes on 2024-05-23


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@dataclass
class ReportChain:
    chain: Chain
    genesis: Genesis
    members: list
    certificates: CertifiedBlocks
    loan_a: str
    loan_b: str
    heights: dict[str, int]  # the last block of each stage

    def write_data_dir(self, path: Path) -> Path:
        return write_data_dir(path, self.chain, self.certificates)

    def write_genesis(self, path: Path) -> Path:
        return write_genesis(path, self.genesis)


def write_data_dir(path: Path, chain: Chain, certificates: CertifiedBlocks) -> Path:
    """A stopped node's data directory holding ``chain``'s blocks, each with its certificate."""
    with ChainStore.open(path, chain.genesis) as store:
        for height, (raw, execution) in enumerate(chain.blocks, start=1):
            store.commit_block(raw, certificates.certificate(height), execution)
    return path


def write_genesis(path: Path, genesis: Genesis) -> Path:
    path.write_text(tomli_w.dumps(genesis.to_toml_doc()))
    return path


def report_chain() -> ReportChain:
    chain, members, borrower = with_borrower(version=5)
    bank1, bank2 = members[0], members[1]
    loan_a = open_loan(chain, borrower, bank1)
    heights = {"first_day": chain.height}
    chain.head_ms = ms("2024-05-20T09:00:00") - 1000  # the next block is at 09:00 that day
    loan_b = open_loan(chain, borrower, bank2)
    assert loan(chain, loan_a)["state"] == "defaulted"
    heights["second_day"] = chain.height
    chain.head_ms = ms("2024-05-23T09:00:00") - 1000
    ok(chain, bank1, "loan.write_off", {"loan_id": loan_a, "reason": "the borrower's estate was settled"})
    heights["head"] = chain.height
    assert APPLY["amount"] == 120_000  # the figures the tests expect
    return ReportChain(
        chain, chain.genesis, members, CertifiedBlocks(chain, members), loan_a, loan_b, heights
    )
