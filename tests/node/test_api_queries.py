"""Query routes in-process: a lookup's view as JSON, and a 404 that says what is missing."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from lendchain.ledger import queries
from lendchain.ledger.exposure import BOOK_PAGE_MAX, book_page
from lendchain.ledger.params import PARAMS
from lendchain.node.api import build_app
from lendchain.node.config import ApiLimits
from lendchain.node.views import NodeViews
from tests.ledger.chain import KYC_MEMBER, Chain, make_genesis, member_key, seeded_key
from tests.ledger.test_collateral import HOUSE, VAN, pledge
from tests.ledger.test_loan_transfer import open_loan, with_borrower
from tests.ledger.test_recovery import written_off
from tests.node.test_api_protection import call


class LedgerNode:
    """Answers ``query`` from a test chain's state, as the node answers from its store."""

    metrics_registry = CollectorRegistry()

    def __init__(self, chain: Chain) -> None:
        self.chain = chain

    def query(self, kind: str, ref: str) -> dict[str, Any] | None:
        return queries.lookup(self.chain.state, kind, ref, as_of_ms=self.chain.head_ms)

    def book_page(self, did: str, start: int, limit: int, written_off: bool) -> dict[str, Any] | None:
        return book_page(self.chain.state, did, start, limit, written_off, self.chain.head_ms)


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
    assert found.json() == {
        "did": borrower.did,
        "name": None,  # a party's: only a member has a name on chain
        "currencies": {},
        "written_off": {},
        "forborne": {},
        "stages": {},
        "ageing": {},
        "commitment_stages": {},
        "collateral": {},
        "carriers": [],
        "loans": [],
        "guaranteed": {},
        "guarantees": {"currencies": {}, "by_lender": [], "guarantees": []},
    }
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


def test_collateral_route_answers_an_assets_liens_and_names_an_asset_without_any():
    chain, members, borrower = with_borrower(version=6)
    loan_id = open_loan(chain, borrower, members[0])
    assert pledge(chain, members[0], loan_id).ok
    app = build_app(LedgerNode(chain), None, ApiLimits())
    found, missing, malformed = call(
        app,
        [
            ("GET", f"/collateral/{VAN}", {}),
            ("GET", f"/collateral/{HOUSE}", {}),
            ("GET", "/collateral/VIN1", {}),
        ],
    )
    assert found.status_code == 200
    assert found.json()["kind"] == "vehicle"
    assert [(lien["rank"], lien["loan_id"], lien["lender_name"]) for lien in found.json()["liens"]] == [
        (1, loan_id, "bank1")
    ]
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert missing.json()["message"] == (
        f"no lien is recorded on asset {HOUSE} (an asset is named by its collateral id, 64 hex digits: "
        "lendchain collateral id)"
    )
    # Not even an asset's id: refused for what it is, not looked up (tests/node/test_api_bad_input.py).
    assert malformed.status_code == 400 and malformed.json() == {
        "error": "bad_request",
        "message": "asset 'VIN1' is not hex: an asset is named by its collateral id, 64 hex digits: "
        "lendchain collateral id",
    }


def test_a_lenders_book_is_paged_by_index_position_until_next_is_none():
    genesis, members = make_genesis()
    chain = Chain.start(genesis)
    borrower = seeded_key(1)
    chain.onboard(borrower, member_key(KYC_MEMBER))
    loan_ids = [open_loan(chain, borrower, members[0], disburse=n != 1) for n in range(5)]
    app = build_app(LedgerNode(chain), None, ApiLimits())
    book = f"/portfolio/{members[0].did}/loans"
    pages = call(app, [("GET", book, {"params": {"from": start, "limit": 2}}) for start in (0, 2, 4)])
    assert [page.json()["next"] for page in pages] == [2, 4, None]
    rows = [row for page in pages for row in page.json()["loans"]]
    assert [row["loan_id"] for row in rows] == loan_ids
    assert [row["state"] for row in rows] == ["disbursed", "accepted", "disbursed", "disbursed", "disbursed"]
    assert rows[0] == {
        "loan_id": loan_ids[0],
        "state": "disbursed",
        "currency": "EUR",
        "amount": 120_000,
        "borrower": borrower.did,
        "lender": members[0].did,
        "lender_name": "bank1",
        "transfer": None,
        "stage": 1,
        "days_past_due": 0,
    }
    assert (rows[1]["stage"], rows[1]["days_past_due"]) == (1, None)  # a commitment: nothing due yet
    too_many, stranger = call(
        app,
        [
            ("GET", book, {"params": {"limit": BOOK_PAGE_MAX + 1}}),
            ("GET", f"/portfolio/{seeded_key(2).did}/loans", {}),
        ],
    )
    assert too_many.status_code == 400
    assert stranger.status_code == 404
    assert stranger.json()["message"] == f"{seeded_key(2).did} is no member and services no loan"


def test_book_pages_list_written_off_loans_whose_recovery_the_lender_services_when_asked():
    genesis, members = make_genesis()
    chain = Chain.start(replace(genesis, app={"rules_version": 6}))
    borrower = seeded_key(1)
    chain.onboard(borrower, member_key(KYC_MEMBER))
    loan_id = written_off(chain, borrower, members[0])
    app = build_app(LedgerNode(chain), None, ApiLimits())
    book = f"/portfolio/{members[0].did}/loans"
    plain, asked, bad = call(
        app,
        [
            ("GET", book, {}),
            ("GET", book, {"params": {"written_off": 1}}),
            ("GET", book, {"params": {"written_off": 2}}),
        ],
    )
    assert plain.json()["loans"] == []  # as before rules 6: live loans only
    assert [(row["loan_id"], row["state"]) for row in asked.json()["loans"]] == [(loan_id, "written_off")]
    assert bad.status_code == 400
    assert bad.json()["message"] == "query parameter 'written_off' must be an integer from 0 to 1"


class ParamsNode(NodeViews):
    """The node's own ``query`` (``NodeViews``) over a test chain: it adds what the genesis says."""

    metrics_registry = CollectorRegistry()

    def __init__(self, chain: Chain) -> None:
        self.genesis = chain.genesis
        self.store = SimpleNamespace(
            get=chain.state.get, head=lambda: SimpleNamespace(timestamp_ms=chain.head_ms)
        )


def test_params_route_says_where_each_value_came_from_and_names_an_unknown_parameter():
    genesis, _ = make_genesis()
    # A genesis that writes a first-release parameter's default: the state alone cannot tell.
    chain = Chain.start(replace(genesis, app={"rules_version": 6, "max_term_months": 480, "grace_days": 9}))
    app = build_app(ParamsNode(chain), None, ApiLimits())
    every, one, unknown = call(
        app, [("GET", "/params/*", {}), ("GET", "/params/grace_days", {}), ("GET", "/params/colour", {})]
    )
    assert every.status_code == 200
    sources = {row["name"]: row["source"] for row in every.json()["parameters"]}
    assert sources == {
        name: "genesis" if name in ("rules_version", "max_term_months", "grace_days") else "default"
        for name in PARAMS
    }
    [grace] = one.json()["parameters"]
    assert (grace["value"], grace["default"], grace["changeable"]) == (9, 5, True)
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "no chain parameter colour"
