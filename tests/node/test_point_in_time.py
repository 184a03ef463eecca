"""Point-in-time replay from a data directory: each date's figures, the as-of rule, tampering refused.

The chain (``report_chain``): bank1's loan A is live on 2023-11-20; by
2024-05-20 it has defaulted and bank2's loan B is disbursed; on 2024-05-23 A
is written off.
"""

from __future__ import annotations

import shutil
import struct
from dataclasses import replace
from pathlib import Path

import plyvel
import pytest

from lendchain import codec
from lendchain.cli.reports import consortium_books, lender_books
from lendchain.consensus.certificate import CommitCertificate
from lendchain.ledger import queries
from lendchain.ledger.block import Block
from lendchain.ledger.state import MemoryState, genesis_changes
from lendchain.node.pointintime import DataDirBlocks, ReportError, Target, parse_as_of, replay_to
from tests.ledger.test_domain_audit import RotatedBlocks, rotated_loan
from tests.node.report_chain import FIRST_DAY, SECOND_DAY, report_chain, write_data_dir


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    chain = report_chain()
    return chain, chain.write_data_dir(tmp_path_factory.mktemp("report") / "data")


def replayed(chain, data_dir: Path, target: Target, compute, scratch: Path | None = None):
    with DataDirBlocks(data_dir, chain.genesis) as source:
        with replay_to(chain.genesis, source, target, scratch) as pit:
            return pit.basis, compute(pit.views)


def books(views):
    members = views.query("members", "*")["members"]
    return consortium_books(lender_books(members, lambda did: views.query("portfolio", did)), None)


def rows(view) -> dict[str, dict]:
    return {row["member"]: row for row in view["books"]}


def test_the_books_as_of_each_date_hold_that_dates_figures(world):
    chain, data_dir = world
    basis, first = replayed(chain, data_dir, Target(as_of_ms=parse_as_of(FIRST_DAY)), books)
    assert basis["height"] == chain.heights["first_day"] == basis["blocks_checked"]
    assert basis["as_of"]["next_block"]["height"] == chain.heights["first_day"] + 1
    assert set(rows(first)) == {"bank1"}  # loan B was not yet applied for
    bank1 = rows(first)["bank1"]
    assert (bank1["loans"], bank1["outstanding"], bank1["defaulted_loans"], bank1["written_off"]) == (
        1,
        120_000,
        0,
        0,
    )

    basis, second = replayed(chain, data_dir, Target(as_of_ms=parse_as_of(SECOND_DAY)), books)
    assert basis["height"] == chain.heights["second_day"]
    assert basis["time"].startswith("2024-05-20T09:00")
    bank1, bank2 = rows(second)["bank1"], rows(second)["bank2"]
    assert (bank1["loans"], bank1["defaulted_loans"], bank1["written_off"]) == (1, 1, 0)  # defaulted since
    assert (bank2["loans"], bank2["outstanding"]) == (1, 120_000)  # disbursed since

    basis, head = replayed(chain, data_dir, Target(), books)
    assert basis["height"] == chain.heights["head"] and basis["as_of"] is None
    bank1 = rows(head)["bank1"]
    assert (bank1["loans"], bank1["written_off"], bank1["written_off_loans"]) == (0, 120_000, 1)


def state_at(chain, height: int) -> MemoryState:
    """The state after block ``height``, from the changes each block made."""
    state = MemoryState()
    state.apply(genesis_changes(chain.genesis))
    for _, execution in chain.chain.blocks[:height]:
        state.apply(execution.changes)
    return state


@pytest.mark.parametrize("stage", ["first_day", "second_day", "head"])
def test_each_view_is_the_one_computed_on_that_blocks_state_at_that_blocks_time(world, stage):
    chain, data_dir = world
    height = chain.heights[stage]
    state = state_at(chain, height)
    at_ms = block_ms(chain, height)
    borrower = queries.lookup(state, "loan", chain.loan_a, as_of_ms=at_ms)["borrower"]
    asked = [("exposure", borrower), ("portfolio", chain.members[0].did), ("loan", chain.loan_a)]

    def views(replayed_views):
        return [replayed_views.query(kind, ref) for kind, ref in asked]

    basis, found = replayed(chain, data_dir, Target(height=height), views)
    assert basis["timestamp_ms"] == at_ms
    expected = [queries.lookup(state, kind, ref, as_of_ms=at_ms) for kind, ref in asked]
    assert found[:2] == expected[:2]
    loan = found[2]
    assert {k: v for k, v in loan.items() if k != "history"} == {
        k: v for k, v in expected[2].items() if k != "history"
    }
    # As the node's loan view: each history entry with its block's time and who signed it.
    assert [entry["event"] for entry in loan["history"]] == [
        entry["event"] for entry in expected[2]["history"]
    ]
    assert loan["history"][0]["signer"]["did"] == borrower and loan["history"][0]["timestamp_ms"] is not None


def block_ms(chain, height: int) -> int:
    return Block.decode(chain.chain.blocks[height - 1][0]).header.timestamp_ms


def test_as_of_is_the_last_block_at_or_before_the_time(world):
    chain, data_dir = world
    height = chain.heights["first_day"]
    for as_of_ms in (block_ms(chain, height), block_ms(chain, height + 1) - 1):
        basis, _ = replayed(chain, data_dir, Target(as_of_ms=as_of_ms), lambda views: None)
        assert basis["height"] == height and basis["as_of"]["ms"] == as_of_ms
        assert basis["as_of"]["next_block"]["timestamp_ms"] == block_ms(chain, height + 1)
    genesis_ms = chain.genesis.genesis_time_ms
    basis, _ = replayed(chain, data_dir, Target(as_of_ms=genesis_ms), lambda views: None)
    assert (basis["height"], basis["certificate"], basis["as_of"]["next_block"]["height"]) == (0, None, 1)
    head = chain.heights["head"]
    basis, _ = replayed(chain, data_dir, Target(as_of_ms=block_ms(chain, head)), lambda views: None)
    assert basis["height"] == head and basis["as_of"]["next_block"] is None
    assert basis["certificate"] == {"view": 0, "signers": ["bank1", "bank2", "bank3"]}


@pytest.mark.parametrize(
    "target, message",
    [
        (Target(height=11), r"height 11 is above the newest block data directory .* holds \(10\)"),
        (
            Target(as_of_ms=parse_as_of("2023-11-13")),
            r"2023-11-13T23:59:59.999Z is before the chain's genesis \(2023-11-14T22:13:20.000Z\)",
        ),
        (
            Target(as_of_ms=parse_as_of("2024-05-24")),
            r"2024-05-24T23:59:59.999Z is after the newest block data directory .* holds \(height 10, at "
            r"2024-05-23T09:00:00.000Z\): the chain may still add blocks at or before it; ask for an earlier "
            r"time, or for --height 10",
        ),
    ],
)
def test_a_target_the_chain_cannot_answer_is_refused(world, target, message):
    chain, data_dir = world
    with pytest.raises(ReportError, match=message):
        replayed(chain, data_dir, target, lambda views: None)


def test_a_time_must_be_a_date_or_carry_its_zone():
    assert parse_as_of("2024-05-20") == parse_as_of("2024-05-21T00:00:00Z") - 1
    assert parse_as_of("2024-05-20T11:00:00+02:00") == parse_as_of("2024-05-20T09:00:00Z")
    with pytest.raises(ValueError, match="'2024-05-20T09:00' has no time zone: add Z for UTC"):
        parse_as_of("2024-05-20T09:00")
    with pytest.raises(ValueError, match="'2024-31-05' is neither a date"):
        parse_as_of("2024-31-05")


def tampered(data_dir: Path, tmp_path: Path, height: int, record: bytes, change) -> Path:
    """A copy of ``data_dir`` whose block (``b:``) or certificate (``c:``) record at ``height`` is changed."""
    copy = tmp_path / "tampered"
    shutil.copytree(data_dir, copy)
    db = plyvel.DB(str(copy))
    key = record + struct.pack(">Q", height)
    db.put(key, change(db.get(key)))
    db.close()
    return copy


def flip_last_byte(raw: bytes) -> bytes:
    return raw[:-1] + bytes([raw[-1] ^ 1])


def forged_signature(raw: bytes) -> bytes:
    cert = CommitCertificate.decode(raw)
    (name, signature), *rest = cert.signatures
    return replace(cert, signatures=((name, flip_last_byte(signature)), *rest)).encode()


@pytest.mark.parametrize(
    "record, change, message",
    [
        (b"b:", flip_last_byte, "block 3 fails the check: block 3 tx root does not match its transactions"),
        (
            b"c:",
            forged_signature,
            "block 3 fails the check: its commit certificate does not verify under the genesis keys and the "
            "replayed governance \\(commit certificate holds an invalid signature by 'bank1'\\)",
        ),
    ],
)
def test_a_changed_byte_in_a_block_or_certificate_fails_at_its_height_and_nothing_is_reported(
    world, tmp_path, record, change, message
):
    chain, data_dir = world
    copy = tampered(data_dir, tmp_path, 3, record, change)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    computed = []
    with pytest.raises(ReportError, match=f"data directory {copy}: {message}; nothing is reported"):
        replayed(chain, copy, Target(), computed.append, scratch)
    assert computed == [] and list(scratch.iterdir()) == []  # no figures, and the replay's state is gone


def rewritten_from(data_dir: Path, tmp_path: Path, height: int) -> Path:
    """A copy of ``data_dir`` whose block ``height`` is 1 ms later, every block after it relinked to
    it by hash, and the hash index and head record rewritten to match: only certificates tell."""
    copy = tmp_path / "rewritten"
    shutil.copytree(data_dir, copy)
    db = plyvel.DB(str(copy))
    head = codec.unpack(db.get(b"m:head"))[0]
    parent_hash = None
    for h in range(height, head + 1):
        key = b"b:" + struct.pack(">Q", h)
        block = Block.decode(db.get(key))
        header = block.header
        if parent_hash is None:
            header = replace(header, timestamp_ms=header.timestamp_ms + 1)
        else:
            header = replace(header, prev_hash=parent_hash)
        db.delete(b"h:" + block.hash())
        db.put(key, Block(header, block.txs).encode())
        db.put(b"h:" + header.hash(), struct.pack(">Q", h))
        parent_hash = header.hash()
    db.put(b"m:head", codec.pack([head, parent_hash, header.state_root, header.timestamp_ms]))
    db.close()
    return copy


def test_a_consistently_rewritten_data_directory_fails_on_the_first_certificate_it_breaks(world, tmp_path):
    chain, data_dir = world
    copy = rewritten_from(data_dir, tmp_path, 3)
    with pytest.raises(
        ReportError,
        match=r"block 3 fails the check: its commit certificate is for block 3 with hash \w{16}, not for this "
        r"block \(hash \w{16}\); nothing is reported",
    ):
        replayed(chain, copy, Target(), lambda views: None)


def test_certificates_follow_a_key_rotation_the_replayed_governance_made(tmp_path):
    genesis, chain, blocks, _, new_key, effective = rotated_loan()
    data_dir = write_data_dir(tmp_path / "data", chain, blocks)
    with DataDirBlocks(data_dir, genesis) as source, replay_to(genesis, source, Target(), tmp_path) as pit:
        assert pit.basis["height"] == chain.height > effective
        assert pit.basis["certificate"]["signers"] == ["bank1", "bank2", "bank3"]  # bank2 under its new key

    # bank2's new key signing a block before the rotation takes effect is a forgery there.
    early = write_data_dir(
        tmp_path / "early", chain, RotatedBlocks(chain, blocks.keys, new_key, effective - 1)
    )
    with DataDirBlocks(early, genesis) as source:
        with pytest.raises(
            ReportError, match=f"block {effective - 1} fails the check: its commit certificate does not"
        ):
            with replay_to(genesis, source, Target(), tmp_path):
                pass


def test_a_missing_certificate_is_named(world, tmp_path):
    chain, data_dir = world
    copy = tmp_path / "gap"
    shutil.copytree(data_dir, copy)
    db = plyvel.DB(str(copy))
    db.delete(b"c:" + struct.pack(">Q", 4))
    db.close()
    with pytest.raises(
        ReportError,
        match="the commit certificate of block 4 is missing; restore it from a backup; nothing is reported",
    ):
        replayed(chain, copy, Target(height=5), lambda views: None)


def test_rules_this_release_does_not_execute_are_named_with_the_height(world, monkeypatch):
    chain, data_dir = world  # a rules-5 chain, replayed by a release that executes rules up to 4
    monkeypatch.setattr("lendchain.ledger.rules.RULES_VERSION", 4)
    with pytest.raises(
        ReportError,
        match="block 1 executes under rules version 5, which this lendchain release does not: report with a "
        r"release that does \(or at a height below 1\)",
    ):
        replayed(chain, data_dir, Target(), lambda views: None)
