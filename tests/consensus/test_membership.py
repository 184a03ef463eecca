"""Who votes changes at a height: quorums, primaries and certificates follow the members of each height.

Castro & Liskov fix the replica set (section 2: "a set of n replicas"). Here the
ledger may promote an observer to a voting member, or demote a voting member,
from an effective height on (``lendchain.consensus.keys``). One height is in
flight at a time, so every message, certificate and NEW-VIEW is judged by the
members voting at its own height; the safety argument of the paper holds per
height, with n, f and the quorum of that height.
"""

from __future__ import annotations

import pytest

from lendchain.consensus import messages as m
from lendchain.consensus.certificate import CertificateError, CommitCertificate
from lendchain.consensus.events import KeysLearned, Receive
from lendchain.consensus.keys import KeySchedule, KeysNotYetKnown
from lendchain.consensus.quorum import quorum
from tests.consensus.harness import CHAIN, Cluster

CHANGE_HEIGHT = 3


def changed_cluster(*changes: tuple[str, int, bool], observers: int = 0, admitted: int = 0) -> Cluster:
    c = Cluster(observers=observers, admitted=admitted)
    c.voting_changes = list(changes)
    for name in c.names:
        c.restart(name)
    return c


def certificates(c: Cluster, name: str) -> list[CommitCertificate]:
    return [CommitCertificate.decode(delivered.certificate) for delivered in c.chains[name]]


def test_schedule_answers_who_votes_at_each_height() -> None:
    keys = [bytes([i]) * 32 for i in range(4)]
    schedule = KeySchedule([("a", keys[0]), ("b", keys[1]), ("c", keys[2])], others=[("o", keys[3])])
    assert schedule.names == ["a", "b", "c", "o"]
    assert schedule.voters_at(0) == ["a", "b", "c"] and not schedule.is_voter("o", 0)
    assert schedule.set_voting("o", 5, True) and not schedule.set_voting("o", 5, True)
    assert schedule.set_voting("a", 7, False)
    assert schedule.voters_at(4) == ["a", "b", "c"]
    assert schedule.members_at(5) == [("a", keys[0]), ("b", keys[1]), ("c", keys[2]), ("o", keys[3])]
    assert schedule.voters_at(7) == ["b", "c", "o"]
    assert schedule.voting_changes() == [("a", 7, False), ("o", 5, True)]
    assert not schedule.is_voter("stranger", 9)
    with pytest.raises(ValueError, match="not after its last one"):
        schedule.set_voting("o", 4, False)
    with pytest.raises(ValueError, match="does not change it"):
        schedule.set_voting("o", 9, True)
    with pytest.raises(ValueError, match="not a member"):
        schedule.set_voting("stranger", 9, True)
    schedule.set_voting("b", 8, False)
    schedule.set_voting("c", 8, False)
    with pytest.raises(ValueError, match="leave no voting member"):
        schedule.set_voting("o", 9, False)
    assert schedule.voters_at(9) == ["o"]  # the refused change left nothing behind
    schedule.horizon = 8
    with pytest.raises(KeysNotYetKnown):
        schedule.voters_at(9)
    with pytest.raises(KeysNotYetKnown):
        schedule.is_voter("o", 9)


def test_admit_adds_a_member_last_in_order_that_votes_only_once_promoted() -> None:
    keys = [bytes([i]) * 32 for i in range(5)]
    schedule = KeySchedule([("a", keys[0]), ("b", keys[1])], others=[("o", keys[2])])
    assert schedule.admit("n", keys[3]) and not schedule.admit("n", keys[3])
    assert schedule.names == ["a", "b", "o", "n"]
    assert schedule.key_of("n", 0) == keys[3] and not schedule.is_voter("n", 100)
    with pytest.raises(ValueError, match="already a member, with another key"):
        schedule.admit("a", keys[4])
    with pytest.raises(ValueError, match="bad key"):
        schedule.admit("m", b"short")
    schedule.set_voting("n", 4, True)
    assert schedule.voters_at(4) == ["a", "b", "n"]
    schedule.add("n", 6, keys[4])
    assert schedule.members_at(6) == [("a", keys[0]), ("b", keys[1]), ("n", keys[4])]


@pytest.mark.parametrize("kind", ["observer", "admitted"])
def test_a_promoted_observer_votes_from_its_height_and_the_larger_quorum_needs_it(kind: str) -> None:
    c = changed_cluster(("r4", CHANGE_HEIGHT, True), **{"observers" if kind == "observer" else kind: 1})
    c.submit(60)
    c.run(200)
    assert min(c.heights().values()) >= CHANGE_HEIGHT + 1
    c.down.add("r3")  # n = 5 needs 4 votes: r0, r1, r2 and the promoted r4
    assert quorum(5) == 4
    c.submit(60)
    c.run(400)
    assert min(c.heights()[name] for name in ("r0", "r1", "r2", "r4")) >= CHANGE_HEIGHT + 6
    assert all(not faults for faults in c.faults.values()), c.faults
    schedule = c.schedule()
    for cert in certificates(c, "r0"):
        cert.verify(CHAIN, schedule)
        signers = dict(cert.signatures)
        if cert.height < CHANGE_HEIGHT:
            assert "r4" not in signers and len(signers) == quorum(4)
        else:
            assert len(signers) == quorum(5)
    late = [cert for cert in certificates(c, "r0") if cert.height > len(c.chains["r3"])]
    assert late and all("r4" in dict(cert.signatures) for cert in late)
    with pytest.raises(CertificateError, match="non-member 'r4'"):
        late[0].verify(CHAIN, c.members)  # the genesis list alone does not prove them


def test_a_demoted_member_stops_signing_at_its_height_and_the_smaller_quorum_goes_on_without_it() -> None:
    c = changed_cluster(("r3", CHANGE_HEIGHT, False))
    c.submit(60)
    c.run(200)
    assert min(c.heights().values()) >= CHANGE_HEIGHT
    c.down.add("r1")  # n = 3, f = 0: r0 and r2 are a quorum
    assert quorum(3) == 2
    c.submit(60)
    c.run(400)
    assert min(c.heights()[name] for name in ("r0", "r2", "r3")) >= CHANGE_HEIGHT + 6
    assert all(not faults for faults in c.faults.values()), c.faults
    for cert in certificates(c, "r3"):  # r3 still follows the chain, certificate by certificate
        cert.verify(CHAIN, c.schedule())
        if cert.height >= CHANGE_HEIGHT:
            assert "r3" not in dict(cert.signatures)
    assert c.replicas["r3"].counters["view_changes"] == 0


def test_a_vote_from_a_member_that_does_not_vote_at_that_height_counts_for_nothing() -> None:
    c = changed_cluster(("r3", CHANGE_HEIGHT, False), ("r4", CHANGE_HEIGHT, True), observers=1)
    replica = c.replicas["r0"]
    before, after = CHANGE_HEIGHT - 1, CHANGE_HEIGHT + 1  # checkpoint heights (multiples of K = 2)
    for sender, height, counted in (("r3", before, True), ("r3", after, False),
                                    ("r4", before, False), ("r4", after, True)):  # fmt: skip
        ignored = replica.counters["ignored"]
        c.step("r0", Receive(sender, c.sign(sender, m.Checkpoint, height=height, state_root=bytes(32))))
        assert (replica.counters["ignored"] == ignored) == counted, (sender, height)
    assert c.faults["r0"] == []


def test_view_change_at_the_first_height_of_a_larger_set_needs_the_new_members_vote() -> None:
    c = changed_cluster(("r4", CHANGE_HEIGHT, True), observers=1)
    for _ in range(CHANGE_HEIGHT - 1):
        c.submit(1)
        c.run(100)
    assert set(c.heights().values()) == {CHANGE_HEIGHT - 1}
    height = c.heights()["r0"]
    c.down.add("r0")  # the primary of view 0; the four left are exactly the quorum of five
    c.submit(20)
    c.run(3000)
    others = ("r1", "r2", "r3", "r4")
    assert min(c.heights()[name] for name in others) >= height + 3
    assert all(c.replicas[name].view >= 1 for name in others)
    assert all(not c.faults[name] for name in others), c.faults
    schedule = c.schedule()
    for cert in certificates(c, "r1")[height:]:
        cert.verify(CHAIN, schedule)
        assert "r4" in dict(cert.signatures)


def test_a_replica_learns_a_change_from_the_chain_before_judging_the_height_it_affects() -> None:
    c = Cluster(observers=1)
    c.step("r0", KeysLearned((), known_through=CHANGE_HEIGHT + 1, voting=(("r4", CHANGE_HEIGHT, True),)))
    vote = c.sign("r4", m.Commit, view=0, height=CHANGE_HEIGHT, digest=bytes(32))
    ignored = c.replicas["r0"].counters["ignored"]
    c.step("r0", Receive("r4", vote))
    assert c.replicas["r0"].counters["ignored"] == ignored  # judged and kept: r4 votes there
    before = c.sign("r4", m.Commit, view=0, height=CHANGE_HEIGHT - 1, digest=bytes(32))
    c.step("r0", Receive("r4", before))
    assert c.replicas["r0"].counters["ignored"] == ignored + 1
    assert c.faults["r0"] == []


def test_a_replica_learns_an_admission_and_its_promotion_from_the_chain() -> None:
    c = Cluster(admitted=1)
    c.admitted = []
    c.restart("r0")  # a replica whose chain has not admitted r4 yet
    vote = c.sign("r4", m.Commit, view=0, height=CHANGE_HEIGHT, digest=bytes(32))
    c.step("r0", KeysLearned((), known_through=CHANGE_HEIGHT + 1))
    c.step("r0", Receive("r4", vote))  # the transport refuses it; had it come through, a stranger's:
    assert [fault.kind for fault in c.faults["r0"]] == ["non-member"]
    ignored = c.replicas["r0"].counters["ignored"]
    learned = KeysLearned(
        (),
        CHANGE_HEIGHT + 1,
        voting=(("r4", CHANGE_HEIGHT, True),),
        admitted=(("r4", c.keys["r4"].public_key),),
    )
    c.step("r0", learned)
    c.step("r0", Receive("r4", vote))
    assert c.replicas["r0"].counters["ignored"] == ignored  # judged and kept: r4 votes there now
    assert len(c.faults["r0"]) == 1


def test_demoting_the_primary_hands_its_view_to_the_next_voter_without_a_view_change() -> None:
    c = changed_cluster(("r0", CHANGE_HEIGHT, False))
    c.submit(60)
    c.run(300)
    c.submit(60)
    c.run(300)
    assert min(c.heights().values()) >= CHANGE_HEIGHT + 4
    assert all(replica.view == 0 for replica in c.replicas.values())
    assert c.replicas["r2"].primary == "r1"  # view 0 at the height in flight: voters r1, r2, r3
    assert all(not faults for faults in c.faults.values()), c.faults
    for cert in certificates(c, "r0")[CHANGE_HEIGHT - 1 :]:
        assert "r0" not in dict(cert.signatures)


def test_a_promoted_member_starting_without_a_wal_joins_the_view_its_head_was_committed_in() -> None:
    c = changed_cluster(("r4", CHANGE_HEIGHT, True), observers=1)
    c.down.add("r0")  # view 0's primary: the others move to view 1 before the change
    for _ in range(CHANGE_HEIGHT - 1):
        c.submit(1)
        c.run(1500)
    voters = ("r1", "r2", "r3")
    assert all(c.heights()[name] == CHANGE_HEIGHT - 1 for name in (*voters, "r4"))
    assert all(c.replicas[name].view == 1 for name in voters)
    # r4 followed until now; as a node does when promoted, it starts a replica with an empty WAL.
    head = certificates(c, "r4")[-1]
    c.wals["r4"].clear()
    assert c.restart("r4", head_view=head.view).view == 1
    c.tick(only=["r4"])  # its first step writes the view record: a restart keeps the view
    assert c.restart("r4").view == 1
    # n = 5 with r0 down: every block needs r1, r2, r3 and r4, all in view 1 without a view change.
    c.submit(10)
    c.run(1000)
    assert min(c.heights()[name] for name in (*voters, "r4")) >= CHANGE_HEIGHT + 2
    assert all(c.replicas[name].view == 1 for name in (*voters, "r4"))
    assert all("r4" in dict(cert.signatures) for cert in certificates(c, "r1")[CHANGE_HEIGHT - 1 :])
