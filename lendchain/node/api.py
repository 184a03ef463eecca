"""The node's local HTTP API: a Starlette app served by Hypercorn inside the node's trio loop.

JSON in and out; transactions travel as hex of their canonical encoding.
Every error is ``{"error": code, "message": sentence}`` with a 4xx/5xx status
and never echoes a secret. A system that sends many small batches can keep
one WebSocket open on ``/txs/stream`` instead of a request per batch: each
text message is a ``POST /txs`` body and gets one JSON answer, in order (a
request costs the node 2-3x the CPU of a message; benchmarks/RESULTS.md).
The app only translates HTTP to calls on a ``NodeFacade`` (the daemon), so
it can be tested without a network.

Protection, in the guard in front of every route: the bearer token (when
configured; compared in constant time), a per-client-address rate limit on
writes and on failed token checks (429 with Retry-After), and a cap on the
request body, counted as it streams in, not only from Content-Length. No
CORS headers are sent, so a browser page from another origin cannot read
answers or send JSON writes.
"""

from __future__ import annotations

import hmac
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from lendchain.ledger.exposure import BOOK_PAGE_MAX
from lendchain.node.api_input import (
    ApiError,
    RefRoutes,
    bad_request,
    batch,
    block_ref,
    did_ref,
    hex_id,
    int_param,
    json_body,
    parse_json,
    slashed_ref,
)
from lendchain.node.backup import BackupError
from lendchain.node.config import ApiLimits
from lendchain.node.mempool import MempoolFull
from lendchain.node.pages import BLOCKS_PAGE_MAX, COMMITS_PAGE_MAX, HEIGHT_MAX, RAW_BLOCKS_PAGE_MAX
from lendchain.node.ratelimit import RateLimiter, retry_after_header

_OPEN_PATHS = ("/health", "/ready")
_READS = ("GET", "HEAD", "OPTIONS")
# The console's HTML/JS/CSS hold no chain data, and a browser cannot put a
# bearer header on a page load: the page is open, every API call it makes is not.
CONSOLE_DIR = Path(__file__).parent / "console"
_CONSOLE_PREFIX = "/console"
_TAKEN = ("accepted", "known")


class NodeFacade(Protocol):
    """What the API needs from the node daemon."""

    metrics_registry: CollectorRegistry

    def submit(self, raw_txs: list[bytes]) -> list[dict[str, Any]]: ...
    def check_tx(self, raw: bytes) -> dict[str, Any]: ...
    def tx_status(self, tx_id: bytes) -> dict[str, Any]: ...
    def block(self, ref: str) -> dict[str, Any] | None: ...
    def blocks(self, start: int, limit: int) -> list[dict[str, Any]]: ...
    def raw_blocks(self, start: int, limit: int) -> dict[str, Any]: ...
    def commits_since(self, height: int, limit: int) -> dict[str, Any]: ...
    async def wait_for_height(self, height: int, timeout_s: float) -> None: ...
    async def wait_tx(self, tx_id: bytes, timeout_s: float) -> dict[str, Any]: ...
    def query(self, kind: str, ref: str) -> dict[str, Any] | None: ...
    def book_page(self, did: str, start: int, limit: int, written_off: bool) -> dict[str, Any] | None: ...
    def status(self) -> dict[str, Any]: ...
    def is_ready(self) -> bool: ...
    async def backup(self, name: str | None, keep: int | None) -> dict[str, Any]: ...


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


class _Guard:
    """Rate limit, bearer-token check and body-size limit, before any route runs."""

    def __init__(self, app: ASGIApp, token: str | None, limits: ApiLimits, writes: RateLimiter) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.limits = limits
        self.writes = writes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._open_websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        path = scope["path"]
        client = _client(scope)
        is_read = scope["method"] in _READS
        if not is_read and not await self._allow(client, scope, receive, send):
            return
        if self.token is not None and path not in _OPEN_PATHS and not _is_console(path):
            if not self._token_ok(headers):
                # A wrong guess costs from the write budget: token guessing is rate limited too.
                if is_read and not await self._allow(client, scope, receive, send):
                    return
                await _error(401, "unauthorized", "missing or wrong bearer token")(scope, receive, send)
                return
        limit = self.limits.max_body_bytes
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _error(413, "too_large", f"request body is over {limit} bytes")(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _open_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Open a WebSocket only with the token, and charge the opening as a write.

        A refused opening gets the same JSON error and status as a request
        (401, 429 with Retry-After) where the server can send one; each
        message is charged again by the endpoint.
        """
        if not await self._allow(_client(scope), scope, receive, send):
            return
        if self.token is not None and not self._token_ok(dict(scope["headers"])):
            await _refuse_websocket(
                _error(401, "unauthorized", "missing or wrong bearer token"), scope, receive, send
            )
            return
        await self.app(scope, receive, send)

    def _token_ok(self, headers: dict[bytes, bytes]) -> bool:
        assert self.token is not None
        return hmac.compare_digest(headers.get(b"authorization", b""), b"Bearer " + self.token)

    async def _allow(self, client: str, scope: Scope, receive: Receive, send: Send) -> bool:
        wait_s = self.writes.check(client)
        if wait_s == 0.0:
            return True
        error = _rate_limited(client, self.limits, wait_s)
        response = _error(error.status, error.code, error.message, error.headers)
        if scope["type"] == "websocket":
            await _refuse_websocket(response, scope, receive, send)
        else:
            await response(scope, receive, send)
        return False


def _client(scope: Scope) -> str:
    return scope["client"][0] if scope.get("client") else "unknown"


def _rate_limited(client: str, limits: ApiLimits, wait_s: float) -> ApiError:
    retry = retry_after_header(wait_s)
    return ApiError(
        429,
        "rate_limited",
        f"too many requests from {client} (at most {limits.write_rate_per_s:g} writes per "
        f"second, bursts of {limits.write_burst}); retry after {retry} s",
        {"Retry-After": retry},
    )


async def _refuse_websocket(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
    """Refuse a WebSocket opening with ``response`` where the server can send one, else close it."""
    if "websocket.http.response" in scope.get("extensions", {}):
        await response(scope, receive, send)  # Starlette sends it as websocket.http.response.*
    else:
        await send({"type": "websocket.close", "code": 1008})


class _SlashedRefs:
    """A path with an escaped ``/`` answered from its raw form (``api_input.slashed_ref``), before routing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("raw_path"):
            refusal = slashed_ref(scope["method"], scope["raw_path"], _REF_ROUTES)
            if refusal is not None:
                await _error(refusal.status, refusal.code, refusal.message)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _is_console(path: str) -> bool:
    return path == _CONSOLE_PREFIX or path.startswith(_CONSOLE_PREFIX + "/")


def _check_query(request: Request, params: tuple[str, ...]) -> None:
    unknown = sorted(set(request.query_params) - set(params))
    if unknown:
        takes = f"it takes {', '.join(params)}" if params else "it takes none"
        raise bad_request(
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(u) for u in unknown)} on {request.url.path}: {takes}"
        )
    repeated = [
        (name, n) for name, n in Counter(k for k, _ in request.query_params.multi_items()).items() if n > 1
    ]
    if repeated:
        name, times = repeated[0]
        raise bad_request(
            f"query parameter '{name}' is given {times} times on {request.url.path}: give it once"
        )


def _route(
    handler: Callable[[Request], Awaitable[Any]], params: tuple[str, ...] = ()
) -> Callable[[Request], Awaitable[Response]]:
    """``handler`` as an endpoint; a query parameter not in ``params``, or given twice, is refused with 400.

    A misspelt parameter (``?start=`` for ``?from=``) would otherwise be ignored
    and the caller answered from the default without a word; of one given twice
    (``?from=1&from=5``) only the last would count.
    """

    async def endpoint(request: Request) -> Response:
        try:
            _check_query(request, params)
            result = await handler(request)
        except ApiError as e:
            return _error(e.status, e.code, e.message, e.headers)
        if isinstance(result, Response):
            return result
        return JSONResponse(result)

    return endpoint


def _loan_id(ref: str) -> str:
    return hex_id(ref, "loan id")


def _tx_id(ref: str) -> str:
    return hex_id(ref, "tx id")


def _proposal_ref(ref: str) -> str:
    expected = "a proposal id is 64 hex digits (32 bytes), or 'open' for the open proposals"
    return ref if ref == "open" else hex_id(ref, "proposal id", expected)


def _asset_ref(ref: str) -> str:
    return hex_id(
        ref, "asset", "an asset is named by its collateral id, 64 hex digits: lendchain collateral id"
    )


def _name(ref: str) -> str:
    """A member's or a parameter's name, or ``*``: any string names one, or none (404)."""
    return ref


_NO_PARTY = "{ref} is no registered party and no member"
# GET /<path>: node.query(kind, ref) on the ref ``parse`` takes, and the 404 sentence when it is None.
_QUERIES: tuple[tuple[str, str, Callable[[str], str], str], ...] = (
    ("/loans/{ref}", "loan", _loan_id, "no loan {ref}"),
    ("/parties/{ref}", "party", did_ref, _NO_PARTY),
    ("/nonces/{ref}", "nonce", did_ref, ""),  # any did:key has a nonce: 0 before its first tx
    ("/scores/{ref}", "score", did_ref, "{ref} is no registered party: only a party has a credit score"),
    ("/reminders/{ref}", "reminders", did_ref, _NO_PARTY),
    ("/exposure/{ref}", "exposure", did_ref, "{ref} is no registered party and has no loans"),
    ("/portfolio/{ref}", "portfolio", did_ref, "{ref} is no member and services no loan"),
    (
        "/positions/{ref}",
        "positions",
        did_ref,
        "{ref} committed to no syndicated loan (indexed from rules 2)",
    ),
    ("/audit/{ref}", "audit", _loan_id, "no loan {ref}"),
    (
        "/collateral/{ref}",
        "collateral",
        _asset_ref,
        "no lien is recorded on asset {ref} (an asset is named by its collateral id, 64 hex digits: "
        "lendchain collateral id)",
    ),
    ("/disputes/{ref}", "disputes", did_ref, _NO_PARTY),
    ("/offers/{ref}", "offer", lambda ref: hex_id(ref, "offer id"), "no offer {ref}"),
    ("/policies/{ref}", "policy", lambda ref: hex_id(ref, "policy id"), "no policy {ref}"),
    ("/proposals/{ref}", "proposal", _proposal_ref, "no proposal {ref}"),
    ("/node-keys/{ref}", "node_keys", _name, "no member {ref}"),
    ("/voting/{ref}", "voting", _name, "no member {ref}"),
    ("/members/{ref}", "members", _name, "no member {ref}"),
    ("/params/{ref}", "params", _name, "no chain parameter {ref}"),
)
_NO_TX = "no transaction {ref} is known to this node"
_NO_BLOCK = "no block {ref}"
_NO_BOOK = "{ref} is no member and services no loan"
# Every route that takes a reference in its path (``slashed_ref``).
_REF_ROUTES: RefRoutes = {
    "/txs/{ref}": (_tx_id, _NO_TX),
    "/blocks/{ref}": (block_ref, _NO_BLOCK),
    **{path: (parse, missing) for path, _, parse, missing in _QUERIES},
    "/portfolio/{ref}/loans": (did_ref, _NO_BOOK),
}


def _submit(node: NodeFacade, raw: list[bytes]) -> list[dict[str, Any]]:
    try:
        return node.submit(raw)
    except MempoolFull as e:
        raise ApiError(503, "mempool_full", str(e), {"Retry-After": str(e.retry_after_s)}) from None


def _stream_answer(
    node: NodeFacade, limits: ApiLimits, writes: RateLimiter, client: str, message: dict[str, Any]
) -> dict[str, Any]:
    """The answer to one ``/txs/stream`` message: ``POST /txs``'s results, or its error.

    ``{"results": [...]}``, one per tx as ``POST /txs`` gives them (also for
    ``{"tx": hex}``), or ``{"error", "message", "status"}`` with the HTTP
    status the same body would have got, and ``retry_after_s`` where that
    had a Retry-After. The message's ``id``, if it has one, comes back
    unchanged, so a client that sends several before reading can match
    answers (they come in order anyway). A bad message is answered and the
    stream stays open.
    """
    doc: Any = None
    try:
        wait_s = writes.check(client)
        if wait_s:
            raise _rate_limited(client, limits, wait_s)
        data = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        if len(data) > limits.max_body_bytes:
            raise ApiError(413, "too_large", f"message is over {limits.max_body_bytes} bytes")
        doc = parse_json(data, "message")
        answer: dict[str, Any] = {"results": _submit(node, batch(doc, limits, also=("id",)))}
    except ApiError as e:
        answer = {"error": e.code, "message": e.message, "status": e.status}
        if "Retry-After" in e.headers:
            answer["retry_after_s"] = int(e.headers["Retry-After"])
    if isinstance(doc, dict) and "id" in doc:
        answer["id"] = doc["id"]
    return answer


def build_app(
    node: NodeFacade,
    token: str | None = None,
    limits: ApiLimits | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Starlette:
    limits = limits or ApiLimits()
    writes = RateLimiter(limits.write_rate_per_s, limits.write_burst, clock)

    async def submit(request: Request) -> Any:
        doc = await json_body(request, limits.max_body_bytes)
        results = _submit(node, batch(doc, limits))
        if "tx" in doc:
            result = results[0]
            return JSONResponse(result, status_code=202 if result["status"] in _TAKEN else 400)
        taken = any(r["status"] in _TAKEN for r in results)
        return JSONResponse({"results": results}, status_code=202 if taken else 400)

    async def check(request: Request) -> Any:
        doc = await json_body(request, limits.max_body_bytes)
        if not isinstance(doc, dict) or set(doc) != {"tx"}:
            raise bad_request('body must be {"tx": hex}: one transaction per check')
        return node.check_tx(batch(doc, limits)[0])

    async def submit_stream(websocket: WebSocket) -> None:
        if websocket.query_params:  # refused as a request's would be; the stream takes none
            refusal = _error(400, "bad_request", "/txs/stream takes no query parameters")
            await _refuse_websocket(refusal, websocket.scope, websocket.receive, websocket.send)
            return
        await websocket.accept()
        client = _client(websocket.scope)
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            answer = _stream_answer(node, limits, writes, client, message)
            await websocket.send_text(json.dumps(answer))

    async def stream_over_http(request: Request) -> Any:
        raise ApiError(
            426,
            "upgrade_required",
            "/txs/stream is a WebSocket: open it with a WebSocket client",
            {"Upgrade": "websocket"},
        )

    async def tx_status(request: Request) -> Any:
        tx_id = bytes.fromhex(_tx_id(request.path_params["ref"]))
        wait_ms = int_param(request, "wait_ms", 0, 0, 60_000)
        if wait_ms:
            status = await node.wait_tx(tx_id, wait_ms / 1000)
        else:
            status = node.tx_status(tx_id)
        if status["status"] == "unknown":
            raise ApiError(404, "not_found", _NO_TX.format(ref=tx_id.hex()))
        return status

    async def block(request: Request) -> Any:
        ref = block_ref(request.path_params["ref"])
        found = node.block(ref)
        if found is None:
            raise ApiError(404, "not_found", _NO_BLOCK.format(ref=ref))
        return found

    async def blocks(request: Request) -> Any:
        start = int_param(request, "from", 1, 0, HEIGHT_MAX)
        limit = int_param(request, "limit", 20, 1, BLOCKS_PAGE_MAX)
        return {"blocks": node.blocks(start, limit)}

    async def raw_blocks(request: Request) -> Any:
        start = int_param(request, "from", 1, 1, HEIGHT_MAX)
        limit = int_param(request, "limit", 100, 1, RAW_BLOCKS_PAGE_MAX)
        return node.raw_blocks(start, limit)

    async def commits(request: Request) -> Any:
        since = int_param(request, "since", 0, 0, HEIGHT_MAX)
        wait_ms = int_param(request, "wait_ms", 0, 0, 60_000)
        limit = int_param(request, "limit", 100, 1, COMMITS_PAGE_MAX)
        if wait_ms:
            await node.wait_for_height(since + 1, wait_ms / 1000)
        return node.commits_since(since, limit)

    def query_route(
        kind: str, parse: Callable[[str], str], missing: str
    ) -> Callable[[Request], Awaitable[Any]]:
        """A route answering ``node.query(kind, ref)``; ``parse`` takes the ref or refuses it (400)."""

        async def handler(request: Request) -> Any:
            ref = parse(request.path_params["ref"])
            found = node.query(kind, ref)
            if found is None:
                raise ApiError(404, "not_found", missing.format(ref=ref))
            return found

        return handler

    async def book_page(request: Request) -> Any:
        did = did_ref(request.path_params["ref"])
        start = int_param(request, "from", 0, 0, HEIGHT_MAX)
        limit = int_param(request, "limit", 500, 1, BOOK_PAGE_MAX)
        written_off = bool(int_param(request, "written_off", 0, 0, 1))  # the recoveries it services too
        found = node.book_page(did, start, limit, written_off)
        if found is None:
            raise ApiError(404, "not_found", _NO_BOOK.format(ref=did))
        return found

    async def status(request: Request) -> Any:
        return node.status()

    async def health(request: Request) -> Any:
        return {"status": "ok"}

    async def ready(request: Request) -> Any:
        if not node.is_ready():
            raise ApiError(503, "not_ready", "node is starting or catching up")
        return {"status": "ready"}

    async def backup(request: Request) -> Any:
        doc = await json_body(request, limits.max_body_bytes, empty={})
        name = doc.get("name") if isinstance(doc, dict) else None
        keep = doc.get("keep") if isinstance(doc, dict) else None
        if (
            not isinstance(doc, dict)
            or set(doc) - {"name", "keep"}
            or not isinstance(name, str | None)
            or not (keep is None or type(keep) is int)
        ):
            raise ApiError(
                400, "bad_request", 'body must be {} or {"name": "<directory name>", "keep": <count>}'
            )
        try:
            return JSONResponse(await node.backup(name, keep), status_code=201)
        except BackupError as e:
            status = {"exists": 409, "busy": 409, "stopping": 503}.get(e.code, 500)
            status = 400 if e.code.startswith("bad_") else status
            raise ApiError(status, "backup_" + e.code, str(e)) from None

    async def metrics(request: Request) -> Any:
        return Response(generate_latest(node.metrics_registry), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/txs", _route(submit), methods=["POST"]),
        Route("/txs/check", _route(check), methods=["POST"]),
        WebSocketRoute("/txs/stream", submit_stream),
        Route("/txs/stream", _route(stream_over_http)),
        Route("/txs/{ref}", _route(tx_status, ("wait_ms",))),
        Route("/blocks", _route(blocks, ("from", "limit"))),
        Route(
            "/blocks/raw", _route(raw_blocks, ("from", "limit"))
        ),  # before /blocks/{ref}, which would take "raw"
        Route("/blocks/{ref}", _route(block)),
        Route("/commits", _route(commits, ("since", "wait_ms", "limit"))),
        *(Route(path, _route(query_route(kind, parse, missing))) for path, kind, parse, missing in _QUERIES),
        Route("/portfolio/{ref}/loans", _route(book_page, ("from", "limit", "written_off"))),
        Route("/status", _route(status)),
        Route("/health", _route(health)),
        Route("/ready", _route(ready)),
        Route("/metrics", _route(metrics)),
        Route("/backups", _route(backup), methods=["POST"]),
        Mount(_CONSOLE_PREFIX, StaticFiles(directory=CONSOLE_DIR, html=True), name="console"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(404, "not_found", f"no route {request.method} {request.url.path}")

    async def bad_method(request: Request, exc: Exception) -> Response:
        return _error(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}")

    async def crashed(request: Request, exc: Exception) -> Response:
        return _error(500, "internal", "the node failed to answer this request; see its log")

    return Starlette(
        routes=routes,
        middleware=[
            Middleware(_Guard, token=token, limits=limits, writes=writes),
            Middleware(_SlashedRefs),
        ],
        exception_handlers={404: not_found, 405: bad_method, 500: crashed},
    )
