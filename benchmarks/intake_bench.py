"""What a backup node's intake costs per tx: gossip validation, gossip delivery, the API stream.

Builds a 4-member test network, opens its second member's node (built, not
started: no sockets, no event loop) and feeds it N pre-signed txs the way a
backup node meets them in ``network_bench.py``: every sender talks to one
node, so the txs of a quarter of the senders come in on this node's
``/txs/stream`` WebSocket, and the rest arrive as gossip messages of at most ``GOSSIP_MAX_BYTES`` from the other
three, each validated (``Node._validate_gossip``: decode, stateless checks,
Ed25519) and then delivered (``Node._on_gossip`` -> ``Node._admit``: nonce
read, mempool). The mix is ``network_bench.py``'s: borrowers register, are
KYC-attested and apply; every fourth loan is offered, accepted, disbursed and
repaid twice. Keys and txs are the same in every run.

The stream is served as hypercorn serves it: each message is a masked client
frame, parsed by a wsproto server connection into the ASGI message hypercorn
hands the app, which is the node's own app (``api.build_app``: its guard, its
route, ``submit_stream`` -> ``_stream_answer`` -> ``Node.submit``); the
answer's JSON is framed by wsproto again. The API stage's time runs from the
frame's bytes to the answer's. Not covered: the socket, and hypercorn's own
task switches between the two.

It prints CPU µs per tx for each stage. ``--skip-verify`` replaces the
Ed25519 check (``crypto_sign_open``, ~55 µs, the floor: each node verifies each
tx once) by a constant True, so what is left is the path's own cost; the
signed bytes are still sliced out as for a real check.

Timings on a shared 2-core machine move by tens of percent between runs. To
compare two trees, count instructions instead (the interpreter binary, not a
shim), and subtract the count of ``--stop-after build`` (keys, signing, the
node's start-up), which is the same for both:

    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \\
        python3.11 benchmarks/intake_bench.py --txs 20000 --skip-verify
    valgrind ... python3.11 benchmarks/intake_bench.py --txs 20000 --stop-after build

``--profile`` prints a cProfile of the intake (all stages). ``--only-stream``
feeds the stream's messages alone (each sender talks to one node, so no tx
of the stream waits for one that comes by gossip): its count less the
build's is the stream's own.

Usage: python benchmarks/intake_bench.py [--txs 20000] [--skip-verify] [--only-stream] [--json]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from loan_workload import borrower_key
from wsproto.connection import Connection as WsConnection
from wsproto.connection import ConnectionType
from wsproto.events import Message, TextMessage

import lendchain.ledger.transactions as transactions
from lendchain import codec
from lendchain.cli.network import tune_gc
from lendchain.crypto import SigningKey, read_key_file
from lendchain.ledger.transactions import build_transaction
from lendchain.node.api import build_app
from lendchain.node.config import load_node_config
from lendchain.node.daemon import Node
from lendchain.node.gossip import GOSSIP_MAX_BYTES
from lendchain.node.testnet import generate_testnet

NODES = 4
THIS_NODE = 1  # bank2: a backup in view 0
LIFECYCLE_EVERY = 4
WINDOW = 400  # txs the four nodes take in between two looks at this one (a stream message, gossip)
CREATED_MS = 1_800_000_000_000
KYC_VALID_MS = 365 * 86_400_000
STAGES = ("gossip_validate", "gossip_deliver", "api_stream")


def workload(chain_id: str, total: int) -> list[tuple[int, bytes]]:
    """About ``total`` signed txs of ``network_bench.py``'s mix: (the node its sender talks to, wire bytes)."""
    lenders = [SigningKey(bytes([0xA0 + i]) * 32) for i in range(2)]
    attesters = [SigningKey(bytes([0xB0 + i]) * 32) for i in range(2)]
    nonces: dict[str, int] = {}
    node_of: dict[str, int] = {}
    out: list[tuple[int, bytes]] = []

    def add(key: SigningKey, kind: str, payload: dict) -> bytes:
        nonce = nonces.get(key.did, 0)
        nonces[key.did] = nonce + 1
        tx = build_transaction(key, chain_id, kind, nonce, payload, CREATED_MS)
        out.append((node_of.setdefault(key.did, len(node_of) % NODES), tx.encode()))
        return tx.id.hex()

    group = 3 * LIFECYCLE_EVERY + 5
    for i in range(max(1, total // group) * LIFECYCLE_EVERY):
        borrower = borrower_key(i + 1)
        add(borrower, "party.register", {"role": "borrower"})
        attestation = {
            "subject": borrower.did,
            "level": 2,
            "expires_ms": CREATED_MS + KYC_VALID_MS,
            "evidence_hash": f"{i:064x}",
        }
        add(attesters[i % len(attesters)], "kyc.attest", attestation)
        payload = {"amount": 100_000 + i, "currency": "EUR", "term_months": 12, "purpose": "working capital"}
        loan_id = add(borrower, "loan.apply", payload)
        if i % LIFECYCLE_EVERY == 0:
            lender = lenders[i // LIFECYCLE_EVERY % len(lenders)]
            offer_id = add(lender, "loan.offer", {"loan_id": loan_id, "rate_bps": 850})
            add(borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offer_id})
            add(lender, "loan.disburse", {"loan_id": loan_id})
            for _ in range(2):
                add(lender, "loan.repay", {"loan_id": loan_id, "amount": 9_000})
    return out


def arrivals(txs: list[tuple[int, bytes]]) -> list[tuple[str, bytes, int]]:
    """What reaches this node, in order: ("gossip", message, txs) and ("api", stream frame, txs)."""
    client = WsConnection(ConnectionType.CLIENT)  # a client masks its frames, as the server expects
    out: list[tuple[str, bytes, int]] = []
    for start in range(0, len(txs), WINDOW):
        window = txs[start : start + WINDOW]
        mine = [raw.hex() for node, raw in window if node == THIS_NODE]
        if mine:
            out.append(("api", client.send(Message(data=json.dumps({"txs": mine}))), len(mine)))
        for origin in range(NODES):
            batch: list[bytes] = []
            size = 0
            for node, raw in window:
                if node != origin or origin == THIS_NODE:
                    continue
                if batch and size + len(raw) + 5 > GOSSIP_MAX_BYTES:
                    out.append(("gossip", codec.pack(batch), len(batch)))
                    batch, size = [], 0
                batch.append(raw)
                size += len(raw) + 5
            if batch:
                out.append(("gossip", codec.pack(batch), len(batch)))
    return out


def feed(node: Node, arriving: list[tuple[str, bytes, int]]) -> dict[str, dict[str, float]]:
    """Run every arrival through the node's intake; CPU seconds and txs by stage."""
    totals = {stage: {"txs": 0, "cpu_s": 0.0} for stage in STAGES}
    app = build_app(node, None, node.config.api_limits)
    server = WsConnection(ConnectionType.SERVER)  # what hypercorn holds once the opening is done
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/txs/stream",
        "raw_path": b"/txs/stream",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
    }
    coming = iter(arriving)
    connected = False
    api: dict[str, Any] = {"started": 0.0, "txs": 0}

    def timed(stage: str, count: int, step: Callable[[bytes], Any], data: bytes) -> Any:
        started = time.process_time()
        done = step(data)
        totals[stage]["cpu_s"] += time.process_time() - started
        totals[stage]["txs"] += count
        return done

    async def receive() -> dict[str, Any]:
        """The next stream message, as hypercorn hands it to the app; the gossip before it first."""
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        for how, data, count in coming:
            if how == "gossip":
                if not timed("gossip_validate", count, node._validate_gossip, data):
                    raise SystemExit("a gossip message of the workload was refused: the bench is broken")
                timed("gossip_deliver", count, node._on_gossip, data)
                continue
            api["started"], api["txs"] = time.process_time(), count
            server.receive_data(data)
            text = "".join(event.data for event in server.events() if isinstance(event, TextMessage))
            return {"type": "websocket.receive", "bytes": None, "text": text}
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] != "websocket.send":
            return  # the opening's websocket.accept
        server.send(Message(data=message["text"]))
        totals["api_stream"]["cpu_s"] += time.process_time() - api["started"]
        totals["api_stream"]["txs"] += api["txs"]
        answer = json.loads(message["text"])
        refused = [r for r in answer.get("results", [answer]) if r.get("status") != "accepted"]
        if refused:
            raise SystemExit(f"the node refused a tx of the workload: {refused[0]}")

    trio.run(app, scope, receive, send)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=20_000)
    parser.add_argument("--skip-verify", action="store_true", help="no Ed25519 check (the rest stays)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the intake (slower)")
    parser.add_argument("--stop-after", choices=("build",), help="for instruction counts")
    parser.add_argument("--only-stream", action="store_true", help="no gossip: the stream's messages alone")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.txs < 1:
        parser.error(f"--txs must be at least 1, got {args.txs}")

    with tempfile.TemporaryDirectory() as tmp:
        layout = generate_testnet(Path(tmp) / "net", NODES)
        config = load_node_config(layout.configs[THIS_NODE])
        node = Node(config, read_key_file(config.key_file))
        try:
            arriving = arrivals(workload(layout.genesis.chain_id, args.txs))
            if args.only_stream:
                arriving = [arrival for arrival in arriving if arrival[0] == "api"]
            if args.skip_verify:
                transactions.verify_raw = lambda public_key, signature, message: True
            tune_gc()  # the collector settings of a node process (``lendchain start``)
            if args.stop_after == "build":
                return
            profiler = cProfile.Profile() if args.profile else None
            if profiler is not None:
                profiler.enable()
            totals = feed(node, arriving)
            if profiler is not None:
                profiler.disable()
            pooled = len(node.mempool)
        finally:
            node.store.close()

    count = sum(totals[stage]["txs"] for stage in ("gossip_validate", "api_stream"))
    if pooled != count:
        raise SystemExit(f"{count} txs went in but the mempool holds {pooled}: the bench is broken")
    rows = {
        stage: {"txs": int(t["txs"]), "us_per_tx": round(1e6 * t["cpu_s"] / max(1, t["txs"]), 2)}
        for stage, t in totals.items()
    }
    overall = round(1e6 * sum(t["cpu_s"] for t in totals.values()) / count, 2)
    if args.json:
        result = {"txs": count, "verify": not args.skip_verify, "stages": rows, "us_per_tx": overall}
        print(json.dumps(result, indent=2))
    else:
        print(f"{'stage':<16} {'txs':>7} {'µs/tx':>8}")
        for stage, row in rows.items():
            print(f"{stage:<16} {row['txs']:>7} {row['us_per_tx']:>8}")
        print(f"{'all (per tx)':<16} {count:>7} {overall:>8}")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
