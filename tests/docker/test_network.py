"""The 4-bank network in containers: a loan, a stopped primary, a partition, two kills, down/up.

One network (project ``lendchain-test`` on 10.201.0.0/24, APIs on free
127.0.0.1 ports, the read-only regulator1 beside the four banks) is started for the module and removed with its volumes at the end. Every test
leaves all four nodes running and agreeing; every wait is on a condition
with a deadline.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from lendchain.client import NodeClient, NodeError
from lendchain.crypto import SigningKey, read_key_file
from lendchain.node import dockernet
from lendchain.node.config import load_genesis
from lendchain.node.dockernet import DockerNet, DockerNetError, run_docker, wait_for
from tests.docker.conftest import free_ports

pytestmark = pytest.mark.docker

NODES = list(dockernet.NODES)


@pytest.fixture(scope="module")
def net(node_image, tmp_path_factory):
    network = DockerNet(
        tmp_path_factory.mktemp("docker") / "network",
        project="lendchain-test",
        api_ports=free_ports(5),
        image=node_image,
        observer=True,
        subnet="10.201.0.0/24",  # not the default, so a demo network may run beside the tests
    )
    network.compose("down", "--remove-orphans", "--volumes")  # leftovers of an interrupted run
    start = time.monotonic()
    try:
        network.up(timeout_s=120)
        print(f"4 nodes answering {time.monotonic() - start:.0f} s after compose up")
        yield network
    except BaseException:
        print(network.logs(tail=40))
        raise
    finally:
        network.down(volumes=True)


@pytest.fixture(scope="module")
def committed() -> list[str]:
    """Ids of txs seen committed so far; later tests check they survive every fault."""
    return []


def register(c: NodeClient) -> str:
    """Submit one party registration from a fresh key; returns its tx id."""
    tx = c.build(SigningKey.generate(), "party.register", {"role": "borrower"}, nonce=0)
    c.submit(tx)
    return tx.id.hex()


def kyc_attester(net: DockerNet) -> SigningKey:
    """The key of the first bank whose genesis roles include kyc: it onboards borrowers."""
    genesis = load_genesis(net.network_dir / "genesis.toml")
    name = next(m.name for m in genesis.members if "kyc" in m.roles)
    return read_key_file(net.network_dir / "keys" / f"{name}.key")


def kyc_payload(subject: str) -> dict:
    """A level-2 KYC attestation valid for a day (block time is compared with ``expires_ms``)."""
    expires = int(time.time() * 1000) + 86_400_000
    return {"subject": subject, "level": 2, "expires_ms": expires, "evidence_hash": "ab" * 32}


def committed_everywhere(net: DockerNet, tx_ids: list[str], nodes: list[str], timeout_s: float = 60) -> None:
    """Wait until every node reports every tx committed (a node still catching up may not know it yet)."""
    for node in nodes:
        pending = list(tx_ids)

        def all_committed(node: str = node, pending: list[str] = pending) -> bool:
            while pending:
                status = net.client(node).tx(pending[0])  # 404 (not known yet) raises; wait_for retries
                if status["status"] != "committed":
                    assert status["status"] == "pending", (node, status)
                    return False
                pending.pop(0)
            return True

        try:
            wait_for(all_committed, timeout_s, f"{node} to report {len(tx_ids)} txs committed")
        except DockerNetError as e:  # say where the node stands and what it logged, for the next reader
            raise DockerNetError(f"{e}\n{node_report(net, node)}") from None


def node_report(net: DockerNet, node: str) -> str:
    try:
        status = json.dumps(net.client(node).get("/status"), sort_keys=True)
    except Exception as e:  # the node may be the thing that is broken
        status = f"unavailable ({e})"
    lines = [f"--- {node} /status: {status}"]
    for name in [node, *(n for n in NODES if n != node)]:
        try:
            logs = net.logs(name, tail=80 if name == node else 30)
        except Exception as e:
            logs = f"unavailable ({e})"
        lines.append(f"--- {name}'s last log lines:\n{logs}")
    return "\n".join(lines)


def assert_same_chain(net: DockerNet, nodes: list[str] = NODES) -> int:
    """All nodes report one head, and hold the same certified block at every height; returns the height."""

    def agreed() -> dict | None:
        heads = [net.node_status(n) for n in nodes]
        return heads[0] if len({(h["height"], h["head_hash"]) for h in heads}) == 1 else None

    head = wait_for(agreed, 60, f"{', '.join(nodes)} to agree on one head")
    for height in range(1, head["height"] + 1):
        blocks = [net.client(n).get(f"/blocks/{height}") for n in nodes]
        assert len({b["hash"] for b in blocks}) == 1, f"fork at height {height}"
        assert all(len(b["certificate"]["signers"]) >= 3 for b in blocks)
    return head["height"]


def primary(net: DockerNet, asked: str = "bank1") -> str:
    return net.node_status(asked)["primary"]


def test_all_four_healthy_and_a_loan_commits_on_all_with_one_block_hash(net, committed):
    def healthy() -> bool:
        return all(s.state == "running" and s.health == "healthy" for s in net.status())

    wait_for(healthy, 180, "docker to report all four containers healthy")

    def meshed() -> bool:  # healthy means serving; links to every member may still be coming up
        return all(set(NODES) - {s.name} <= set(s.peers) for s in net.status() if s.name in NODES)

    wait_for(meshed, 60, "every bank to be linked to the other three")
    bank1 = net.client("bank1")
    lender = read_key_file(net.network_dir / "keys" / "bank1.key")
    borrower = SigningKey.generate()
    steps = [bank1.send(borrower, "party.register", {"role": "borrower"})]
    steps.append(bank1.send(kyc_attester(net), "kyc.attest", kyc_payload(borrower.did)))
    apply = {"amount": 250_000, "currency": "EUR", "term_months": 24, "purpose": "working capital"}
    steps.append(bank1.send(borrower, "loan.apply", apply))
    loan_id = steps[-1]["id"]
    steps.append(bank1.send(lender, "loan.offer", {"loan_id": loan_id, "rate_bps": 950}))
    steps.append(bank1.send(borrower, "loan.accept", {"loan_id": loan_id, "offer_id": steps[-1]["id"]}))
    steps.append(bank1.send(lender, "loan.disburse", {"loan_id": loan_id}))
    committed.extend(s["id"] for s in steps)
    committed_everywhere(net, [s["id"] for s in steps], NODES)  # a node may not know a tx yet: 404
    for node in NODES:
        for step in steps:
            status = net.client(node).tx(step["id"])
            assert (status["height"], status["block_hash"]) == (step["height"], step["block_hash"]), node
        loan = net.client(node).get(f"/loans/{loan_id}")
        assert loan["state"] == "disbursed" and loan["outstanding_principal"] == 250_000
    assert_same_chain(net)


def test_the_host_cli_applies_for_a_loan_on_bank1_and_all_four_commit_it(net, committed, tmp_path):
    key = tmp_path / "borrower.key"
    node = ["--node", net.api_url("bank1"), "--token-file", str(net.network_dir / "api.token")]

    def cli(*args: str) -> dict:
        result = subprocess.run(
            [sys.executable, "-m", "lendchain", "--json", *args], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    subprocess.run(
        [sys.executable, "-m", "lendchain", "keys", "new", str(key)], check=True, capture_output=True
    )
    cli("tx", "send", *node, "--key", str(key), "party.register", '{"role": "borrower"}')
    # A bank with the kyc role attests the borrower with the CLI, as it would after its own checks.
    attester = next(
        m.name for m in load_genesis(net.network_dir / "genesis.toml").members if "kyc" in m.roles
    )
    attest = [
        "kyc",
        "attest",
        cli("keys", "show", str(key))["did"],
        "--level",
        "2",
        "--evidence-hash",
        "ab" * 32,
    ]
    attested = cli(*attest, *node, "--key", str(net.network_dir / "keys" / f"{attester}.key"))
    assert attested["status"] == "committed" and attested["result"]["code"] == "ok"
    apply = '{"amount": 80000, "currency": "EUR", "term_months": 6, "purpose": "equipment"}'
    applied = cli("tx", "send", *node, "--key", str(key), "loan.apply", apply)
    assert applied["status"] == "committed" and applied["result"]["code"] == "ok"
    committed_everywhere(net, [applied["id"]], NODES)
    hashes = {net.client(n).tx(applied["id"])["block_hash"] for n in NODES}
    assert hashes == {applied["block_hash"]}
    committed.append(applied["id"])


def test_the_regulator_follows_the_chain_read_only(net, committed):
    tx_id = register(net.client("bank2"))
    committed_everywhere(net, [tx_id], NODES)
    committed.append(tx_id)
    height = assert_same_chain(net)
    wait_for(
        lambda: net.node_status("regulator1")["height"] >= height, 60, "regulator1 to reach the banks' head"
    )
    assert net.node_status("regulator1")["role"] != "member"
    assert net.client("regulator1").get(f"/blocks/{height}")["hash"] == net.block_hash("bank1", height)
    committed_everywhere(net, committed, ["regulator1"])


def test_the_host_cli_backs_a_node_up_into_its_backup_volume(net, committed):
    node = ["--node", net.api_url("bank3"), "--token-file", str(net.network_dir / "api.token")]
    result = subprocess.run(
        [sys.executable, "-m", "lendchain", "--json", "backup", *node, "--name", "from-the-host"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["path"] == "/backups/from-the-host" and info["node"] == "bank3" and info["height"] >= 1
    inside = run_docker(
        ["docker", "exec", net.container("bank3"), "cat", "/backups/from-the-host/lendchain-backup.json"]
    )
    assert json.loads(inside.stdout)["head_hash"] == info["head_hash"]


def _load(net: DockerNet, nodes: list[str], stop: threading.Event, sent: list[str]) -> None:
    clients = [NodeClient(net.api_url(n), net.token(), timeout=5) for n in nodes]
    i = 0
    while not stop.is_set():
        try:
            sent.append(register(clients[i % len(clients)]))
        except NodeError:
            pass  # a node busy with the view change refuses or times out; the next try goes on
        i += 1
        time.sleep(0.05)
    for c in clients:
        c.close()


def test_docker_stop_of_the_primary_under_load_keeps_committing_and_it_catches_up(net, committed):
    leader = primary(net)
    others = [n for n in NODES if n != leader]
    view_before = net.node_status(others[0])["view"]
    stop, sent = threading.Event(), []
    loader = threading.Thread(target=_load, args=(net, others, stop, sent))
    loader.start()
    try:
        wait_for(lambda: len(sent) >= 10, 30, "10 txs accepted before stopping the primary")
        net.stop(leader)
        assert not net.inspect(leader)["State"]["Running"]
        wait_for(
            lambda: all(net.node_status(n)["view"] > view_before for n in others),
            60,
            f"a view change away from {leader}",
        )
        height = max(net.heights(others).values())
        net.wait_height(height + 2, others, timeout_s=60)
    finally:
        stop.set()
        loader.join()
    net.restart(leader)
    committed_everywhere(net, sent, NODES, timeout_s=90)
    committed.extend(sent)
    assert_same_chain(net)


def test_a_node_disconnected_from_the_network_catches_up_after_reconnecting(net, committed):
    isolated = next(n for n in reversed(NODES) if n != primary(net))
    others = [n for n in NODES if n != isolated]
    net.partition(isolated)
    try:
        assert not next(s for s in net.status() if s.name == isolated).connected
        tx_ids = [register(net.client(others[0])) for _ in range(10)]
        committed_everywhere(net, tx_ids, others)
        # Its published port went with the network; the CLI inside the container still reaches it.
        inside = json.loads(net.cli(isolated, "--json", "status").stdout)
        assert inside["name"] == isolated
        assert inside["height"] < min(net.heights(others).values())
    finally:
        net.heal(isolated)
    committed_everywhere(net, tx_ids, [isolated], timeout_s=90)
    committed.extend(tx_ids)
    assert_same_chain(net)


def test_two_nodes_killed_nothing_commits_nor_forks_and_restarting_them_recovers(net, committed):
    killed = [n for n in NODES if n != primary(net)][:2]
    alive = [n for n in NODES if n not in killed]
    for node in killed:
        net.kill(node)
    try:
        height = max(net.heights(alive).values())
        tx_id = register(net.client(alive[0]))
        # 2 of 4 is below the 2f+1 = 3 quorum: the tx stays pending, watched for a few seconds.
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            assert all(not net.inspect(n)["State"]["Running"] for n in killed), (
                "docker restarted a killed node"
            )
            assert all(h <= height for h in net.heights(alive).values())
            assert net.client(alive[0]).tx(tx_id)["status"] == "pending"
            time.sleep(0.2)
    finally:
        for node in killed:
            net.restart(node)
    committed_everywhere(net, [tx_id], NODES, timeout_s=120)
    committed.append(tx_id)
    committed_everywhere(net, committed, NODES)
    assert_same_chain(net)


def test_a_second_network_runs_beside_the_first_on_its_own_subnet(
    net, committed, node_image, tmp_path_factory
):
    second = DockerNet(
        tmp_path_factory.mktemp("docker-b") / "network",
        project="lendchain-test-b",
        api_ports=free_ports(5),
        image=node_image,
        subnet="10.202.0.0/24",
    )
    second.compose("down", "--remove-orphans", "--volumes")
    try:
        second.up(timeout_s=120)
        tx_id = register(second.client("bank1"))
        committed_everywhere(second, [tx_id], NODES, timeout_s=60)
        with pytest.raises(NodeError) as unknown:  # another chain: the first network never saw it
            net.client("bank1").tx(tx_id)
        assert unknown.value.status == 404
    except BaseException:
        print(second.logs(tail=40))
        raise
    finally:
        second.down(volumes=True)
    committed_everywhere(net, committed, NODES)
    assert_same_chain(net)


def test_down_and_up_with_the_same_volumes_continues_the_chain(net, committed):
    height = assert_same_chain(net)
    head = net.client("bank1").get(f"/blocks/{height}")["hash"]
    net.down(volumes=False)
    net.up(timeout_s=120)
    assert net.client("bank2").get(f"/blocks/{height}")["hash"] == head
    tx_id = register(net.client("bank3"))
    committed_everywhere(net, [tx_id], NODES, timeout_s=60)
    assert net.client("bank3").tx(tx_id)["height"] > height
    committed_everywhere(net, committed, NODES)
    assert_same_chain(net)
