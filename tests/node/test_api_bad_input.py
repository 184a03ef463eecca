"""Every route answers malformed input with a 4xx JSON error naming the bad part: never a 500, never a guess.

Table-driven, in-process, against the real ``build_app`` and the node's own
views (``NodeViews``) over a real store holding a test chain's certified
blocks: a party, a disbursed loan, five blocks. Each row is a request, the
status and error code it must get, and a fragment of the message that names
what was wrong. Before these checks, for instance, ``GET /blocks/<26 digits>``
and ``?from=--1`` answered 500, ``GET /nonces/anything`` answered 200 with
nonce 0, ``?from=1&from=5`` answered from 5, ``{"name": ""}`` took a backup
under the default name and a body nesting 100,000 arrays answered 500.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from lendchain.ledger.errors import TxRejected
from lendchain.ledger.exposure import BOOK_PAGE_MAX
from lendchain.ledger.transactions import check_stateless, decode_transaction
from lendchain.node.api import build_app
from lendchain.node.backup import NodeBackups
from lendchain.node.config import ApiLimits, MempoolConfig
from lendchain.node.mempool import Mempool
from lendchain.node.metrics import NodeMetrics
from lendchain.node.pages import BLOCKS_PAGE_MAX, COMMITS_PAGE_MAX, HEIGHT_MAX, RAW_BLOCKS_PAGE_MAX
from lendchain.node.store import ChainStore
from lendchain.node.views import NodeViews
from tests.ledger.chain import member_key, seeded_key
from tests.ledger.test_domain_audit import CertifiedBlocks
from tests.ledger.test_loan_transfer import open_loan, with_borrower
from tests.node.test_api_protection import call
from tests.node.test_api_stream import answers, session


class ChainNode(NodeViews):
    """The node's views over a real store of a test chain, with what the daemon adds for the API.

    ``submit`` makes the admission's stateless checks (decode, chain, signature)
    and keeps nothing; ``backup`` is the daemon's ``NodeBackups``.
    """

    def __init__(self, store: ChainStore, backup_dir: Path) -> None:
        self.store, self.genesis = store, store.genesis
        self.mempool = Mempool(MempoolConfig())
        self.signers: dict = {}
        metrics = NodeMetrics()
        self.metrics_registry: CollectorRegistry = metrics.registry
        config = SimpleNamespace(name="bank1", backup_dir=backup_dir, genesis=store.genesis)
        self.backups = NodeBackups(config, store, metrics, logging.getLogger("lendchain.test"))

    def submit(self, raw_txs: list[bytes]) -> list[dict[str, Any]]:
        results = []
        for raw in raw_txs:
            try:
                tx = decode_transaction(raw)
                check_stateless(tx, self.genesis.chain_id)
            except TxRejected as e:
                results.append({"id": None, "status": "rejected", "code": e.code, "message": e.message})
            else:
                results.append({"id": tx.id.hex(), "status": "accepted"})
        return results

    async def wait_tx(self, tx_id: bytes, timeout_s: float) -> dict[str, Any]:
        return self.tx_status(tx_id)  # nothing is pending: the answer cannot change

    async def wait_for_height(self, height: int, timeout_s: float) -> None:
        return None

    def _next_nonce(self, sender: str) -> int:
        return self.mempool.next_free_nonce(sender, 0)

    def is_ready(self) -> bool:
        return True

    def status(self) -> dict[str, Any]:
        return {"name": "bank1", "height": self.store.head().height}

    async def backup(self, name: str | None, keep: int | None) -> dict[str, Any]:
        return await self.backups.take(name, keep)


@dataclass
class World:
    app: Any
    loan_id: str
    borrower: str
    lender: str
    backup_dir: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    chain, members, borrower = with_borrower(version=7)
    loan_id = open_loan(chain, borrower, members[0])
    tmp = tmp_path_factory.mktemp("bad-input")
    store = ChainStore.open(tmp / "db", chain.genesis, create=True)
    certified = CertifiedBlocks(chain, [member_key(i) for i in range(4)])
    for height, (raw, execution) in enumerate(chain.blocks, start=1):
        store.commit_block(raw, certified.certificate(height), execution)
    app = build_app(ChainNode(store, tmp / "backups"), None, ApiLimits(max_batch_txs=100))
    yield World(app, loan_id, borrower.did, members[0].did, tmp / "backups")
    store.close()


def assert_refused(response, status: int, code: str, names: str) -> None:
    """``response`` is the JSON error ``{"error": code, "message": …}`` with ``status``, naming ``names``."""
    assert response.status_code == status, (response.request.url, response.text)
    body = response.json()
    assert set(body) == {"error", "message"} and body["error"] == code, body
    assert names in body["message"], (names, body["message"])


# -- path references ------------------------------------------------------------------------------

HEX_ID_ROUTES = ("/txs", "/loans", "/offers", "/policies", "/proposals", "/audit", "/collateral")
DID_ROUTES = (
    "/parties",
    "/nonces",
    "/scores",
    "/reminders",
    "/exposure",
    "/portfolio",
    "/positions",
    "/disputes",
)
NOT_HEX_IDS = ("zz", "*", "-1", "0x" + "ab" * 31, "g" * 64, "１" * 64, "héllo", " ", "did:key:z6Mk")
MISSIZED_IDS = ("abc", "ab" * 31, "ab" * 33, "0" * 26)
GOOD_DID = seeded_key(77).did  # a did:key no party or member has
BAD_DIDS = (
    "zz",
    "*",
    "open",
    "ab" * 32,
    "did:web:example.com",
    "did:key:zBAD",
    GOOD_DID[:-2],
    GOOD_DID + "x",
    GOOD_DID.upper(),
    "did:key:z0OIl",  # not base58btc
    "héllo",
)


@pytest.mark.parametrize("route", HEX_ID_ROUTES)
def test_a_malformed_id_is_refused_saying_whether_it_is_not_hex_or_how_long_it_is(world, route):
    refs = [*NOT_HEX_IDS, *MISSIZED_IDS]
    responses = call(world.app, [("GET", f"{route}/{ref}", {}) for ref in refs])
    for ref, response in zip(refs, responses, strict=True):
        if ref in NOT_HEX_IDS:
            assert_refused(response, 400, "bad_request", f"{ref!r} is not hex: ")
        else:
            assert_refused(response, 400, "bad_request", f"{ref!r} has {len(ref)} hex digits: ")
        assert "64 hex digits" in response.json()["message"]


@pytest.mark.parametrize("route", DID_ROUTES + ("/portfolio/{}/loans",))
def test_a_ref_that_is_no_ed25519_did_key_is_refused_where_a_did_is_taken(world, route):
    path = route if "{}" in route else route + "/{}"
    responses = call(world.app, [("GET", path.format(ref), {}) for ref in BAD_DIDS])
    for ref, response in zip(BAD_DIDS, responses, strict=True):
        assert_refused(response, 400, "bad_request", repr(ref))
        assert "did:key" in response.json()["message"]


def test_the_did_messages_say_what_is_wrong_with_it(world):
    nonce, base58, short = call(
        world.app,
        [
            ("GET", "/nonces/anything", {}),
            ("GET", "/parties/did:key:z0OIl", {}),
            ("GET", f"/exposure/{GOOD_DID[:-2]}", {}),
        ],
    )
    # /nonces answered {"did": "anything", "committed_nonce": 0, ...} with 200 before.
    assert nonce.json()["message"] == (
        "'anything' is not a did:key (expected 'did:key:z…'): this route takes a party's or a member's did:key"
    )
    assert base58.json()["message"].startswith("'did:key:z0OIl' is not valid base58btc: ")
    assert short.status_code == 400 and "did:key" in short.json()["message"]


BAD_BLOCK_REFS = {
    "zz": "is no height, block hash (64 hex digits) or 'head'",
    "-1": "is no height",
    "HEAD": "is no height",
    "１２": "is no height",
    "ab" * 31: "is no height",
    "0x" + "ab" * 32: "is no height",
    "99999999999999999999999999": f"is over {HEIGHT_MAX}",  # a 500 before: too big for the store's key
    str(HEIGHT_MAX + 1): f"is over {HEIGHT_MAX}",
}


def test_a_block_is_named_by_height_hash_or_head_and_anything_else_is_refused(world):
    refs = list(BAD_BLOCK_REFS)
    for ref, response in zip(refs, call(world.app, [("GET", f"/blocks/{r}", {}) for r in refs]), strict=True):
        assert_refused(response, 400, "bad_request", f"{ref!r} {BAD_BLOCK_REFS[ref]}")


def test_well_formed_refs_that_name_nothing_are_404s_that_say_so(world):
    zeros = "0" * 64
    cases = [
        (f"/loans/{zeros}", f"no loan {zeros}"),
        (f"/audit/{zeros}", f"no loan {zeros}"),
        (f"/offers/{zeros}", f"no offer {zeros}"),
        (f"/proposals/{zeros}", f"no proposal {zeros}"),
        (f"/txs/{zeros}", f"no transaction {zeros} is known to this node"),
        (f"/parties/{GOOD_DID}", f"{GOOD_DID} is no registered party and no member"),
        (f"/scores/{GOOD_DID}", f"{GOOD_DID} is no registered party: only a party has a credit score"),
        (f"/reminders/{GOOD_DID}", f"{GOOD_DID} is no registered party and no member"),
        (f"/portfolio/{GOOD_DID}/loans", f"{GOOD_DID} is no member and services no loan"),
        ("/blocks/999", "no block 999"),
        (f"/blocks/{HEIGHT_MAX}", f"no block {HEIGHT_MAX}"),
        ("/members/*x", "no member *x"),
        ("/node-keys/bank9", "no member bank9"),
        ("/voting/bank9", "no member bank9"),
        ("/params/colour", "no chain parameter colour"),
        ("/nowhere", "no route GET /nowhere"),
    ]
    responses = call(world.app, [("GET", path, {}) for path, _ in cases])
    for (path, message), response in zip(cases, responses, strict=True):
        assert response.status_code == 404, path
        assert response.json() == {"error": "not_found", "message": message}


def test_a_ref_holding_an_escaped_slash_gets_its_routes_sentence_not_no_route(world):
    """The server decodes ``%2F`` before routing: ``/loans/ab%2Fcd`` answered "no route GET /loans/ab/cd",
    and ``/portfolio/<x>%2Floans`` answered as ``/portfolio/<x>/loans``, the book of ``x``."""
    portfolio = f"/portfolio/{world.lender}%2Floans"
    cases = [
        ("/loans/ab%2Fcd", 400, "loan id 'ab/cd' is not hex: a loan id is 64 hex digits (32 bytes)"),
        ("/loans/..%2Fstatus", 400, "loan id '../status' is not hex: a loan id is 64 hex digits (32 bytes)"),
        ("/txs/ab%2fcd", 400, "tx id 'ab/cd' is not hex: a tx id is 64 hex digits (32 bytes)"),
        ("/blocks/1%2F2", 400, "block '1/2' is no height, block hash (64 hex digits) or 'head'"),
        (
            f"/parties/{GOOD_DID}%2Fx",
            400,
            f"'{GOOD_DID}/x' is not valid base58btc: this route takes a party's or a member's did:key",
        ),
        (portfolio, 400, "/loans' is not valid base58btc: this route takes a party's or a member's did:key"),
        (
            portfolio + "/loans",
            400,
            "/loans' is not valid base58btc: this route takes a party's or a member's",
        ),
        ("/members/bank1%2F..", 404, "no member bank1/.."),  # no name has a '/'
        ("/params/a%2Fb", 404, "no chain parameter a/b"),
        ("/loans%2Fab", 404, "no route GET /loans%2Fab"),  # not in a reference: /loans/ab is no route
    ]
    responses = call(world.app, [("GET", path, {}) for path, *_ in cases])
    for (path, status, message), response in zip(cases, responses, strict=True):
        assert response.status_code == status, (path, response.text)
        assert response.json()["error"] == ("bad_request" if status == 400 else "not_found")
        assert message in response.json()["message"], (path, response.json())


def test_well_formed_refs_are_answered_capitals_and_all(world):
    """The other side of the table: the parsing at the edge takes what it should."""
    head = call(world.app, [("GET", "/blocks/head", {})])[0].json()
    paths = [
        f"/loans/{world.loan_id}",
        f"/loans/{world.loan_id.upper()}",  # a loan id typed or pasted in capitals is the same loan
        f"/audit/{world.loan_id}",
        f"/txs/{world.loan_id.upper()}",  # a loan's id is its loan.apply tx's
        f"/blocks/{head['hash'].upper()}",
        f"/blocks/{head['header']['height']}",
        f"/nonces/{GOOD_DID}",  # any did:key has a nonce: 0 before its first tx
        f"/parties/{world.borrower}",
        f"/exposure/{world.borrower}",
        f"/portfolio/{world.lender}",
        "/proposals/open",
        "/members/*",
        "/params/*",
    ]
    responses = call(world.app, [("GET", path, {}) for path in paths])
    assert [r.status_code for r in responses] == [200] * len(paths), [r.text for r in responses]
    assert responses[1].json()["loan_id"] == world.loan_id
    assert responses[3].json()["id"] == world.loan_id and responses[3].json()["status"] == "committed"
    assert responses[4].json()["hash"] == head["hash"]
    assert responses[6].json() == {"did": GOOD_DID, "committed_nonce": 0, "next_nonce": 0}


# -- query parameters -----------------------------------------------------------------------------

INT_PARAMS = [
    ("/txs/" + "ab" * 32, "wait_ms"),
    ("/blocks", "from"),
    ("/blocks", "limit"),
    ("/blocks/raw", "from"),
    ("/blocks/raw", "limit"),
    ("/commits", "since"),
    ("/commits", "wait_ms"),
    ("/commits", "limit"),
    ("/portfolio/{lender}/loans", "from"),
    ("/portfolio/{lender}/loans", "limit"),
    ("/portfolio/{lender}/loans", "written_off"),
]
# "--1" and 5,000 digits answered 500; "１" (fullwidth) was taken as 1.
BAD_INTS = ("", "x", "-1", "--1", "+1", " 1", "1 ", "1.5", "1e3", "0x10", "１", "9" * 30, "9" * 5000)


@pytest.mark.parametrize(("route", "name"), INT_PARAMS)
def test_an_integer_parameter_takes_ascii_digits_in_its_range_only(world, route, name):
    path = route.format(lender=world.lender)
    responses = call(world.app, [("GET", path, {"params": {name: value}}) for value in BAD_INTS])
    for value, response in zip(BAD_INTS, responses, strict=True):
        assert_refused(response, 400, "bad_request", f"query parameter '{name}' must be an integer from ")
        assert len(response.text) < 200, value[:20]  # the bad value is not echoed back at length


@pytest.mark.parametrize(("route", "name"), INT_PARAMS)
def test_a_parameter_given_twice_is_refused_rather_than_the_last_one_taken(world, route, name):
    path = route.format(lender=world.lender)
    (response,) = call(world.app, [("GET", f"{path}?{name}=1&{name}=1", {})])
    assert_refused(response, 400, "bad_request", f"query parameter '{name}' is given 2 times on ")


def test_the_largest_values_in_range_are_answered_not_crashed_on(world):
    book = f"/portfolio/{world.lender}/loans"
    requests = [
        ("/blocks", {"from": HEIGHT_MAX, "limit": BLOCKS_PAGE_MAX}),
        ("/blocks/raw", {"from": HEIGHT_MAX, "limit": RAW_BLOCKS_PAGE_MAX}),
        ("/commits", {"since": HEIGHT_MAX, "limit": COMMITS_PAGE_MAX}),
        (book, {"from": HEIGHT_MAX, "limit": BOOK_PAGE_MAX}),
    ]
    blocks, raw, commits, page = call(world.app, [("GET", path, {"params": p}) for path, p in requests])
    assert blocks.status_code == 200 and blocks.json() == {"blocks": []}
    assert raw.status_code == 200 and raw.json()["blocks"] == []
    assert commits.status_code == 200 and commits.json()["commits"] == []
    assert page.status_code == 200 and page.json()["loans"] == [] and page.json()["next"] is None
    # One more than a page holds is refused, naming the most.
    over = call(world.app, [("GET", path, {"params": {"limit": p["limit"] + 1}}) for path, p in requests])
    for (_, p), response in zip(requests, over, strict=True):
        assert_refused(response, 400, "bad_request", f"'limit' must be an integer from 1 to {p['limit']}")


# -- bodies ---------------------------------------------------------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000  # a 500 before: json.loads hit the recursion limit
HUGE_INT = b'{"keep": ' + b"9" * 5000 + b"}"  # a 500 before: int() refuses 4,300+ digits with a ValueError
BODY_CASES = [
    # (path, body, status, code, fragment of the message)
    ("/txs", b"", 400, "bad_request", "request body is not valid JSON"),
    ("/txs", b"not json", 400, "bad_request", "request body is not valid JSON"),
    ("/txs", b"\xff\xfe", 400, "bad_request", "request body is not valid JSON"),
    ("/txs", DEEP, 400, "bad_request", "request body nests arrays or objects too deeply"),
    ("/txs", HUGE_INT, 400, "bad_request", "request body is not valid JSON"),
    ("/txs", b"[]", 400, "bad_request", 'body must be {"tx": hex} or {"txs": [hex, ...]}'),
    ("/txs", b"null", 400, "bad_request", 'body must be {"tx": hex}'),
    ("/txs", b'"ab"', 400, "bad_request", 'body must be {"tx": hex}'),
    ("/txs", b"{}", 400, "bad_request", 'body must be {"tx": hex}'),
    ("/txs", b'{"tx": "ab", "txs": ["ab"]}', 400, "bad_request", 'body must be {"tx": hex}'),
    ("/txs", b'{"tx": "ab", "memo": 1}', 400, "bad_request", "unknown key 'memo' in the body"),
    ("/txs", b'{"tx": "ab", "id": 1}', 400, "bad_request", "unknown key 'id' in the body"),
    ("/txs", b'{"tx": "ab", "tx": "cd"}', 400, "bad_request", "names the key 'tx' twice"),
    ("/txs", b'{"tx": 1}', 400, "bad_request", "'tx' must be a hex string"),
    ("/txs", b'{"tx": null}', 400, "bad_request", "'tx' must be a hex string"),
    ("/txs", b'{"tx": ["ab"]}', 400, "bad_request", "'tx' must be a hex string"),
    ("/txs", b'{"tx": ""}', 400, "bad_request", "'tx' is empty"),
    ("/txs", b'{"tx": "zz"}', 400, "bad_request", "'tx' must be hex"),
    ("/txs", '{"tx": "é1"}'.encode(), 400, "bad_request", "'tx' must be hex"),
    ("/txs", b'{"tx": "abc"}', 400, "bad_request", "'tx' has an odd number of hex digits (3)"),
    ("/txs", b'{"txs": []}', 400, "bad_request", "'txs' is empty: a batch holds 1 to 100 txs"),
    ("/txs", b'{"txs": "ab"}', 400, "bad_request", "'txs' must be a list of hex strings"),
    ("/txs", b'{"txs": {"0": "ab"}}', 400, "bad_request", "'txs' must be a list of hex strings"),
    ("/txs", b'{"txs": ["ab", 1]}', 400, "bad_request", "'txs' must be a list of hex strings"),
    ("/txs", b'{"txs": ["ab", ""]}', 400, "bad_request", "'txs[1]' is empty"),
    ("/txs", b'{"txs": ["ab", "x"]}', 400, "bad_request", "'txs[1]' must be hex"),
    ("/txs", json.dumps({"txs": ["ab"] * 101}).encode(), 413, "too_large", "at most 100 txs, got 101"),
    ("/txs/check", b"[]", 400, "bad_request", 'body must be {"tx": hex}: one transaction per check'),
    ("/txs/check", b'{"txs": ["ab"]}', 400, "bad_request", "one transaction per check"),
    ("/txs/check", b'{"tx": "ab", "x": 1}', 400, "bad_request", "one transaction per check"),
    ("/txs/check", b'{"tx": 5}', 400, "bad_request", "'tx' must be a hex string"),
    ("/txs/check", b'{"tx": "0g"}', 400, "bad_request", "'tx' must be hex"),
    ("/txs/check", DEEP, 400, "bad_request", "nests arrays or objects too deeply"),
    ("/backups", b"[]", 400, "bad_request", 'body must be {} or {"name": "<directory name>"'),
    ("/backups", b'{"name": 1}', 400, "bad_request", 'body must be {} or {"name"'),
    ("/backups", b'{"keep": "2"}', 400, "bad_request", 'body must be {} or {"name"'),
    ("/backups", b'{"keep": 1.5}', 400, "bad_request", 'body must be {} or {"name"'),
    ("/backups", b'{"keep": true}', 400, "bad_request", 'body must be {} or {"name"'),
    ("/backups", b'{"keep": NaN}', 400, "bad_request", 'body must be {} or {"name"'),
    ("/backups", b'{"where": "x"}', 400, "bad_request", 'body must be {} or {"name"'),
    ("/backups", HUGE_INT, 400, "bad_request", "request body is not valid JSON"),
    ("/backups", b'{"keep": 0}', 400, "backup_bad_request", "keep must be at least 1"),
    ("/backups", b'{"keep": -1}', 400, "backup_bad_request", "keep must be at least 1"),
    # An empty name was taken for "no name": a backup under the default name, 201.
    ("/backups", b'{"name": ""}', 400, "backup_bad_name", "backup name '' must be 1-128 letters"),
    ("/backups", b'{"name": "../up"}', 400, "backup_bad_name", "backup name '../up' must be"),
    ("/backups", b'{"name": "a/b"}', 400, "backup_bad_name", "backup name 'a/b' must be"),
    ("/backups", '{"name": "bäck"}'.encode(), 400, "backup_bad_name", "backup name 'bäck' must be"),
    ("/backups", b'{"name": "' + b"a" * 129 + b'"}', 400, "backup_bad_name", "must be 1-128 letters"),
    ("/backups", b'{"name": "x", "name": "y"}', 400, "bad_request", "names the key 'name' twice"),
]


def test_bad_bodies_are_refused_naming_what_is_wrong_and_nothing_is_done(world):
    requests = [("POST", path, {"content": body}) for path, body, *_ in BODY_CASES]
    for (_, _, status, code, names), response in zip(BODY_CASES, call(world.app, requests), strict=True):
        assert_refused(response, status, code, names)
    assert not world.backup_dir.exists() or not any(world.backup_dir.iterdir())  # no backup was taken


def test_a_tx_the_node_cannot_decode_is_its_own_result_not_an_api_error(world):
    """Hex that is no transaction is the node's to judge: rejected, with its code, as documented."""
    submitted, checked = call(
        world.app,
        [("POST", "/txs", {"json": {"tx": "00" * 10}}), ("POST", "/txs/check", {"json": {"tx": "00" * 10}})],
    )
    assert submitted.status_code == 400
    assert submitted.json()["status"] == "rejected" and submitted.json()["code"] == "malformed"
    assert checked.status_code == 200
    assert checked.json()["outcome"] == "rejected" and checked.json()["code"] == "malformed"


# -- the WebSocket --------------------------------------------------------------------------------


def test_a_bad_stream_message_is_answered_with_its_error_and_the_stream_stays_open(world):
    messages = [
        DEEP.decode(),
        HUGE_INT.decode(),
        '{"txs": ["ab"], "id": 1, "id": 2}',
        {"txs": ["ab"], "id": 3, "memo": "x"},
        {"txs": [], "id": 4},
        {"tx": "", "id": 5},
        {"tx": 7, "id": 6},
        [{"tx": "ab"}],
        {"tx": "00" * 10, "id": 8},
    ]
    got = answers(session(world.app, messages, headers=[]))
    assert [answer.get("status") for answer in got] == [400] * 8 + [None]
    assert got[0]["message"] == "message nests arrays or objects too deeply"
    assert got[1]["message"] == "message is not valid JSON"
    assert got[2]["message"] == "a JSON object names the key 'id' twice"
    assert got[3] == {
        "error": "bad_request",
        "message": """unknown key 'memo' in the body: it is {"tx": hex} or {"txs": [hex, ...]}""",
        "status": 400,
        "id": 3,
    }
    assert got[4]["message"] == "'txs' is empty: a batch holds 1 to 100 txs" and got[4]["id"] == 4
    assert got[5]["message"] == "'tx' is empty: a transaction is the hex of its encoding"
    assert got[6]["message"] == "'tx' must be a hex string"
    assert got[7]["message"] == 'body must be {"tx": hex} or {"txs": [hex, ...]}'
    assert got[8]["results"][0]["code"] == "malformed" and got[8]["id"] == 8  # and still answering


def test_the_stream_refuses_query_parameters_at_opening(world):
    sent = session(world.app, [], headers=[], query_string=b"batch=10")
    assert sent[0]["type"] == "websocket.http.response.start" and sent[0]["status"] == 400
    body = b"".join(event.get("body", b"") for event in sent[1:])
    assert json.loads(body) == {"error": "bad_request", "message": "/txs/stream takes no query parameters"}
    assert not any(event["type"] == "websocket.accept" for event in sent)
