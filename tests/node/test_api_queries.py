"""Query routes in-process: a lookup's view as JSON, and a 404 that says what is missing."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from lendchain.ledger import queries
from lendchain.node.api import build_app
from lendchain.node.config import ApiLimits
from tests.ledger.chain import KYC_MEMBER, Chain, make_genesis, member_key, seeded_key
from tests.node.test_api_protection import call


class LedgerNode:
    """Answers ``query`` from a test chain's state, as the node answers from its store."""

    metrics_registry = CollectorRegistry()

    def __init__(self, chain: Chain) -> None:
        self.chain = chain

    def query(self, kind: str, ref: str) -> dict[str, Any] | None:
        return queries.lookup(self.chain.state, kind, ref)


def test_exposure_route_answers_a_borrower_and_names_an_unknown_did():
    genesis, _ = make_genesis()
    chain = Chain.start(genesis)
    borrower = seeded_key(1)
    chain.onboard(borrower, member_key(KYC_MEMBER))
    app = build_app(LedgerNode(chain), None, ApiLimits())
    stranger = seeded_key(2).did
    found, missing = call(
        app, [("GET", f"/exposure/{borrower.did}", {}), ("GET", f"/exposure/{stranger}", {})]
    )
    assert found.status_code == 200
    assert found.json() == {"did": borrower.did, "currencies": {}, "carriers": [], "loans": []}
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    assert missing.json()["message"] == f"{stranger} is no registered party and has no loans"


def test_portfolio_route_answers_a_member_and_names_a_stranger():
    genesis, members = make_genesis()
    app = build_app(LedgerNode(Chain.start(genesis)), None, ApiLimits())
    stranger = seeded_key(2).did
    found, missing = call(
        app, [("GET", f"/portfolio/{members[0].did}", {}), ("GET", f"/portfolio/{stranger}", {})]
    )
    assert found.status_code == 200 and found.json()["name"] == "bank1" and found.json()["currencies"] == {}
    assert missing.status_code == 404
    assert missing.json()["message"] == f"{stranger} is no member and services no loan"
