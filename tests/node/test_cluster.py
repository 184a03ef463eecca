"""Four real node processes on 127.0.0.1: agreement, faults, catch-up (issue 4).

One network is started for the module; every test leaves all four nodes
running and agreeing. Waiting is always on a condition with a deadline.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time

import httpx
import pytest

from lendchain.client import NodeError
from lendchain.crypto import SigningKey, read_key_file
from lendchain.node.cluster import Cluster, free_port_block, wait_for
from lendchain.node.testnet import generate_testnet
from tests.node.helpers import client, committed_everywhere, register

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    out = tmp_path_factory.mktemp("net")
    p2p = free_port_block(8)
    api = free_port_block(8, start=p2p + 20)
    layout = generate_testnet(out / "net", 4, p2p_base_port=p2p, api_base_port=api, observers=1)
    members = [c for c in layout.configs if c.stem.startswith("bank")]
    cluster = Cluster(members, out / "logs")
    cluster.observer_configs = [c for c in layout.configs if c not in members]
    cluster.use_fault_files(out)
    cluster.start_all()
    try:
        cluster.wait_healthy(timeout_s=90)
        cluster.wait_agree(timeout_s=60)
        yield cluster
    finally:
        cluster.stop_all()


def set_faults(cluster: Cluster, name: str, **faults) -> None:
    cluster.set_faults(name, **faults)


def kyc_member(cluster: Cluster) -> str:
    """The first member whose genesis roles include kyc (loan.apply needs its attestation)."""
    return next(m.name for m in cluster["bank1"].config.genesis.members if "kyc" in m.roles)


def primary_of(cluster: Cluster, names: list[str]) -> str:
    return cluster[names[0]].get("/status")["primary"]


def assert_same_chain(cluster: Cluster) -> None:
    """Every node holds the same blocks, state roots and certificate coverage up to the common head."""
    head = cluster.wait_agree(timeout_s=60)
    for height in range(1, head["height"] + 1):
        blocks = [cluster[n].get(f"/blocks/{height}") for n in cluster.names]
        assert len({b["hash"] for b in blocks}) == 1, f"fork at height {height}"
        for b in blocks:
            assert len(b["certificate"]["signers"]) >= 3


def test_tx_sent_with_the_cli_commits_on_all_four_with_one_history(net, tmp_path):
    key_path = tmp_path / "alice.key"
    subprocess.run([sys.executable, "-m", "lendchain", "keys", "new", str(key_path)], check=True)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lendchain",
            "--json",
            "tx",
            "send",
            "party.register",
            '{"role": "borrower"}',
            "--key",
            str(key_path),
            "--node",
            net["bank1"].url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["status"] == "committed"
    committed_everywhere(net, [status["id"]], net.names)
    heads = {n: net[n].get("/status") for n in net.names}
    assert len({(h["height"], h["head_hash"], h["state_root"]) for h in heads.values()}) == 1
    assert_same_chain(net)


def test_txs_submitted_to_different_nodes_all_commit(net):
    tx_ids = []
    for name in net.names:
        with client(net, name) as c:
            tx_ids += [register(c) for _ in range(5)]
    committed_everywhere(net, tx_ids, net.names)
    # What an operator sizes a node by is on /metrics: the process's memory and the store's part.
    for name in net.names:
        text = httpx.get(net[name].url + "/metrics", timeout=5).text
        rss = re.search(r"^process_resident_memory_bytes (\S+)$", text, re.M)
        store = re.search(r"^lendchain_store_memory_bytes (\S+)$", text, re.M)
        assert rss and store and 0 < float(store.group(1)) < float(rss.group(1))


def test_a_bad_transaction_is_refused_with_a_reason_and_nothing_is_lost(net):
    with client(net, "bank2") as c:
        response = httpx.post(net["bank2"].url + "/txs", json={"tx": "c0ffee"}, timeout=5)
        assert response.status_code == 400
        body = response.json()
        assert body["status"] == "rejected"
        assert body["code"] == "malformed" and body["message"]
        good = register(c)
    committed_everywhere(net, [good], ["bank2"])


def _load(cluster: Cluster, names: list[str], stop: threading.Event, sent: list[str]) -> None:
    i = 0
    while not stop.is_set():
        name = names[i % len(names)]
        i += 1
        try:
            with client(cluster, name) as c:
                sent.append(register(c))
        except (NodeError, httpx.HTTPError):
            pass  # a node being killed; the tx was not accepted so it is not counted
        time.sleep(0.05)


def test_killing_the_primary_under_load_changes_view_and_loses_nothing(net):
    primary = primary_of(net, net.names)
    others = [n for n in net.names if n != primary]
    view_before = net[others[0]].get("/status")["view"]
    stop, sent = threading.Event(), []
    loader = threading.Thread(target=_load, args=(net, others, stop, sent))
    loader.start()
    try:
        wait_for(lambda: len(sent) >= 10, 30, "10 txs accepted before the kill")
        net.kill(primary)
        wait_for(
            lambda: all(net[n].get("/status")["view"] > view_before for n in others),
            60,
            f"a view change away from {primary}",
        )
        height = max(net.heights(others).values())
        net.wait_height(height + 2, others, timeout_s=60)
    finally:
        stop.set()
        loader.join()
    for name in others:  # the operator can read when and why the primary moved
        log = net.nodes[name].log_path.read_text(errors="replace")
        assert f"view change: leaving view {view_before} for view" in log, net.nodes[name].log_tail()
        installed = re.findall(r"view (\d+) installed: primary (\S+),", log)
        assert any(int(view) > view_before and new != primary for view, new in installed), installed
    net.start(primary)
    net.wait_healthy([primary])
    committed_everywhere(net, sent, net.names, timeout_s=90)
    assert_same_chain(net)
    # Back, it joins the view its fetched blocks were committed in and votes there at once: with
    # another member down, it is one of the three that commit, and no further view change is needed.
    view = net[others[0]].get("/status")["view"]
    wait_for(lambda: net[primary].get("/status")["view"] == view, 30, f"{primary} to join view {view}")
    backup = next(n for n in others if n != net[others[0]].get("/status")["primary"])
    net.stop(backup)
    try:
        alive = [n for n in net.names if n != backup]
        with client(net, alive[0]) as c:
            tx_ids = [register(c) for _ in range(5)]
        committed_everywhere(net, tx_ids, alive, timeout_s=60)
        assert {net[n].get("/status")["view"] for n in alive} == {view}
    finally:
        net.start(backup)
        net.wait_healthy([backup])
    assert_same_chain(net)


def test_a_restarted_follower_catches_up_from_its_peers(net):
    primary = primary_of(net, net.names)
    follower = next(n for n in net.names if n != primary)
    others = [n for n in net.names if n != follower]
    net.stop(follower)
    with client(net, others[0]) as c:
        tx_ids = [register(c) for _ in range(20)]
    committed_everywhere(net, tx_ids, others)
    net.start(follower)
    net.wait_healthy([follower])
    committed_everywhere(net, tx_ids, [follower])
    assert_same_chain(net)


def test_a_partitioned_node_catches_up_after_the_partition_heals(net):
    isolated = net.names[-1]
    others = [n for n in net.names if n != isolated]
    set_faults(net, isolated, isolate=True)
    try:
        with client(net, others[0]) as c:
            tx_ids = [register(c) for _ in range(10)]
        committed_everywhere(net, tx_ids, others)
        assert net[isolated].get("/status")["height"] < net[others[0]].get("/status")["height"]
    finally:
        set_faults(net, isolated)
    committed_everywhere(net, tx_ids, [isolated], timeout_s=90)
    assert_same_chain(net)


def test_with_two_of_four_cut_off_nothing_commits_and_nothing_forks(net):
    cut = net.names[2:]
    alive = net.names[:2]
    for name in cut:
        set_faults(net, name, isolate=True)
    try:
        height = max(net.heights().values())
        with client(net, alive[0]) as c:
            tx_id = register(c)
        # No quorum (2 of 4 < 2f+1 = 3): the tx must stay pending, observed over a few seconds.
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            assert all(h <= height for h in net.heights().values())
            with client(net, alive[0]) as c:
                assert c.tx(tx_id)["status"] == "pending"
            time.sleep(0.2)
    finally:
        for name in cut:
            set_faults(net, name)
    committed_everywhere(net, [tx_id], net.names, timeout_s=120)
    assert_same_chain(net)


def test_gossip_loss_does_not_lose_accepted_transactions(net):
    for name in net.names:
        set_faults(net, name, gossip_drop=0.6)
    try:
        tx_ids = []
        for name in net.names:
            with client(net, name) as c:
                tx_ids += [register(c) for _ in range(5)]
        committed_everywhere(net, tx_ids, net.names, timeout_s=240)
    finally:
        for name in net.names:
            set_faults(net, name)


def test_txs_reach_a_primary_whose_gossip_is_cut_without_a_view_change(net):
    """Relays (relay.py) go around gossip: the primary hears of no tx by gossip, yet orders them."""
    primary = primary_of(net, net.names)
    view = net[primary].get("/status")["view"]
    backups = [n for n in net.names if n != primary]
    set_faults(net, primary, gossip_drop=1.0)
    try:
        tx_ids = []
        for name in backups:
            with client(net, name) as c:
                tx_ids += [register(c) for _ in range(3)]
        committed_everywhere(net, tx_ids, net.names, timeout_s=60)
        # Nobody moved past the primary's view (a member cut off by an earlier test may still
        # be in an older one: it follows by catch-up until the next view change).
        assert max(net[n].get("/status")["view"] for n in net.names) == view
        assert net[primary].get("/status")["primary"] == primary
        text = httpx.get(net[primary].url + "/metrics", timeout=5).text
        relayed_in = re.search(r'^lendchain_relayed_txs_total\{direction="in"\} (\S+)$', text, re.M)
        assert relayed_in and float(relayed_in.group(1)) >= len(tx_ids)
    finally:
        set_faults(net, primary)


def test_an_observer_follows_the_chain_read_only(net, tmp_path):
    observer = Cluster(net.observer_configs, tmp_path / "logs")
    name = observer.names[0]
    observer.start(name)
    try:
        observer.wait_healthy()
        with client(net, "bank1") as c:
            tx_id = register(c)
        committed_everywhere(net, [tx_id], net.names)
        target = net["bank1"].get("/status")["height"]
        observer.wait_height(target, timeout_s=60)
        status = observer[name].get("/status")
        assert status["role"] == "observer"
        assert status["view"] is None
        block = observer[name].get(f"/blocks/{target}")
        assert block["hash"] == net["bank1"].get(f"/blocks/{target}")["hash"]
    finally:
        observer.stop_all()


def test_a_process_with_a_key_outside_the_genesis_cannot_join(net, tmp_path):
    """An outsider that believes it is a member: the real members refuse it after the handshake."""
    import tomli_w

    from lendchain.crypto import write_key_file
    from lendchain.node.config import load_genesis

    real = load_genesis(net["bank1"].config.genesis_path)
    outsider_key = SigningKey.generate()
    write_key_file(tmp_path / "outsider.key", outsider_key)
    port = free_port_block(2, start=net["bank1"].config.api_port + 100)
    fake = real.to_toml_doc()
    # Listed as an observer in its own copy of the genesis, so the outsider's node starts and dials.
    fake.setdefault("observers", []).append(
        {
            "name": "outsider",
            "public_key": outsider_key.public_key.hex(),
            "address": f"/ip4/127.0.0.1/tcp/{port + 1}",
            "roles": ["regulator"],
        }
    )
    (tmp_path / "genesis.toml").write_text(tomli_w.dumps(fake))
    (tmp_path / "outsider.toml").write_text(
        tomli_w.dumps(
            {
                "name": "outsider",
                "genesis": "genesis.toml",
                "key_file": "outsider.key",
                "data_dir": "data",
                "api": {"listen": f"127.0.0.1:{port + 2}"},
            }
        )
    )
    outsider = Cluster([tmp_path / "outsider.toml"], tmp_path / "logs")
    outsider.start("outsider")
    try:
        outsider.wait_healthy()

        def refused() -> bool:
            text = httpx.get(net["bank1"].url + "/metrics", timeout=5).text
            line = next(ln for ln in text.splitlines() if ln.startswith("lendchain_p2p_rejected_peers"))
            return float(line.split()[-1]) >= 1

        wait_for(refused, 30, "bank1 to count a refused peer")
        assert outsider["outsider"].get("/status")["peers"] == []
        for name in net.names:
            assert "outsider" not in net[name].get("/status")["peers"]
    finally:
        outsider.stop_all()


def test_a_loan_walked_through_its_life_with_the_cli_on_different_nodes(net, tmp_path):
    from click.testing import CliRunner

    from lendchain.cli import main

    runner = CliRunner()

    def cli(*args: str, node: str) -> dict:
        result = runner.invoke(main, ["--json", *args, "--node", net[node].url])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    borrower = str(tmp_path / "borrower.key")
    lender = str(net["bank2"].config.key_file)
    created = runner.invoke(main, ["--json", "keys", "new", borrower])
    assert created.exit_code == 0, created.output
    cli("party", "register", "--role", "borrower", "--key", borrower, node="bank1")
    # A bank with the kyc role attests the borrower before it may apply.
    bank = kyc_member(net)
    attest = [
        "kyc",
        "attest",
        json.loads(created.output)["did"],
        "--level",
        "2",
        "--evidence-hash",
        "ab" * 32,
    ]
    cli(*attest, "--key", str(net[bank].config.key_file), node=bank)
    loan_id = cli(
        "loan",
        "apply",
        "--amount",
        "500000",
        "--currency",
        "EUR",
        "--term",
        "6",
        "--purpose",
        "equipment",
        "--key",
        borrower,
        node="bank1",
    )["id"]
    offer_id = cli("loan", "offer", loan_id, "--rate-bps", "900", "--key", lender, node="bank2")["id"]
    cli("loan", "accept", loan_id, offer_id, "--key", borrower, node="bank3")
    disbursed = cli("loan", "disburse", loan_id, "--key", lender, node="bank4")["id"]
    # A node answers from what it has committed, which may be a block behind the one that
    # confirmed the tx: read elsewhere only once the reader has it too.
    committed_everywhere(net, [disbursed], ["bank1"])
    loan = cli("loan", "show", loan_id, node="bank1")
    payment = loan["schedule"][0]["payment"]
    repaid = cli("loan", "repay", loan_id, "--amount", str(payment), "--key", lender, node="bank2")["id"]
    committed_everywhere(net, [repaid], ["bank3"])
    loan = cli("loan", "show", loan_id, node="bank3")
    assert loan["state"] == "repaying"
    assert loan["principal_paid"] + loan["interest_paid"] == payment

    # The borrower cannot disburse its own loan: refused with a reason, exit code 1.
    result = runner.invoke(main, ["loan", "disburse", loan_id, "--key", borrower, "--node", net["bank1"].url])
    assert result.exit_code == 1
    assert "forbidden" in result.output or "invalid_state" in result.output


def test_a_regulator_exports_a_loan_and_verifies_it_offline_against_the_genesis(net, tmp_path):
    from click.testing import CliRunner

    from lendchain.cli import main

    runner = CliRunner()
    borrower = SigningKey.generate()
    lender = read_key_file(net["bank2"].config.key_file)
    attester = read_key_file(net[kyc_member(net)].config.key_file)
    with client(net, "bank1") as c:
        c.send(borrower, "party.register", {"role": "borrower"})
        far = int(time.time() * 1000) + 86_400_000
        kyc = {"subject": borrower.did, "level": 2, "expires_ms": far, "evidence_hash": "cd" * 32}
        c.send(attester, "kyc.attest", kyc)
        loan_id = c.send(
            borrower,
            "loan.apply",
            {"amount": 90_000, "currency": "EUR", "term_months": 3, "purpose": "audit"},
        )["id"]
        offer_id = c.send(lender, "loan.offer", {"loan_id": loan_id, "rate_bps": 500})["id"]
    committed_everywhere(net, [offer_id], ["bank3"])  # the node the export reads from
    out = tmp_path / "loan.json"
    result = runner.invoke(main, ["audit", "export", loan_id, "--out", str(out), "--node", net["bank3"].url])
    assert result.exit_code == 0, result.output
    genesis = str(net["bank1"].config.genesis_path)
    verified = runner.invoke(main, ["--json", "audit", "verify", str(out), "--genesis", genesis])
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.output)["entries"] == 2
    # One flipped character in the export and it no longer verifies.
    doc = json.loads(out.read_text())
    entry = doc["entries"][0]
    key = next(k for k, v in entry.items() if isinstance(v, str) and len(v) > 64)
    entry[key] = ("0" if entry[key][10] != "0" else "1").join([entry[key][:10], entry[key][11:]])
    out.write_text(json.dumps(doc))
    tampered = runner.invoke(main, ["audit", "verify", str(out), "--genesis", genesis])
    assert tampered.exit_code == 1
    assert "does not verify" in tampered.output
