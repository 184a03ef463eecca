"""Deterministic simulation: many seeds, safety after every delivery, liveness after healing.

CI runs ``LENDCHAIN_SIM_SEEDS`` seeds (default 500) across n = 4 and 7 with
mixed Byzantine kinds, crashes, drops, duplicates and partitions. For a long
run: ``LENDCHAIN_SIM_SEEDS=20000 python -m pytest tests/consensus/test_simulation.py``
or ``python -m lendchain.sim --seeds 20000``. A failure names its seed; replay
it with ``python -m lendchain.sim --start SEED --seeds 1``.
"""

from __future__ import annotations

import os

import pytest

from lendchain import codec
from lendchain.consensus.certificate import CommitCertificate
from lendchain.consensus.events import Deliver
from lendchain.consensus.quorum import tag
from lendchain.sim.__main__ import config_for_seed, run_seed
from lendchain.sim.cluster import CHAIN_ID, SafetyViolation, SimConfig, Simulation

SEEDS = int(os.environ.get("LENDCHAIN_SIM_SEEDS", "500"))
CHUNK = 50


@pytest.mark.slow
@pytest.mark.parametrize("start", range(0, SEEDS, CHUNK))
def test_seeds_are_safe_and_live(start: int) -> None:
    failures = []
    for seed in range(start, min(start + CHUNK, SEEDS)):
        try:
            run_seed(seed)
        except AssertionError as e:
            failures.append(f"{type(e).__name__}: {e}")
    assert not failures, "\n".join(failures)


def test_a_seed_replays_exactly() -> None:
    first, second = run_seed(3), run_seed(3)
    assert first.messages == second.messages
    assert {n: node.chain for n, node in first.nodes.items()} == {
        n: node.chain for n, node in second.nodes.items()
    }


def test_every_byzantine_kind_is_exercised_in_ci() -> None:
    kinds = {kind for seed in range(min(SEEDS, 500)) for kind in config_for_seed(seed).byzantine.values()}
    from lendchain.sim.byzantine import KINDS

    assert kinds == set(KINDS)


def test_ci_seeds_promote_both_observers_and_admitted_members() -> None:
    promoted = {
        config_for_seed(seed).voting_changes[0][0]
        for seed in range(min(SEEDS, 500))
        if config_for_seed(seed).voting_changes
    }
    assert promoted == {"o0", "a0"}


def test_the_checker_catches_a_conflicting_delivery() -> None:
    """The safety check itself must be able to fail."""
    sim = Simulation(1, SimConfig(fault_ms=300, liveness_ms=3000))
    sim.run()
    node = sim.nodes["m1"]
    height = len(node.chain)

    digest, block, certificate = sim.nodes["m0"].chain[height - 1]
    node.chain.pop()
    # A conflicting block with a certificate signed by every key: only a broken protocol could produce it.
    other = b"another block"
    other_digest = codec.sha256(other)
    body = [0, height, other_digest]
    signatures = tuple((name, sim.keys[name].sign(tag("commit"), CHAIN_ID, body)) for name in sim.names)
    forged = CommitCertificate(0, height, other_digest, signatures).encode()
    with pytest.raises(SafetyViolation, match="conflicts"):
        sim._deliver(node, Deliver(height, other, other_digest, forged))
    with pytest.raises(SafetyViolation, match="not contiguous"):
        sim._deliver(node, Deliver(height + 5, block, digest, certificate))
    with pytest.raises(SafetyViolation, match="another block"):
        sim._deliver(node, Deliver(height, block, other_digest, certificate))


def test_more_byzantine_members_than_f_is_refused() -> None:
    with pytest.raises(ValueError, match="tolerate 1"):
        Simulation(0, SimConfig(n=4, byzantine={"m0": "silent", "m1": "silent"}))
    # A demotion to n = 3 leaves f = 0 from its height: one Byzantine member is too many then.
    with pytest.raises(ValueError, match="tolerate 0"):
        Simulation(0, SimConfig(n=4, byzantine={"m0": "silent"}, voting_changes=(("m3", 5, False),)))
