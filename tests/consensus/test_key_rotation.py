"""Key rotation in the consensus core: messages and certificates are judged with the keys at their height.

Castro & Liskov assume each replica's key is fixed (section 2: "all replicas know
the others' public keys"). Here the key of a member may change from an effective
height on (``lendchain.consensus.keys``), so "the others' public keys" means the
keys valid at the height a message or certificate is for.
"""

from __future__ import annotations

import pytest

from lendchain import codec
from lendchain.consensus import messages as m
from lendchain.consensus.certificate import CertificateError, CommitCertificate
from lendchain.consensus.events import KeysLearned, Receive, SyncedBlock
from lendchain.consensus.keys import KeySchedule, KeysNotYetKnown, signing_height
from lendchain.crypto import SigningKey
from tests.consensus.harness import CHAIN, Cluster

ROTATION_HEIGHT = 3
NEW_KEY = SigningKey(codec.sha256(b"r1 rotated"))


def rotated_cluster(holds_new_key: bool = True) -> Cluster:
    c = Cluster()
    c.rotations = [("r1", ROTATION_HEIGHT, NEW_KEY.public_key)]
    c.new_keys = {"r1": [NEW_KEY]} if holds_new_key else {}
    for name in c.names:
        c.restart(name)
    return c


def test_schedule_answers_the_key_valid_at_each_height() -> None:
    old = SigningKey(codec.sha256(b"old")).public_key
    schedule = KeySchedule([("a", old), ("b", old[::-1])])
    assert schedule.add("a", 5, NEW_KEY.public_key) and not schedule.add("a", 5, NEW_KEY.public_key)
    assert [schedule.key_of("a", h) for h in (0, 4, 5, 9)] == [
        old,
        old,
        NEW_KEY.public_key,
        NEW_KEY.public_key,
    ]
    assert schedule.members_at(5) == [("a", NEW_KEY.public_key), ("b", old[::-1])]
    with pytest.raises(ValueError, match="not after"):
        schedule.add("a", 4, bytes(32))
    with pytest.raises(ValueError, match="not a member"):
        schedule.add("c", 9, bytes(32))
    schedule.horizon = 7
    with pytest.raises(KeysNotYetKnown):
        schedule.key_of("b", 8)


def test_chain_commits_across_the_rotation_with_certificates_under_the_new_key() -> None:
    c = rotated_cluster()
    c.down.add("r3")  # every quorum then needs r1
    c.submit(40)
    c.run(400)
    assert min(c.heights()[name] for name in ("r0", "r1", "r2")) >= ROTATION_HEIGHT + 2
    assert all(not faults for faults in c.faults.values()), c.faults
    genesis_members = c.members
    schedule = KeySchedule(c.members)
    schedule.add("r1", ROTATION_HEIGHT, NEW_KEY.public_key)
    signed_by_r1_after = 0
    for delivered in c.chains["r0"]:
        cert = CommitCertificate.decode(delivered.certificate)
        cert.verify(CHAIN, schedule)
        if cert.height >= ROTATION_HEIGHT and "r1" in dict(cert.signatures):
            signed_by_r1_after += 1
            with pytest.raises(CertificateError, match="invalid signature by 'r1'"):
                cert.verify(CHAIN, genesis_members)
    assert signed_by_r1_after > 0


@pytest.mark.parametrize(
    ("height", "key", "refused"),
    [
        (ROTATION_HEIGHT - 1, "old", False),
        (ROTATION_HEIGHT - 1, "new", True),
        (ROTATION_HEIGHT, "old", True),
        (ROTATION_HEIGHT, "new", False),
        (ROTATION_HEIGHT + 1, "old", True),
    ],
)
def test_a_message_is_verified_with_the_key_valid_at_its_height(height: int, key: str, refused: bool) -> None:
    c = rotated_cluster()
    signing_key = NEW_KEY if key == "new" else c.keys["r1"]
    payload = m.sign(signing_key, CHAIN, m.Commit, "r1", view=0, height=height, digest=bytes(32)).encode()
    c.step("r2", Receive("r1", payload))
    kinds = [fault.kind for fault in c.faults["r2"]]
    assert kinds == (["bad-signature"] if refused else [])


def test_certificate_on_each_side_of_the_boundary_needs_that_sides_key() -> None:
    c = rotated_cluster()
    schedule = KeySchedule(c.members)
    schedule.add("r1", ROTATION_HEIGHT, NEW_KEY.public_key)

    def certificate(height: int, r1_key: SigningKey) -> CommitCertificate:
        keys = {"r0": c.keys["r0"], "r1": r1_key, "r2": c.keys["r2"]}
        body = {"view": 0, "height": height, "digest": bytes(32)}
        signatures = tuple(
            (name, m.sign(k, CHAIN, m.Commit, name, **body).signature) for name, k in keys.items()
        )
        return CommitCertificate(0, height, bytes(32), signatures)

    certificate(ROTATION_HEIGHT - 1, c.keys["r1"]).verify(CHAIN, schedule)
    certificate(ROTATION_HEIGHT, NEW_KEY).verify(CHAIN, schedule)
    for height, r1_key in ((ROTATION_HEIGHT - 1, NEW_KEY), (ROTATION_HEIGHT, c.keys["r1"])):
        with pytest.raises(CertificateError, match="'r1'"):
            certificate(height, r1_key).verify(CHAIN, schedule)


def test_messages_above_the_horizon_are_not_judged_but_show_the_sender_ahead() -> None:
    c = Cluster()
    c.step("r2", KeysLearned((), known_through=5))
    for sender in ("r0", "r1"):  # f + 1 = 2 members show height 9: r2 fetches, and blames no one
        forged = m.sign(NEW_KEY, CHAIN, m.Commit, sender, view=0, height=10, digest=bytes(32)).encode()
        c.step("r2", Receive(sender, forged))
    assert c.faults["r2"] == []
    assert c.fetches["r2"] and c.fetches["r2"][-1].to_height == 9


def test_a_replica_without_its_new_key_stays_silent_and_the_others_go_on() -> None:
    c = rotated_cluster(holds_new_key=False)
    c.submit(40)
    c.run(600)
    assert [f.kind for f in c.faults["r1"]] == ["no-signing-key"]
    assert all(fault.kind != "bad-signature" for name in ("r0", "r2", "r3") for fault in c.faults[name])
    assert min(c.heights()[name] for name in ("r0", "r2", "r3")) >= ROTATION_HEIGHT + 2


def test_catch_up_learns_a_rotation_from_an_earlier_block_before_checking_a_later_certificate() -> None:
    c = rotated_cluster()
    c.down.add("r3")
    c.submit(40)
    c.run(400)
    served = c.chains["r0"]
    assert len(served) >= ROTATION_HEIGHT + 1
    # r3 restarts knowing only the genesis keys, complete up to height 2 (executed 0 + delay 2).
    c.rotations, c.down = [], set()
    late = c.restart("r3")
    c.step("r3", KeysLearned((), known_through=2))
    for delivered in served[: ROTATION_HEIGHT + 1]:
        c.step("r3", SyncedBlock(delivered.height, delivered.block, delivered.certificate))
        # The driver's part: after executing block h, tell the replica what block h scheduled.
        rotations = (("r1", ROTATION_HEIGHT, NEW_KEY.public_key),) if delivered.height == 1 else ()
        c.step("r3", KeysLearned(rotations, known_through=delivered.height + 2))
    assert late.committed_height == ROTATION_HEIGHT + 1
    assert c.faults["r3"] == []


def test_view_change_messages_are_judged_at_the_next_height_they_name() -> None:
    vc = m.ViewChange("r1", b"", 1, 4, None, None, b"")
    assert signing_height(vc) == 5
    new_view = m.NewView("r0", b"", 1, (vc, m.ViewChange("r2", b"", 1, 6, None, None, b"")), 0, b"", b"", b"")
    assert signing_height(new_view) == 7
