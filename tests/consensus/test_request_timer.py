"""The request timer: a primary that keeps committing but leaves one request out is deposed.

The no-progress timer restarts at every commit, so it never fires against
such a primary; the request timer (timers.py) watches the request each
backup's app says an honest primary orders first.
"""

from lendchain.consensus import messages as m
from lendchain.consensus.events import RelayRequest, Tick
from lendchain.consensus.timers import REQUEST_MAX_BACKLOG_TIMEOUTS, REQUEST_TIMEOUTS
from tests.consensus.harness import PARAMS, Cluster

T = PARAMS.view_change_timeout_ms  # 100 ms in the harness
BACKUPS = ["r1", "r2", "r3"]


class Recording(Cluster):
    """A cluster that remembers every RelayRequest its replicas emit, with the time."""

    def __init__(self) -> None:
        self.relays: list[tuple[int, str, RelayRequest]] = []
        super().__init__()

    def step(self, name, event):
        out = super().step(name, event)
        self.relays += [(self.now, name, a) for a in out if isinstance(a, RelayRequest)]
        return out


def busy_run(c: Cluster, ms: int) -> None:
    """Run ``ms`` with a fresh tx every 40 ms, so the primary always has something to commit."""
    for _ in range(ms // 40):
        c.submit()
        c.run(40)


def views(c: Cluster) -> dict[str, int]:
    return {name: r.view for name, r in c.replicas.items()}


def committed_txs(c: Cluster, name: str) -> set[bytes]:
    return c.apps[name].committed_txs


def report_backlog(c: Cluster, backlog_ms: int) -> None:
    """Make the backups' apps say ordering what may precede their oldest request takes ``backlog_ms``."""
    for name in BACKUPS:
        app = c.apps[name]
        app.oldest_request = lambda app=app: (app._pending(1)[0], backlog_ms) if app._pending(1) else None


def censored_tx(c: Cluster, censors: tuple[str, ...] = ("r0",)) -> bytes:
    """Submit one tx that ``censors`` leave out of their proposals."""
    c.submit()
    censored = c.workload.txs[-1]
    for name in censors:
        c.apps[name].censored = {censored}
    return censored


def test_a_primary_that_censors_one_request_is_deposed_and_the_request_commits():
    c = Recording()
    censored = censored_tx(c)
    busy_run(c, 360)
    # The primary commits the other txs: the no-progress timer never fires.
    assert min(c.heights().values()) >= 5
    assert censored not in committed_txs(c, "r1")
    assert views(c) == {"r0": 0, "r1": 0, "r2": 0, "r3": 0}
    busy_run(c, 400)
    assert all(c.replicas[name].counters["request_timeouts"] == 1 for name in BACKUPS)
    assert "primary r0 left it out" in c.replicas["r1"].view_change_cause
    assert all(view == 1 for view in views(c).values()), views(c)
    busy_run(c, 200)
    assert all(censored in committed_txs(c, name) for name in c.names)


def test_a_backup_relays_its_oldest_request_to_the_primary_after_half_a_timeout():
    c = Recording()
    censored = censored_tx(c)
    busy_run(c, 400)
    relays = [(name, a.to, a.request) for _, name, a in c.relays]
    assert sorted(relays) == [(name, "r0", censored) for name in BACKUPS]  # once per backup
    first_seen = 10  # the first tick
    assert all(T // 2 <= at - first_seen <= T // 2 + 40 for at, _, _ in c.relays), c.relays


def relay_then_view_change(c: Cluster, backlog_ms: int) -> None:
    """40 ms before the relay is due: no relay yet; every backup relays within 80 ms, and asks
    for a view change once ``REQUEST_TIMEOUTS`` timeouts and twice the backlog have passed."""
    assert c.relays == []
    busy_run(c, 80)
    assert {name for _, name, _ in c.relays} == set(BACKUPS)
    busy_run(c, REQUEST_TIMEOUTS * T + 2 * backlog_ms - (T // 2 + backlog_ms + 40) - 80)
    assert views(c) == {"r0": 0, "r1": 0, "r2": 0, "r3": 0}
    busy_run(c, 160)
    assert all(c.replicas[name].view == 1 for name in BACKUPS), views(c)


def test_the_relay_waits_for_the_backlog_and_the_deadline_allows_twice_it():
    c = Recording()
    censored_tx(c)
    report_backlog(c, 300)
    busy_run(c, T // 2 + 300 - 40)
    relay_then_view_change(c, backlog_ms=300)


def test_an_honest_primary_under_steady_load_is_never_deposed():
    c = Recording()
    busy_run(c, 3000)
    assert all(r.counters["request_timeouts"] == 0 for r in c.replicas.values())
    assert views(c) == {"r0": 0, "r1": 0, "r2": 0, "r3": 0}
    assert c.relays == []
    assert min(c.heights().values()) >= 70


def test_the_primary_runs_no_request_timer_against_itself():
    c = Cluster()
    censored_tx(c, censors=tuple(c.names))  # every member would leave it out: only backups may complain
    busy_run(c, 480)
    assert c.replicas["r0"].counters["request_timeouts"] == 0
    assert all(c.replicas[name].counters["request_timeouts"] == 1 for name in BACKUPS)


def test_when_nothing_commits_the_relay_does_not_wait_for_the_backlog():
    """A backlog that does not move says nothing about the primary: relay before the no-progress timer."""
    c = Recording()
    censored_tx(c)
    report_backlog(c, 300)
    c.run(T // 2 + 20)
    assert {name for _, name, _ in c.relays} == set(BACKUPS)
    assert all(at <= 10 + T // 2 + 10 for at, _, _ in c.relays), c.relays
    assert views(c) == {"r0": 0, "r1": 0, "r2": 0, "r3": 0}


def test_a_slow_round_is_not_taken_for_an_idle_primary():
    """A PRE-PREPARE is here but its votes are slow: the relay waits for the backlog after all."""
    c = Recording()
    c.submit()
    report_backlog(c, 300)
    c.run(T - 10, drop=lambda sender, to, message: not isinstance(message, m.PrePrepare))
    assert all(1 in c.replicas[name]._preprepares for name in BACKUPS)
    assert c.heights() == {"r0": 0, "r1": 0, "r2": 0, "r3": 0}
    assert c.relays == []


def test_the_backlog_allowance_is_capped():
    """A primary that drives the measured rate down cannot stretch the deadline without end."""
    c = Cluster()
    censored_tx(c)
    report_backlog(c, 10**9)  # what a rate of almost nothing would give
    cap = REQUEST_MAX_BACKLOG_TIMEOUTS * T
    busy_run(c, REQUEST_TIMEOUTS * T + 2 * cap - 80)
    assert views(c) == {"r0": 0, "r1": 0, "r2": 0, "r3": 0}
    busy_run(c, 160)
    assert all(c.replicas[name].view == 1 for name in BACKUPS), views(c)


class Stalling(Cluster):
    """A cluster whose backups say every tick of theirs came ``stall_ms`` late (Tick.stalled_ms)."""

    def __init__(self, stall_ms: int) -> None:
        self.stall_ms = stall_ms
        super().__init__()

    def step(self, name, event):
        if isinstance(event, Tick) and name in BACKUPS:
            event = Tick(event.now_ms, self.stall_ms)
        return super().step(name, event)


def request_timeout_at(c: Cluster) -> int:
    """Run with the censored tx pending until every backup's request timer fired; when."""
    censored_tx(c)
    for _ in range(60):
        busy_run(c, 40)
        if all(c.replicas[name].counters["request_timeouts"] for name in BACKUPS):
            return c.now
    raise AssertionError("the request timer never fired")


def test_stalls_delay_the_request_timer_by_one_timeout_at_most_while_blocks_commit():
    # Backups that stall a little on every tick get time back in every round, as blocks
    # commit; the request timer keeps its own account, so a censoring primary gains one
    # timeout from them, not one per block.
    plain = request_timeout_at(Cluster())
    stalled = request_timeout_at(Stalling(stall_ms=5))
    assert plain < stalled <= plain + T + 40


def report_changing_backlog(c: Cluster) -> dict[str, int]:
    """Like ``report_backlog``, with the backlog read from the dict returned at every scan."""
    backlog = {"ms": 0}
    for name in BACKUPS:
        app = c.apps[name]
        app.oldest_request = lambda app=app: (app._pending(1)[0], backlog["ms"]) if app._pending(1) else None
    return backlog


def test_a_backlog_that_grows_while_the_request_waits_moves_the_relay_and_the_deadline():
    """The pool fills behind the watched request (a start-up burst): the relay and the view
    change wait for the backlog as it is now, as if it had been there when the watch began."""
    c = Recording()
    censored_tx(c)
    backlog = report_changing_backlog(c)
    busy_run(c, 40)  # the watch began with no backlog: its relay was due at half a timeout
    backlog["ms"] = 300
    busy_run(c, T // 2 + 300 - 80)
    relay_then_view_change(c, backlog_ms=300)


def test_a_backlog_that_shrinks_does_not_bring_the_relay_forward():
    c = Recording()
    censored_tx(c)
    backlog = report_changing_backlog(c)
    backlog["ms"] = 300
    busy_run(c, 40)
    backlog["ms"] = 0
    busy_run(c, T // 2 + 300 - 80)
    assert c.relays == []
    busy_run(c, 80)
    assert {name for _, name, _ in c.relays} == set(BACKUPS)


def test_a_growing_backlog_is_capped_as_a_fixed_one():
    """Raising the estimate while the request waits stretches the deadline no further than the cap."""
    c = Cluster()
    censored_tx(c)
    backlog = report_changing_backlog(c)
    busy_run(c, 40)
    backlog["ms"] = 10**9
    cap = REQUEST_MAX_BACKLOG_TIMEOUTS * T
    busy_run(c, REQUEST_TIMEOUTS * T + 2 * cap - 120)
    assert views(c) == {"r0": 0, "r1": 0, "r2": 0, "r3": 0}
    busy_run(c, 160)
    assert all(c.replicas[name].view == 1 for name in BACKUPS), views(c)
