"""The view-change timer gives a proposing primary a full timeout for its round, once per height."""

from lendchain.consensus import messages as m
from tests.consensus.harness import PARAMS, Cluster

T = PARAMS.view_change_timeout_ms  # 100 ms in the harness
BACKUPS = ["r1", "r2", "r3"]


def votes(sender: str, to: str, message: m.Message) -> bool:
    return isinstance(message, (m.Prepare, m.Commit))


def view_changes(c: Cluster) -> dict[str, int]:
    return {name: c.replicas[name].counters["view_changes"] for name in BACKUPS}


def late_proposal(c: Cluster) -> None:
    """Work is pending everywhere from t = 0, but the primary only proposes at t = 90."""
    c.submit()
    c.run(80, only=BACKUPS)  # the primary takes no step: no proposal yet, the backups' timers run
    assert view_changes(c) == {"r1": 0, "r2": 0, "r3": 0}
    c.run(10, drop=votes)  # t = 90: r0 proposes, every backup accepts the PRE-PREPARE
    assert all(1 in c.replicas[name]._preprepares for name in BACKUPS)
    assert c.heights() == {"r0": 0, "r1": 0, "r2": 0, "r3": 0}


def test_a_late_pre_prepare_gets_a_full_timeout_for_its_round():
    c = Cluster()
    late_proposal(c)
    # The round is slow (no votes get through) until t = 170: past the backups' original
    # deadline (work since t = 10, so t = 110), inside the restarted one (t = 190).
    c.run(80, drop=votes)
    assert c.heights() == {"r0": 0, "r1": 0, "r2": 0, "r3": 0}
    assert view_changes(c) == {"r1": 0, "r2": 0, "r3": 0}
    assert all(c.replicas[name].view == 0 for name in c.names)
    for _ in range(100):
        c.run(10)
        if min(c.heights().values()) >= 1:
            break
    assert c.heights() == {"r0": 1, "r1": 1, "r2": 1, "r3": 1}
    assert c.chains["r1"][0].height == 1


def test_the_timer_restarts_only_once_per_height():
    c = Cluster()
    late_proposal(c)
    # Votes never get through; the primary keeps re-sending its PRE-PREPARE. Only the first
    # one restarted the timer: the backups move to view 1 one timeout after it (t = 190).
    changed_at = {}
    for _ in range(20):
        c.run(10, drop=votes)
        for name, count in view_changes(c).items():
            if count and name not in changed_at:
                changed_at[name] = c.now
    assert set(changed_at) == set(BACKUPS)
    assert all(90 + T <= at <= 90 + T + 10 for at in changed_at.values()), changed_at
