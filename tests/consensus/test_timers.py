"""The view-change timer gives a proposing primary a full timeout for its round, once per height."""

from lendchain.consensus import messages as m
from lendchain.consensus.events import Tick
from tests.consensus.harness import PARAMS, Cluster

T = PARAMS.view_change_timeout_ms  # 100 ms in the harness
BACKUPS = ["r1", "r2", "r3"]


def votes(sender: str, to: str, message: m.Message) -> bool:
    return isinstance(message, (m.Prepare, m.Commit))


def view_changes(c: Cluster) -> dict[str, int]:
    return {name: c.replicas[name].counters["view_changes"] for name in BACKUPS}


def first_view_changes(c: Cluster, steps: int, drop, names: list[str]) -> dict[str, int]:
    """Run ``steps`` steps of 10 ms; the time each of ``names`` first left its view."""
    changed_at: dict[str, int] = {}
    for _ in range(steps):
        c.run(10, drop=drop)
        for name in names:
            if c.replicas[name].counters["view_changes"] and name not in changed_at:
                changed_at[name] = c.now
    return changed_at


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
    changed_at = first_view_changes(c, 20, votes, BACKUPS)
    assert set(changed_at) == set(BACKUPS)
    assert all(90 + T <= at <= 90 + T + 10 for at in changed_at.values()), changed_at


def test_the_primary_gives_its_own_round_two_timeouts():
    """Nothing reaches the primary, so its round never commits there: it waits two timeouts.

    The backups committed without it. It still leaves in the end: a view only it
    believes in (it restarted from an old WAL) must not hold it forever.
    """
    c = Cluster()
    c.submit()
    to_primary = lambda sender, to, message: to == "r0"  # noqa: E731
    changed_at = first_view_changes(c, 30, to_primary, ["r0"]).get("r0")  # it proposes at t = 10
    assert c.heights() == {"r0": 0, "r1": 1, "r2": 1, "r3": 1}
    assert changed_at is not None and 10 + 2 * T <= changed_at <= 10 + 2 * T + 10, changed_at
    assert view_changes(c) == {"r1": 0, "r2": 0, "r3": 0}


def test_a_stalled_primary_follows_the_backups_into_the_next_view():
    """Votes are lost everywhere: the backups' timers move them on, and the primary follows."""
    c = Cluster()
    late_proposal(c)
    changed_at = first_view_changes(c, 20, votes, c.names)
    assert set(changed_at) == set(c.names)
    # The backups go one timeout after the PRE-PREPARE, the primary once their
    # VIEW-CHANGEs reach it: long before its own two timeouts.
    assert all(90 + T <= changed_at[name] <= 90 + T + 10 for name in BACKUPS), changed_at
    assert changed_at["r0"] < 90 + 2 * T
    assert all(c.replicas[name].view == 1 for name in c.names)


def backups_leave_view_0(stalls: dict[int, int] | None = None) -> set[int]:
    """Work pending from t = 0, a primary that never proposes: when the backups leave view 0.

    ``stalls`` maps a time to how late each backup's tick at that time comes
    (``Tick.stalled_ms``).
    """
    stalls = stalls or {}
    c = Cluster()
    c.submit()
    changed_at: dict[str, int] = {}
    for _ in range(40):
        c.now += 10
        for name in BACKUPS:
            c.step(name, Tick(c.now, stalls.get(c.now, 0)))
            if c.replicas[name].counters["view_changes"] and name not in changed_at:
                changed_at[name] = c.now
    assert set(changed_at) == set(BACKUPS)
    return set(changed_at.values())


def test_a_stall_of_the_backups_own_loop_is_not_counted_against_the_primary():
    # Work is seen at the first tick (t = 10): without a stall the backups leave at 10 + T.
    assert backups_leave_view_0() == {10 + T}
    # A tick 60 ms late at t = 80 gives the timer those 60 ms back.
    assert backups_leave_view_0({80: 60}) == {10 + T + 60}


def test_a_stall_gives_back_only_the_time_the_timer_had_run():
    # At t = 30 the timer has run 20 ms (since t = 10): a 90 ms stall gives back 20 ms.
    assert backups_leave_view_0({30: 90}) == {10 + T + 20}


def test_stalls_give_back_one_timeout_at_most_per_round():
    # 90 ms back at t = 100, then only the 10 ms left of one timeout at t = 150: a node
    # kept busy delays its view change by one timeout at most.
    assert backups_leave_view_0({100: 500, 150: 500}) == {10 + 2 * T}
