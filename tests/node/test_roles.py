"""A node's part in consensus (roles.py), in-process: who gets consensus frames, and the switch."""

from __future__ import annotations

from dataclasses import replace

from lendchain.consensus import wal
from lendchain.crypto import read_key_file
from lendchain.node.config import load_node_config
from lendchain.node.daemon import Node
from lendchain.node.keyschedule import key_schedule
from lendchain.node.roles import consensus_peers
from lendchain.node.store import ChainStore
from lendchain.node.testnet import generate_testnet


def built(tmp_path, name: str, wal_records=()) -> Node:
    """``name`` of a testnet of four banks and regulator1, built (not started) on a store holding ``wal_records``."""
    layout = generate_testnet(tmp_path / "net", 4, observers=1)
    config = load_node_config(next(path for path in layout.configs if path.stem == name))
    if wal_records:
        store = ChainStore.open(config.data_dir, config.genesis, create=True)
        store.wal_write(list(wal_records))
        store.close()
    return Node(config, read_key_file(config.key_file))


def test_consensus_frames_go_to_the_voters_in_flight_and_to_members_voting_later(tmp_path):
    node = built(tmp_path, "bank1")
    try:
        schedule = key_schedule(node.genesis, node.store)
        banks = {"bank1", "bank2", "bank3", "bank4"}
        assert consensus_peers(schedule, 1) == banks
        schedule.set_voting("regulator1", 10, True)
        schedule.set_voting("bank4", 12, False)
        assert consensus_peers(schedule, 1) == banks | {"regulator1"}  # it hears the rounds before it votes
        assert consensus_peers(schedule, 11) == banks | {"regulator1"}
        assert consensus_peers(schedule, 12) == banks - {"bank4"} | {"regulator1"}
    finally:
        node.store.close()


def test_a_commit_that_ends_a_members_vote_switches_its_node_and_its_peers(tmp_path):
    node = built(tmp_path, "bank1")
    try:
        assert node.voting and node.replica is not None
        assert node.consensus_peers == {"bank2", "bank3", "bank4"}
        schedule = key_schedule(node.genesis, node.store)
        schedule.set_voting("regulator1", 3, True)
        schedule.set_voting("bank1", 5, False)
        node._review_role(1, schedule)  # committed 1: regulator1 hears the rounds from now on
        assert node.consensus_peers == {"bank2", "bank3", "bank4", "regulator1"}
        assert node.relay.voters == ["bank2", "bank3", "bank4", "regulator1"]
        assert node.voting and not node._role_changed.is_set()
        node._review_role(4, schedule)  # committed 4: bank1 does not vote at 5
        assert not node.voting and node._role_changed.is_set()
        assert node.voters == ["bank2", "bank3", "bank4", "regulator1"]
        assert node.metrics.voting._value.get() == 0
        assert node.metrics.voting_members._value.get() == 4
    finally:
        node.store.close()


def test_a_node_that_does_not_vote_clears_a_leftover_wal_and_a_voter_keeps_its_own(tmp_path):
    record = wal.view_record(3, False, 0, None)
    observer = built(tmp_path / "o", "regulator1", [record])
    try:
        assert observer.replica is None and observer.store.wal_items() == []
    finally:
        observer.store.close()
    voter = built(tmp_path / "v", "bank1", [record])
    try:
        assert voter.replica.view == 3 and voter.store.wal_items() == [record]
    finally:
        voter.store.close()


def test_a_node_whose_own_address_moved_follows_it_or_says_why_not(node, caplog, monkeypatch):
    moved: list[str] = []
    monkeypatch.setattr(node.network, "relisten", lambda address: moved.append(address) or True)
    node._move_listen_address("/ip4/127.0.0.1/tcp/47199")  # no [p2p] listen: it moves there
    assert moved == ["/ip4/127.0.0.1/tcp/47199"] and "peers dial only" not in caplog.text

    def cannot(address: str) -> bool:
        raise OSError(f"{address} is no IP address and TCP port to listen on")

    monkeypatch.setattr(node.network, "relisten", cannot)
    node._move_listen_address("/dns4/node2.bank1.example/tcp/47101")
    assert "the chain now records /dns4/node2.bank1.example/tcp/47101 as this node's address" in caplog.text
    assert "it cannot listen there (/dns4/node2.bank1.example/tcp/47101 is no IP address" in caplog.text
    caplog.clear()
    node.config = replace(node.config, p2p_listen_from_chain=False)  # an explicit [p2p] listen stays
    node._move_listen_address("/ip4/10.0.0.9/tcp/47101")
    assert f"[p2p] listen is {node.network.listen_address}: start the node where" in caplog.text
