"""The devnet's demo: one loan walked through its life, each step sent to a different node.

A borrower (a fresh did:key) registers through bank1's API; a member with
the ``kyc`` role (the first one in the genesis, as the bank that onboarded the
customer) attests its KYC, which ``loan.apply`` requires; the borrower applies
through bank1; bank2, as lender, offers through bank2's API; the borrower
accepts through bank3; bank2 disburses and records two repayments through
bank4. On a chain that runs rules 7 a guarantor (another fresh did:key)
registers, bank2 proposes that it guarantees half the loan and the guarantor
signs it, and the demo prints the guarantor's contingent exposure as any member
sees it; a reused network on older rules skips that and says so. Each step
waits for its commit, and at the end every node must report the same head.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from lendchain.client import NodeClient
from lendchain.crypto import SigningKey, read_key_file, write_key_file
from lendchain.ledger.guarantees import SINCE_RULES as GUARANTEE_SINCE
from lendchain.node.cluster import Cluster, ClusterError

KYC_VALID_MS = 365 * 86_400_000
GUARANTEED = 600_000  # half the demo loan


def _fresh_key(directory: Path, name: str) -> SigningKey:
    path = directory / "keys" / f"{name}.key"
    if path.exists():
        path.unlink()  # a fresh party each run: registration is once per DID
    key = SigningKey.generate()
    write_key_file(path, key)
    return key


def _kyc_member(cluster: Cluster) -> str:
    """The first member whose genesis roles include ``kyc``: it attests the demo borrower."""
    genesis = cluster[cluster.names[0]].config.genesis
    for member in genesis.members:
        if "kyc" in member.roles and member.name in cluster.names:
            return member.name
    raise ClusterError("the demo needs a member with the kyc role in the genesis; none of the nodes has it")


def _guarantor_line(exposure: dict[str, Any]) -> str:
    """What the demo guarantor stands behind, from ``GET /exposure/{did}``."""
    totals = exposure["guarantees"]["currencies"]
    amounts = ", ".join(
        f"{currency} {t['contingent']} on {t['active']} guarantee(s)" for currency, t in totals.items()
    )
    return f"the guarantor's contingent exposure, as every member sees it: {amounts}"


def run_demo(cluster: Cluster, directory: Path) -> dict[str, Any]:
    names = cluster.names
    node = [names[i % len(names)] for i in range(4)]
    kyc_name = _kyc_member(cluster)
    clients = {name: NodeClient(cluster[name].url) for name in {*node, kyc_name}}
    lender_name = node[1]
    lender = read_key_file(cluster[lender_name].config.key_file)
    borrower = _fresh_key(directory, "demo-borrower")
    kyc_member = read_key_file(cluster[kyc_name].config.key_file)
    lines = [f"demo loan: borrower {borrower.did[:24]}…, lender {lender_name}"]

    def step(via: str, key: SigningKey, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        status = clients[via].send(key, kind, payload)
        lines.append(f"  {kind:<21} via {via:<6} -> block {status['height']:<4} tx {status['id'][:16]}")
        return status

    try:
        step(node[0], borrower, "party.register", {"role": "borrower"})
        attestation = {
            "subject": borrower.did,
            "level": 2,
            "expires_ms": int(time.time() * 1000) + KYC_VALID_MS,  # compared with block time
            "evidence_hash": hashlib.sha256(b"demo KYC file of " + borrower.did.encode()).hexdigest(),
        }
        step(kyc_name, kyc_member, "kyc.attest", attestation)
        loan_id = step(
            node[0],
            borrower,
            "loan.apply",
            {"amount": 1_200_000, "currency": "EUR", "term_months": 12, "purpose": "working capital"},
        )["id"]
        offer_id = step(node[1], lender, "loan.offer", {"loan_id": loan_id, "rate_bps": 650})["id"]
        step(node[2], borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offer_id})
        step(node[3], lender, "loan.disburse", {"loan_id": loan_id})
        loan = clients[node[0]].get(f"/loans/{loan_id}")
        instalment = loan["schedule"][0]["payment"] if loan.get("schedule") else 100_000
        for _ in range(2):
            step(node[3], lender, "loan.repay", {"loan_id": loan_id, "amount": instalment})
        if clients[node[0]].get("/status")["rules"]["version"] >= GUARANTEE_SINCE:
            guarantor = _fresh_key(directory, "demo-guarantor")
            step(node[1], guarantor, "party.register", {"role": "borrower"})
            guarantee = {
                "loan_id": loan_id,
                "guarantor": guarantor.did,
                "amount": GUARANTEED,
                "kind": "personal",
                "evidence_hash": hashlib.sha256(
                    b"demo guarantee deed of " + guarantor.did.encode()
                ).hexdigest(),
            }
            guarantee_id = step(node[2], lender, "loan.guarantee", guarantee)["id"]
            step(
                node[3],
                guarantor,
                "loan.guarantee_accept",
                {"loan_id": loan_id, "guarantee_id": guarantee_id},
            )
            lines.append(_guarantor_line(clients[node[0]].get(f"/exposure/{guarantor.did}")))
        else:
            lines.append(f"(no guarantee: this chain runs rules older than {GUARANTEE_SINCE})")
        head = cluster.wait_agree(timeout_s=30)
        loan = clients[node[0]].get(f"/loans/{loan_id}")
        lines.append(
            f"loan {loan_id[:16]}… is {loan['state']}: principal repaid {loan.get('principal_paid')}, "
            f"interest {loan.get('interest_paid')} (minor units)"
        )
        exposure = clients[node[2]].get(f"/exposure/{borrower.did}")  # what any lender sees first
        for currency, totals in exposure["currencies"].items():
            carriers = ", ".join(
                f"{row['name'] or row['did'][:24]} {row['outstanding']}"
                for row in exposure["carriers"]
                if row["currency"] == currency
            )
            lines.append(
                f"the borrower's exposure, as every member sees it: {currency} outstanding "
                f"{totals['outstanding']} on {totals['loans']} loan(s) (carried by {carriers})"
            )
        lines.append(
            f"all {len(names)} nodes agree at height {head['height']}, head {head['head_hash'][:16]}"
        )
        lines.append(f"see it: lendchain loan show {loan_id} --node {cluster[names[-1]].url}")
        return {"text": "\n".join(lines), "loan_id": loan_id, "loan": loan, "height": head["height"]}
    finally:
        for client in clients.values():
            client.close()
