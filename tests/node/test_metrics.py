"""The node's /metrics exposition: process and store memory next to the node's own counters."""

from __future__ import annotations

from prometheus_client import generate_latest

from lendchain.node.metrics import NodeMetrics


def _value(text: str, name: str) -> float:
    line = next(ln for ln in text.splitlines() if ln.startswith(name + " "))
    return float(line.split()[-1])


def test_metrics_export_process_and_store_memory_with_the_network_counters():
    metrics = NodeMetrics()
    store_memory = [1234]
    metrics.attach(lambda: {"peers": 3}, None, lambda: store_memory[0])
    text = generate_latest(metrics.registry).decode()
    assert _value(text, "process_resident_memory_bytes") > 10 * 1024 * 1024  # this test process
    assert _value(text, "process_cpu_seconds_total") > 0
    assert _value(text, "lendchain_store_memory_bytes") == 1234
    assert _value(text, "lendchain_p2p_peers") == 3
    store_memory[0] = 5678  # read at each scrape, not at attach
    assert _value(generate_latest(metrics.registry).decode(), "lendchain_store_memory_bytes") == 5678


def test_without_a_store_only_the_network_counters_are_attached():
    metrics = NodeMetrics()
    metrics.attach(lambda: {"peers": 1})
    text = generate_latest(metrics.registry).decode()
    assert "lendchain_store_memory_bytes" not in text and _value(text, "lendchain_p2p_peers") == 1


def test_the_rules_in_force_and_an_upgrade_this_release_cannot_run_are_gauges():
    from lendchain import codec
    from lendchain.ledger.rules import RULES_KEY, RULES_VERSION
    from lendchain.ledger.state import MemoryState

    metrics = NodeMetrics()
    state = MemoryState()
    metrics.observe_rules(state, 10)
    text = generate_latest(metrics.registry).decode()
    assert _value(text, "lendchain_rules_version") == 1
    assert _value(text, "lendchain_rules_upgrade_needed_height") == 0
    # This release's newest version from 40, which it runs; the next one from 60, which it does not.
    state.apply({RULES_KEY: codec.pack([[40, RULES_VERSION], [60, RULES_VERSION + 1]])})
    metrics.observe_rules(state, 10)
    assert _value(generate_latest(metrics.registry).decode(), "lendchain_rules_upgrade_needed_height") == 60
