"""ops/prometheus-alerts.yml names only series a node exports, and every rule says what to do."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import yaml

from lendchain.node.cluster import Cluster, free_port_block
from lendchain.node.testnet import generate_testnet

pytestmark = pytest.mark.slow
RULES = Path(__file__).resolve().parents[2] / "ops" / "prometheus-alerts.yml"
SERIES = re.compile(r"\b(?:lendchain|process)_[a-z0-9_]+\b")


def exported_series(text: str) -> set[str]:
    """The series names in a Prometheus text exposition: sampled, or declared by a ``# TYPE`` line.

    A labelled series (faults by member) has no sample until its first label set.
    """
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(line.split("{")[0].split(" ")[0])
    return names


def test_every_alert_names_series_a_running_node_exports(tmp_path):
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    assert len(rules) >= 9 and len({rule["alert"] for rule in rules}) == len(rules)
    for rule in rules:
        assert rule["annotations"]["summary"] and rule["annotations"]["action"], rule["alert"]
    named = {name for rule in rules for name in SERIES.findall(rule["expr"])}
    assert "lendchain_backup_timestamp_seconds" in named and "lendchain_p2p_members" in named

    p2p = free_port_block(4)
    layout = generate_testnet(tmp_path / "net", 4, p2p_base_port=p2p, api_base_port=p2p + 20)
    cluster = Cluster(list(layout.configs), tmp_path / "logs")
    cluster.start("bank1")  # alone: it exports every series, though it cannot commit
    try:
        cluster.wait_healthy(["bank1"], timeout_s=60)
        text = httpx.get(cluster["bank1"].url + "/metrics", timeout=10).text
    finally:
        cluster.stop_all()
    exported = exported_series(text)
    assert named <= exported, f"not exported: {sorted(named - exported)}"
    assert re.search(r"^lendchain_p2p_members 3(\.0)?$", text, re.M)  # the three other members
    assert re.search(r"^lendchain_backup_timestamp_seconds 0(\.0)?$", text, re.M)  # none yet: alerts
