"""PBFT paper tests (Castro & Liskov, OSDI '99 / TOCS '02), one rule per test.

Each test names the section it checks, sets up a state, steps replicas and
checks the messages and state that come out.
"""

from __future__ import annotations

import pytest

from lendchain.consensus import messages as m
from lendchain.consensus.certificate import CommitCertificate
from lendchain.consensus.events import Receive, SyncedBlock
from lendchain.consensus.quorum import faulty, quorum
from lendchain.genesis import ConsensusParams
from lendchain.sim.app import encode_block
from tests.consensus.harness import CHAIN, GENESIS, Cluster


@pytest.mark.parametrize(
    ("n", "f", "q"), [(1, 0, 1), (4, 1, 3), (5, 1, 4), (7, 2, 5), (10, 3, 7), (13, 4, 9), (16, 5, 11)]
)
def test_quorum_sizes(n: int, f: int, q: int) -> None:
    """Section 4: n = 3f+1 tolerates f; certificates need 2f+1 (any two quorums share an honest member)."""
    assert faulty(n) == f
    assert quorum(n) == q
    assert 2 * q - n >= f + 1


def test_normal_case_commits_one_block_with_certificate() -> None:
    """Section 4.2: PRE-PREPARE, PREPARE, COMMIT; committed blocks carry 2f+1 signed COMMITs."""
    c = Cluster()
    c.submit(2)
    c.tick()
    kinds = [m.decode(p, 1 << 30).KIND for s, _, p in c.outbox]
    assert kinds == ["preprepare"] * 3 and {s for s, _, _ in c.outbox} == {"r0"}
    c.deliver_all()
    assert c.heights() == {"r0": 1, "r1": 1, "r2": 1, "r3": 1}
    assert len({chain[0].digest for chain in c.chains.values()}) == 1
    cert = CommitCertificate.decode(c.chains["r2"][0].certificate)
    cert.verify(CHAIN, c.members)
    assert len(cert.signers(c.members)) == 3 and cert.height == 1


def test_prepared_needs_2f_matching_prepares() -> None:
    """Section 4.2: prepared = pre-prepare + 2f PREPAREs from different backups; only then COMMIT."""
    c = Cluster()
    c.submit()
    c.tick()
    sent_by_r1: list[str] = []

    def drop(sender: str, to: str, msg: m.Message) -> bool:
        if sender == "r1":
            sent_by_r1.append(msg.KIND)
        return to == "r1" and isinstance(msg, m.Prepare) and sender in ("r2", "r3")

    c.deliver_all(drop)
    assert "commit" not in sent_by_r1  # only its own PREPARE: 1 < 2f
    assert c.heights()["r1"] == 1  # 2f+1 COMMITs from the others still prove the block committed
    assert "r1" not in CommitCertificate.decode(c.chains["r1"][0].certificate).signers(c.members)


def test_committed_needs_2f_plus_1_commits() -> None:
    """Section 4.2: committed-local needs 2f+1 matching COMMITs (its own included)."""
    c = Cluster()
    c.submit()
    c.tick()
    c.deliver_all(lambda s, to, msg: to == "r1" and isinstance(msg, m.Commit) and s in ("r2", "r3"))
    assert c.heights()["r1"] == 0  # its own COMMIT and r0's: 2 < 3
    assert c.heights()["r0"] == 1


def test_checkpoint_becomes_stable_and_collects_the_log() -> None:
    """Section 4.3: 2f+1 matching CHECKPOINTs make a checkpoint stable; votes below it are discarded."""
    c = Cluster()
    c.submit(8)
    c.run(60)
    assert min(c.heights().values()) >= 2
    for name, replica in c.replicas.items():
        assert replica.stable_checkpoint >= 2
        votes = [k for k in c.wals[name] if k.startswith(b"pbft/vote/")]
        assert all(int.from_bytes(k[10:18], "big") > replica.committed_height for k in votes)


def test_a_long_view_keeps_no_per_height_state_below_the_committed_height() -> None:
    """Pre-prepares (each holds its block) and votes of committed heights are forgotten.

    A restarted replica knows only what its WAL keeps, and the WAL drops them at commit;
    kept in memory they grew with every block for as long as the view lasted.
    """
    c = Cluster(
        params=ConsensusParams(checkpoint_interval=2, watermark_window=8, view_change_timeout_ms=10_000)
    )
    for _ in range(12):
        c.submit(1)
        c.run(20)
    assert min(c.heights().values()) >= 10 and {r.view for r in c.replicas.values()} == {0}
    for replica in c.replicas.values():
        low = replica.committed_height
        assert all(h > low for h in replica._preprepares)
        assert all(seen[2] > low for seen in replica._vote_of)
        assert all(mine[2] > low for mine in replica._my_votes)
        assert all(h > low for h in replica._blocks)


def test_high_watermark_stops_the_primary_until_a_checkpoint_is_stable() -> None:
    """Section 4.3: no sequence number above h + L is accepted until checkpoint h is stable."""
    c = Cluster()  # K = 2, L = 4
    c.submit(40)
    c.run(200, drop=lambda s, to, msg: isinstance(msg, m.Checkpoint))
    assert set(c.heights().values()) == {4}
    assert all(r.stable_checkpoint == 0 for r in c.replicas.values())
    c.run(200)
    assert min(c.heights().values()) > 4


def test_backup_ignores_pre_prepare_above_high_watermark() -> None:
    """Section 4.3: a backup accepts a PRE-PREPARE only if its sequence number is within (h, h + L]."""
    c = Cluster()
    block = encode_block(5, GENESIS, 0, "r0", [b"tx000000"])
    from lendchain import codec

    payload = c.sign("r0", m.PrePrepare, view=0, height=5, digest=codec.sha256(block), block=block)
    out = c.step("r1", Receive("r0", payload))
    assert out == [] and c.replicas["r1"].counters["ignored"] == 1


def test_view_change_when_the_primary_is_silent() -> None:
    """Section 4.4: backups with pending work and no progress send VIEW-CHANGE; the next primary takes over."""
    c = Cluster()
    c.down.add("r0")
    c.submit()
    c.run(400)
    for name in ("r1", "r2", "r3"):
        assert c.replicas[name].view == 1 and c.replicas[name].primary == "r1"
        assert not c.replicas[name].in_view_change
        assert c.heights()[name] == 1


def test_prepared_block_is_re_proposed_in_the_new_view() -> None:
    """Section 4.4: NEW-VIEW re-proposes the block of the highest prepared certificate."""
    c = Cluster()
    c.submit()
    c.tick()
    c.deliver_all(lambda s, to, msg: isinstance(msg, m.Commit))  # everyone prepares, nobody commits
    prepared = c.replicas["r1"]._prepared[1].digest
    c.down.add("r0")
    c.submit(3)  # new work must not displace the prepared block
    c.run(500)
    assert c.replicas["r1"].view >= 1
    for name in ("r1", "r2", "r3"):
        assert c.chains[name][0].digest == prepared


def test_f_plus_1_view_changes_make_a_replica_join() -> None:
    """Section 4.5.2: f+1 VIEW-CHANGEs for higher views make a replica join before its own timer fires."""
    c = Cluster()
    c.down.add("r0")
    c.submit()
    c.run(150, only=["r1", "r2"])  # only r1 and r2 see time pass
    r3 = c.replicas["r3"]
    assert r3.view == 1 and r3.counters["view_changes"] == 1  # joined on r1's and r2's VIEW-CHANGEs
    assert any(k.startswith(b"pbft/vc/") for k in c.wals["r3"])  # and sent (persisted) its own


def test_new_view_without_a_quorum_is_a_fault() -> None:
    """Section 4.4: NEW-VIEW must carry 2f+1 valid VIEW-CHANGEs."""
    c = Cluster()
    payload = c.sign(
        "r1",
        m.NewView,
        view=1,
        view_changes=(),
        pinned_height=0,
        pinned_digest=b"",
        pinned_signature=b"",
        block=b"",
    )
    c.step("r2", Receive("r1", payload))
    assert [f.kind for f in c.faults["r2"]] == ["bad-new-view"]
    assert c.replicas["r2"].view == 0
    c.step(
        "r2",
        Receive(
            "r3",
            c.sign(
                "r3",
                m.NewView,
                view=1,
                view_changes=(),
                pinned_height=0,
                pinned_digest=b"",
                pinned_signature=b"",
                block=b"",
            ),
        ),
    )
    assert c.faults["r2"][-1].kind == "wrong-primary"


def test_catch_up_fetches_certified_blocks() -> None:
    """Section 4.3/5.3: a replica behind asks for blocks and accepts them only with valid certificates."""
    c = Cluster()
    c.down.add("r3")
    c.submit(12)
    c.run(100)
    c.down.discard("r3")
    c.run(200)  # announcements and checkpoints show r3 it is behind
    fetch = c.fetches["r3"][-1]
    assert fetch.from_height == 1 and fetch.to_height >= 2
    good = c.chains["r0"][0]
    forged = SyncedBlock(1, encode_block(1, GENESIS, 0, "r0", []), good.certificate)
    c.step("r3", forged)
    assert c.heights()["r3"] == 0 and c.faults["r3"][-1].kind == "bad-synced-block"
    for delivered in c.chains["r0"][: fetch.to_height]:
        c.step("r3", SyncedBlock(delivered.height, delivered.block, delivered.certificate))
    assert [d.digest for d in c.chains["r3"]] == [d.digest for d in c.chains["r0"][: fetch.to_height]]


def test_restarted_replica_never_prepares_a_conflicting_block() -> None:
    """Crash safety: a vote persisted before it was sent binds the replica after a restart."""
    c = Cluster()
    c.submit()
    c.tick()
    first = c.outbox[0][2]
    c.outbox.clear()
    c.step("r1", Receive("r0", first))
    assert c.outbox and m.decode(c.outbox[-1][2], 1 << 30).KIND == "prepare"
    c.outbox.clear()  # crash between persisting the PREPARE and sending it
    r1 = c.restart("r1")
    other = encode_block(1, GENESIS, 0, "r0", [b"tx999999"])
    from lendchain import codec

    forged = c.sign("r0", m.PrePrepare, view=0, height=1, digest=codec.sha256(other), block=other)
    c.step("r1", Receive("r0", forged))
    assert not [p for s, _, p in c.outbox if m.decode(p, 1 << 30).KIND == "prepare"]
    c.tick(60, only=["r1"])  # retransmission sends the vote it persisted, not a new one
    resent = [m.decode(p, 1 << 30) for s, _, p in c.outbox]
    prepares = [x for x in resent if isinstance(x, m.Prepare)]
    assert prepares and {p.digest for p in prepares} == {m.decode(first, 1 << 30).digest}
    assert r1.view == 0


def test_crash_after_deliver_before_storing_refetches() -> None:
    """Crash safety: told to deliver, crashed before storing: the restarted replica fetches the block."""
    c = Cluster()
    c.submit()
    c.tick()
    c.deliver_all()
    lost = c.chains["r2"].pop()  # the store never wrote it
    c.restart("r2")
    c.tick(10, only=["r2"])
    assert c.fetches["r2"] and c.fetches["r2"][-1].from_height == 1
    c.step("r2", SyncedBlock(1, lost.block, lost.certificate))
    assert c.chains["r2"][-1].digest == lost.digest


def test_equivocating_primary_is_reported() -> None:
    """Section 4.2: a backup accepts one PRE-PREPARE per view and height; a second one is evidence."""
    c = Cluster()
    from lendchain import codec

    blocks = [encode_block(1, GENESIS, 0, "r0", [tx]) for tx in (b"tx000001", b"tx000002")]
    for block in blocks:
        payload = c.sign("r0", m.PrePrepare, view=0, height=1, digest=codec.sha256(block), block=block)
        c.step("r1", Receive("r0", payload))
    assert [f.kind for f in c.faults["r1"]] == ["equivocation"]
    assert len([p for s, _, p in c.outbox if s == "r1"]) == 3  # one PREPARE, to three peers


@pytest.mark.parametrize(
    ("sender", "payload_of", "kind"),
    [
        ("r1", lambda c: b"\xc1garbage", "garbage"),
        ("r1", lambda c: c.sign("r2", m.Prepare, view=0, height=1, digest=b"\x01" * 32), "impersonation"),
        ("mallory", lambda c: c.sign("r1", m.Prepare, view=0, height=1, digest=b"\x01" * 32), "non-member"),
        (
            "r1",
            lambda c: m.Prepare("r1", b"\x00" * 64, 0, 1, b"\x01" * 32).encode(),
            "bad-signature",
        ),
        (
            "r1",
            lambda c: c.sign("r1", m.PrePrepare, view=0, height=1, digest=b"\x01" * 32, block=b"x"),
            "wrong-primary",
        ),
    ],
)
def test_bad_messages_are_faults_not_exceptions(sender: str, payload_of, kind: str) -> None:
    """Every message is signed by a member; anything else is dropped and counted."""
    c = Cluster()
    out = c.step("r3", Receive(sender, payload_of(c)))
    assert [f.kind for f in out] == [kind]
    assert c.replicas["r3"].counters["faults"] == 1


def test_invalid_block_is_not_prepared() -> None:
    """Validity of a proposal: a backup PREPAREs only blocks the application accepts."""
    c = Cluster()
    from lendchain import codec

    block = encode_block(1, GENESIS, 0, "r0", [b"not-a-tx"])
    c.step(
        "r1",
        Receive("r0", c.sign("r0", m.PrePrepare, view=0, height=1, digest=codec.sha256(block), block=block)),
    )
    assert c.faults["r1"][-1].kind == "invalid-block"
    assert not c.outbox


def test_view_change_timeouts_double_while_views_fail_and_reset_on_commit() -> None:
    """Section 4.5.2: a failed view change waits 2T before the next; a commit resets the timeout."""
    from tests.consensus.harness import PARAMS

    c = Cluster(n=7)  # f = 2: primaries of views 0 and 1 are both down
    c.down.update({"r0", "r1"})
    c.submit()
    started: dict[int, int] = {}
    for _ in range(200):
        c.run(10)
        started.setdefault(c.replicas["r4"].view, c.now)
        if c.heights()["r4"]:
            break
    assert c.replicas["r4"].view == 2 and c.heights()["r4"] == 1
    base = PARAMS.view_change_timeout_ms
    assert base <= started[1] <= base + 20
    assert 2 * base <= started[2] - started[1] <= 2 * base + 20
    assert c.replicas["r4"]._timeout() == base


def test_a_restarted_new_primary_still_answers_a_backup_that_missed_its_new_view() -> None:
    """Crash safety: the NEW-VIEW is in the WAL, so a restarted primary re-sends it to a backup asking."""
    c = Cluster()
    c.down.add("r0")
    c.submit()

    def new_view_to_r3(sender, to, message) -> bool:
        return isinstance(message, m.NewView) and to == "r3"

    for _ in range(40):
        c.run(10, drop=new_view_to_r3)
        if c.replicas["r1"].view == 1 and not c.replicas["r1"].in_view_change:
            break
    assert c.replicas["r1"].view == 1 and not c.replicas["r1"].in_view_change
    assert c.replicas["r3"].in_view_change  # it never got the NEW-VIEW
    c.outbox.clear()
    c.restart("r1")  # crashes before r3 asks again
    c.submit()
    for _ in range(100):
        c.run(10)
        if min(c.heights()[n] for n in ("r1", "r2", "r3")) >= 1:
            break
    # r3 joined view 1 from r1's re-sent NEW-VIEW: no second view change was needed.
    assert all(c.replicas[n].view == 1 and not c.replicas[n].in_view_change for n in ("r1", "r2", "r3"))
    assert min(c.heights()[n] for n in ("r1", "r2", "r3")) >= 1


def test_a_damaged_new_view_record_is_a_clear_wal_error() -> None:
    from lendchain.consensus import wal as walkeys

    c = Cluster()
    c.wals["r1"][walkeys.new_view_key(1)] = b"\x95garbage"
    with pytest.raises(walkeys.WalError, match="NEW-VIEW for view 1 is damaged"):
        c.restart("r1")


def test_an_app_that_halts_stops_the_replica_instead_of_accusing_the_primary() -> None:
    """An app too old for the block (AppHalted) is not a bad proposal: no fault, no vote, it raises."""
    c = Cluster()
    from lendchain import codec
    from lendchain.consensus.app import AppHalted

    def halted(*args: object) -> str | None:
        raise AppHalted("this release cannot execute block 1")

    c.apps["r1"].validate = halted  # type: ignore[method-assign]
    block = encode_block(1, GENESIS, 0, "r0", [b"tx"])
    pre_prepare = c.sign("r0", m.PrePrepare, view=0, height=1, digest=codec.sha256(block), block=block)
    with pytest.raises(AppHalted, match="cannot execute block 1"):
        c.step("r1", Receive("r0", pre_prepare))
    assert c.faults["r1"] == [] and not c.outbox


def test_a_replica_back_after_a_view_change_joins_the_view_its_fetched_blocks_were_committed_in() -> None:
    """A replica's WAL says view 0; a quorum moved to view 1 meanwhile. A commit certificate of view 1
    proves the quorum entered it (as ``Replica._join_view`` argues), so the replica follows it and votes
    at once, instead of counting as down until the next view change."""
    c = Cluster()
    c.down.add("r0")
    c.submit(3)
    c.run(600)
    assert all(c.replicas[name].view == 1 for name in ("r1", "r2", "r3"))
    c.down.discard("r0")
    c.restart("r0")
    assert c.replicas["r0"].view == 0
    for _ in range(20):
        c.run(50)
        c.serve_fetches("r0", "r1")
    assert c.heights()["r0"] == c.heights()["r1"] >= 1
    assert c.replicas["r0"].view == 1 and not c.replicas["r0"].in_view_change
    # r2 fails: r0, r1 and r3 are the quorum of view 1 at once, with no view change.
    before = {name: c.replicas[name].counters["view_changes"] for name in ("r0", "r1", "r3")}
    height = c.heights()["r1"]
    c.down.add("r2")
    c.submit(3)
    c.run(300)
    assert min(c.heights()[name] for name in ("r0", "r1", "r3")) >= height + 1
    assert {name: c.replicas[name].counters["view_changes"] for name in before} == before
    assert all(not c.faults[name] for name in ("r0", "r1", "r3")), c.faults
