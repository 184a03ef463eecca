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

import binascii
import hmac
import json
import time
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
from lendchain.node.backup import BackupError
from lendchain.node.config import ApiLimits
from lendchain.node.mempool import MempoolFull
from lendchain.node.ratelimit import RateLimiter, retry_after_header

_OPEN_PATHS = ("/health", "/ready")
_READS = ("GET", "HEAD", "OPTIONS")
# The console's HTML/JS/CSS hold no chain data, and a browser cannot put a
# bearer header on a page load: the page is open, every API call it makes is not.
CONSOLE_DIR = Path(__file__).parent / "console"
_CONSOLE_PREFIX = "/console"
_TAKEN = ("accepted", "known")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


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


def _is_console(path: str) -> bool:
    return path == _CONSOLE_PREFIX or path.startswith(_CONSOLE_PREFIX + "/")


def _route(
    handler: Callable[[Request], Awaitable[Any]], params: tuple[str, ...] = ()
) -> Callable[[Request], Awaitable[Response]]:
    """``handler`` as an endpoint; a query parameter not in ``params`` is refused with 400.

    A misspelt parameter (``?start=`` for ``?from=``) would otherwise be ignored
    and the caller answered from the default without a word.
    """

    async def endpoint(request: Request) -> Response:
        try:
            unknown = sorted(set(request.query_params) - set(params))
            if unknown:
                takes = f"it takes {', '.join(params)}" if params else "it takes none"
                raise ApiError(
                    400,
                    "bad_request",
                    f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
                    f"{', '.join(repr(u) for u in unknown)} on {request.url.path}: {takes}",
                )
            result = await handler(request)
        except ApiError as e:
            return _error(e.status, e.code, e.message, e.headers)
        if isinstance(result, Response):
            return result
        return JSONResponse(result)

    return endpoint


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.lstrip("-").isdigit() or not lo <= int(raw) <= hi:
        raise ApiError(400, "bad_request", f"query parameter '{name}' must be an integer from {lo} to {hi}")
    return int(raw)


def _hex_param(value: str, name: str, size: int | None = None) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ApiError(400, "bad_request", f"'{name}' must be hex") from None
    if size is not None and len(raw) != size:
        raise ApiError(400, "bad_request", f"'{name}' must be {size} bytes ({2 * size} hex digits)")
    return raw


async def _json_body(request: Request, limit: int, empty: Any = None) -> Any:
    """The request's JSON body; ``empty`` for no body at all, when given."""
    chunks, size = [], 0
    async for chunk in request.stream():  # a chunked body has no Content-Length to check up front
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"request body is over {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body and empty is not None:
        return empty
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "bad_request", "request body is not valid JSON") from None


def _batch(doc: Any, limits: ApiLimits) -> list[bytes]:
    """The raw txs of a ``POST /txs`` body (``{"tx": hex}`` or ``{"txs": [hex, ...]}``), or ApiError."""
    if not isinstance(doc, dict) or ("tx" in doc) == ("txs" in doc):
        raise ApiError(400, "bad_request", 'body must be {"tx": hex} or {"txs": [hex, ...]}')
    items = [doc["tx"]] if "tx" in doc else doc["txs"]
    if isinstance(items, list) and len(items) <= limits.max_batch_txs:
        # A good batch decodes in one pass, by a2b_hex: a quarter fewer instructions than
        # bytes.fromhex, which also skips whitespace. It refuses a non-str (TypeError) and
        # whitespace or a bad digit (binascii.Error, a ValueError); the checks below then run,
        # as they always did, to name what is wrong, or to take hex with spaces in it.
        try:
            return [binascii.a2b_hex(t) for t in items]
        except (TypeError, ValueError):
            pass
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        raise ApiError(400, "bad_request", "'txs' must be a list of hex strings")
    if len(items) > limits.max_batch_txs:
        raise ApiError(
            413, "too_large", f"a batch holds at most {limits.max_batch_txs} txs, got {len(items)}"
        )
    return [_hex_param(t, f"txs[{i}]") for i, t in enumerate(items)]


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
        try:
            doc = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "bad_request", "message is not valid JSON") from None
        answer: dict[str, Any] = {"results": _submit(node, _batch(doc, limits))}
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
        doc = await _json_body(request, limits.max_body_bytes)
        results = _submit(node, _batch(doc, limits))
        if "tx" in doc:
            result = results[0]
            return JSONResponse(result, status_code=202 if result["status"] in _TAKEN else 400)
        taken = any(r["status"] in _TAKEN for r in results)
        return JSONResponse({"results": results}, status_code=202 if taken else 400)

    async def check(request: Request) -> Any:
        doc = await _json_body(request, limits.max_body_bytes)
        if not isinstance(doc, dict) or set(doc) != {"tx"}:
            raise ApiError(400, "bad_request", 'body must be {"tx": hex}: one transaction per check')
        return node.check_tx(_batch(doc, limits)[0])

    async def submit_stream(websocket: WebSocket) -> None:
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
        tx_id = _hex_param(request.path_params["tx_id"], "tx id", 32)
        wait_ms = _int_param(request, "wait_ms", 0, 0, 60_000)
        if wait_ms:
            status = await node.wait_tx(tx_id, wait_ms / 1000)
        else:
            status = node.tx_status(tx_id)
        if status["status"] == "unknown":
            raise ApiError(404, "not_found", f"no transaction {tx_id.hex()} is known to this node")
        return status

    async def block(request: Request) -> Any:
        found = node.block(request.path_params["ref"])
        if found is None:
            raise ApiError(404, "not_found", f"no block {request.path_params['ref']}")
        return found

    async def blocks(request: Request) -> Any:
        start = _int_param(request, "from", 1, 0, 2**62)
        limit = _int_param(request, "limit", 20, 1, 500)
        return {"blocks": node.blocks(start, limit)}

    async def raw_blocks(request: Request) -> Any:
        start = _int_param(request, "from", 1, 1, 2**62)
        limit = _int_param(request, "limit", 100, 1, 1000)
        return node.raw_blocks(start, limit)

    async def commits(request: Request) -> Any:
        since = _int_param(request, "since", 0, 0, 2**62)
        wait_ms = _int_param(request, "wait_ms", 0, 0, 60_000)
        limit = _int_param(request, "limit", 100, 1, 1000)
        if wait_ms:
            await node.wait_for_height(since + 1, wait_ms / 1000)
        return node.commits_since(since, limit)

    def query_route(kind: str, missing: str = "no {kind} {ref}") -> Callable[[Request], Awaitable[Any]]:
        async def handler(request: Request) -> Any:
            ref = request.path_params["ref"]
            found = node.query(kind, ref)
            if found is None:
                raise ApiError(404, "not_found", missing.format(kind=kind, ref=ref))
            return found

        return handler

    async def book_page(request: Request) -> Any:
        did = request.path_params["ref"]
        start = _int_param(request, "from", 0, 0, 2**62)
        limit = _int_param(request, "limit", 500, 1, BOOK_PAGE_MAX)
        written_off = bool(_int_param(request, "written_off", 0, 0, 1))  # the recoveries it services too
        found = node.book_page(did, start, limit, written_off)
        if found is None:
            raise ApiError(404, "not_found", f"{did} is no member and services no loan")
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
        doc = await _json_body(request, limits.max_body_bytes, empty={})
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
        Route("/txs/{tx_id}", _route(tx_status, ("wait_ms",))),
        Route("/blocks", _route(blocks, ("from", "limit"))),
        Route(
            "/blocks/raw", _route(raw_blocks, ("from", "limit"))
        ),  # before /blocks/{ref}, which would take "raw"
        Route("/blocks/{ref}", _route(block)),
        Route("/commits", _route(commits, ("since", "wait_ms", "limit"))),
        Route("/loans/{ref}", _route(query_route("loan"))),
        Route("/parties/{ref}", _route(query_route("party"))),
        Route("/nonces/{ref}", _route(query_route("nonce"))),
        Route("/scores/{ref}", _route(query_route("score"))),
        Route("/reminders/{ref}", _route(query_route("reminders"))),
        Route(
            "/exposure/{ref}",
            _route(query_route("exposure", "{ref} is no registered party and has no loans")),
        ),
        Route(
            "/portfolio/{ref}", _route(query_route("portfolio", "{ref} is no member and services no loan"))
        ),
        Route("/portfolio/{ref}/loans", _route(book_page, ("from", "limit", "written_off"))),
        Route(
            "/positions/{ref}",
            _route(query_route("positions", "{ref} committed to no syndicated loan (indexed from rules 2)")),
        ),
        Route("/audit/{ref}", _route(query_route("audit"))),
        Route(
            "/collateral/{ref}",
            _route(
                query_route(
                    "collateral",
                    "no lien is recorded on asset {ref} (an asset is named by its collateral id, 64 hex "
                    "digits: lendchain collateral id)",
                )
            ),
        ),
        Route(
            "/disputes/{ref}", _route(query_route("disputes", "{ref} is no registered party and no member"))
        ),
        Route("/offers/{ref}", _route(query_route("offer"))),
        Route("/policies/{ref}", _route(query_route("policy"))),
        Route("/proposals/{ref}", _route(query_route("proposal"))),
        Route("/node-keys/{ref}", _route(query_route("node_keys"))),
        Route("/voting/{ref}", _route(query_route("voting"))),
        Route("/members/{ref}", _route(query_route("members", "no member {ref}"))),
        Route("/params/{ref}", _route(query_route("params", "no chain parameter {ref}"))),
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
        middleware=[Middleware(_Guard, token=token, limits=limits, writes=writes)],
        exception_handlers={404: not_found, 405: bad_method, 500: crashed},
    )
