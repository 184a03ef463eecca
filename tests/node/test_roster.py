"""CommittedRoster: the members' keys and votes a node reads after every block, kept between blocks.

The driver (``keys_learned``) and the daemon's commit listener read them after
each commit; only a block that writes one of their state keys changes them, so
the roster reads the state again only after such a block, and then agrees with
a fresh read.
"""

from __future__ import annotations

from lendchain import codec
from lendchain.ledger.state import ADMITTED_KEY, PARAMS_KEY, get_params, institution_key
from lendchain.node.keyschedule import ROSTER_KEYS, CommittedRoster, key_schedule, keys_learned, member_keys
from tests.ledger.chain import seeded_key
from tests.ledger.test_observer_rotation import observer_world, rotate
from tests.node.test_admission import commit_pending, registration


class CountedReads:
    """A state reader that lists the keys read through it."""

    def __init__(self, state) -> None:
        self.state = state
        self.keys: list[bytes] = []

    def get(self, key: bytes) -> bytes | None:
        self.keys.append(key)
        return self.state.get(key)


def follow(chain, roster: CommittedRoster, first_block: int) -> None:
    """What a node's commits do: the roster hears each block's changes once it is stored."""
    for _, execution in chain.blocks[first_block:]:
        roster.after_commit(execution.changes)


def agrees(roster: CommittedRoster, chain) -> bool:
    fresh = key_schedule(chain.genesis, chain.state)
    return roster.keys_learned(chain.height) == keys_learned(chain.state, chain.height) and member_keys(
        roster.schedule
    ) == member_keys(fresh)


def test_the_roster_is_not_read_after_a_block_that_writes_none_of_its_keys_and_follows_a_rotation():
    chain, members, _ = observer_world()
    reads = CountedReads(chain.state)
    roster = CommittedRoster(chain.genesis, reads)
    reads.keys.clear()
    done = len(chain.blocks)
    assert chain.run_one(chain.tx(seeded_key(5), "party.register", {"role": "borrower"})).ok
    follow(chain, roster, done)
    assert reads.keys == [] and agrees(roster, chain)

    new = seeded_key(78)
    done = len(chain.blocks)
    rotate(chain, members, chain.genesis.observers[0].did, "regulator", new)  # a proposal, two votes
    follow(chain, roster, done)
    assert set(ROSTER_KEYS) <= set(reads.keys)
    assert [(name, key) for name, _, key in roster.rotations] == [("regulator", new.public_key)]
    assert agrees(roster, chain)
    assert roster.keys_learned(chain.height).known_through == chain.height + roster.delay


def test_a_change_of_the_params_or_of_an_admitted_members_record_is_read_again():
    chain, _, _ = observer_world()
    roster = CommittedRoster(chain.genesis, chain.state)
    params = {**get_params(chain.state), "key_rotation_delay_blocks": roster.delay + 7}
    changes = {PARAMS_KEY: codec.pack(params)}
    chain.state.apply(changes)
    roster.after_commit(changes)
    assert (
        roster.keys_learned(chain.height).known_through == chain.height + params["key_rotation_delay_blocks"]
    )

    joined = seeded_key(90)
    record = {"name": "bank9", "public_key": joined.public_key, "address": "/ip4/127.0.0.1/tcp/47109"}
    changes = {
        ADMITTED_KEY: codec.pack([joined.did]),
        institution_key(joined.did): codec.pack({**record, "roles": []}),
    }
    chain.state.apply(changes)
    roster.after_commit(changes)
    assert roster.admitted == (("bank9", joined.public_key),)
    rekeyed = seeded_key(91)
    changes = {
        institution_key(joined.did): codec.pack({**record, "public_key": rekeyed.public_key, "roles": []})
    }
    chain.state.apply(changes)
    roster.after_commit(changes)  # the record alone, not the list of admitted members
    assert roster.admitted == (("bank9", rekeyed.public_key),) and agrees(roster, chain)


def test_a_node_reads_none_of_the_roster_after_an_ordinary_block(node, monkeypatch):
    """The commit listener and the replica's ``KeysLearned`` come from the roster the commit kept."""
    node.submit([registration(node, seeded_key(6)).encode()])
    commit_pending(node)
    reads: list[bytes] = []
    real_get = node.store.get
    monkeypatch.setattr(node.store, "get", lambda key: reads.append(key) or real_get(key))
    node._on_commit(1)
    learned = node.app.roster.keys_learned(1)
    assert not set(ROSTER_KEYS) & set(reads)
    assert learned == keys_learned(node.store, 1)
    assert node.app.roster.schedule.voters_at(2) == key_schedule(node.genesis, node.store).voters_at(2)


class HeadedReads(CountedReads):
    """A counted reader with a store's ``head()``: the chain's height."""

    def __init__(self, chain) -> None:
        super().__init__(chain.state)
        self.chain = chain

    def head(self):
        return type("Head", (), {"height": self.chain.height})()


def test_a_commit_that_went_around_the_roster_is_caught_up_at_the_next_one():
    chain, members, _ = observer_world()
    reads = HeadedReads(chain)
    roster = CommittedRoster(chain.genesis, reads)
    assert roster.height == chain.height
    reads.keys.clear()
    assert chain.run_one(chain.tx(seeded_key(5), "party.register", {"role": "borrower"})).ok
    roster.after_commit(chain.blocks[-1][1].changes, chain.height)  # the next height, nothing of ours
    assert reads.keys == [] and roster.height == chain.height

    new = seeded_key(78)
    rotate(chain, members, chain.genesis.observers[0].did, "regulator", new)  # the roster hears none
    assert not agrees(roster, chain)
    assert chain.run_one(chain.tx(seeded_key(6), "party.register", {"role": "borrower"})).ok
    changes = chain.blocks[-1][1].changes
    assert not any(key in changes for key in ROSTER_KEYS)  # this block alone would not make it read
    roster.after_commit(changes, chain.height)
    assert roster.height == chain.height and agrees(roster, chain)
    assert [(name, key) for name, _, key in roster.rotations] == [("regulator", new.public_key)]
