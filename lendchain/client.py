"""A small HTTP client for a node's API, used by the CLI, devnet and tests.

Transactions are built and signed locally (the key never leaves this
process) and sent as hex. Every failure becomes a ``NodeError`` with one
sentence a person can act on. ``NodeClient.stream()`` opens the node's
``/txs/stream`` WebSocket, for a system that sends batches often.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from typing import Any
from urllib.parse import quote

import httpx
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from lendchain.crypto import SigningKey
from lendchain.ledger.transactions import Transaction, build_transaction


def ref_path(route: str, ref: str, *rest: str) -> str:
    """``route/ref`` (then ``rest``), with ``ref`` escaped as one path segment of the API's URL.

    A reference is what a user typed: unescaped, ``../status`` would ask for
    ``/status`` and ``x?from=1`` would send a query parameter, and the command
    would print another route's answer. ``:`` (in a did:key) and ``*`` (every
    member) stay as they are; ``.`` and ``..``, which a client drops from a
    path, are escaped too.
    """
    segment = quote(ref, safe=":*@")
    if segment in (".", ".."):
        segment = segment.replace(".", "%2E")
    return "/".join((route, segment, *rest))


class NodeError(Exception):
    """The node could not be reached or refused the request."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after_s: int | None = None  # when the node said when to try again


class NodeClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = timeout
        self._http = httpx.Client(base_url=self.url, headers=self._headers, timeout=timeout)
        self._chain_id: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise NodeError(f"node at {self.url} did not answer {method} {path} in time") from None
        except httpx.HTTPError as e:
            raise NodeError(f"cannot reach node at {self.url} ({type(e).__name__}); is it running?") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400 and not (
            response.status_code == 400 and isinstance(body, dict) and "status" in body
        ):
            if isinstance(body, dict) and "message" in body:
                error = NodeError(body["message"], response.status_code, body.get("error"))
                retry_after = response.headers.get("Retry-After", "")
                error.retry_after_s = int(retry_after) if retry_after.isdigit() else None
                raise error
            raise NodeError(
                f"node at {self.url} answered HTTP {response.status_code} to {method} {path}",
                response.status_code,
            )
        return body

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path``; query parameters may be in it, as keywords, or both (None ones left out)."""
        path, _, query = path.partition("?")
        merged = httpx.QueryParams(query).merge({k: v for k, v in params.items() if v is not None})
        # httpx replaces a path's query with ``params`` when both are given, even an empty one.
        return self.request("GET", path, params=merged)

    def backup(
        self, name: str | None = None, keep: int | None = None, timeout_s: float = 3600.0
    ) -> dict[str, Any]:
        """Have the node copy its store to its ``backup_dir`` (``POST /backups``); the backup's info.

        ``keep``: then delete the node's older backups but the newest ``keep``.
        A large store takes minutes to copy and read back, hence the long timeout.
        """
        body = {key: value for key, value in (("name", name), ("keep", keep)) if value is not None}
        return self.request("POST", "/backups", json=body, timeout=timeout_s)

    # -- chain ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return self.get("/status")

    @property
    def chain_id(self) -> str:
        if self._chain_id is None:
            self._chain_id = self.status()["chain_id"]
        return self._chain_id

    def next_nonce(self, did: str) -> int:
        return int(self.get(ref_path("/nonces", did))["next_nonce"])

    def build(
        self, key: SigningKey, kind: str, payload: dict[str, Any], nonce: int | None = None
    ) -> Transaction:
        if nonce is None:
            nonce = self.next_nonce(key.did)
        return build_transaction(
            key, self.chain_id, kind, payload=payload, nonce=nonce, created_ms=int(time.time() * 1000)
        )

    def check(self, tx: Transaction) -> dict[str, Any]:
        """What the next block would do with ``tx`` (``POST /txs/check``): a dry run, nothing kept."""
        return self.request("POST", "/txs/check", json={"tx": tx.encode().hex()})

    def submit(self, tx: Transaction) -> dict[str, Any]:
        result = self.request("POST", "/txs", json={"tx": tx.encode().hex()})
        if result.get("status") == "rejected":
            raise NodeError(
                f"transaction rejected ({result['code']}): {result['message']}", 400, result["code"]
            )
        return result

    def submit_many(self, txs: list[Transaction]) -> list[dict[str, Any]]:
        return self.request("POST", "/txs", json={"txs": [tx.encode().hex() for tx in txs]})["results"]

    def stream(self) -> TxStream:
        """Open the node's ``/txs/stream`` (close it, or use it as a context manager)."""
        return TxStream(self.url, self._headers, self._timeout)

    def tx(self, tx_id: str) -> dict[str, Any]:
        return self.get(ref_path("/txs", tx_id))

    def wait_tx(self, tx_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """Wait until the node reports the tx committed, expired or rejected."""
        deadline = time.monotonic() + timeout_s
        # Each request asks the node to hold it open for less than this client's own timeout,
        # so a slow commit is a "pending" answer and another round, not a timeout error.
        hold_s = max(0.0, min(10.0, self._timeout - 2.0))
        while True:
            remaining = deadline - time.monotonic()
            status = self.get(ref_path("/txs", tx_id), wait_ms=int(max(0, min(remaining, hold_s)) * 1000))
            if status["status"] != "pending":
                return status
            if remaining <= 0:
                raise NodeError(f"tx {tx_id} still pending after {timeout_s:.0f} s")

    def send(
        self, key: SigningKey, kind: str, payload: dict[str, Any], wait: bool = True, timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """Build, sign, submit and (by default) wait for one transaction."""
        tx = self.build(key, kind, payload)
        self.submit(tx)
        if not wait:
            return {"id": tx.id.hex(), "status": "accepted"}
        status = self.wait_tx(tx.id.hex(), timeout_s)
        result = status.get("result") or {}
        if status["status"] != "committed":
            raise NodeError(f"tx {tx.id.hex()} was {status['status']}: {status.get('message', '')}")
        if result.get("code") != "ok":
            raise NodeError(
                f"tx {tx.id.hex()} committed in block {status['height']} but failed "
                f"({result.get('code')}): {result.get('message')}",
                code=result.get("code"),
            )
        return status


class TxStream:
    """One WebSocket to a node's ``/txs/stream``: a batch of txs out, its results back.

    The node answers each message in order, as ``POST /txs`` would, for less
    than half a request's CPU on the node. Errors ``POST /txs`` would answer
    with a status (a bad batch, a full mempool, the rate limit) raise
    ``NodeError`` with that status and code; the stream stays open.
    """

    def __init__(self, url: str, headers: dict[str, str], timeout: float) -> None:
        self.url = "ws" + url.removeprefix("http") + "/txs/stream"
        self._timeout = timeout
        self._open = ExitStack()
        try:
            # compression=None: deflating hex costs both ends more CPU than it saves on a LAN.
            opening = connect(
                self.url, additional_headers=headers, compression=None, max_size=None, open_timeout=timeout
            )
            self._ws: ClientConnection = self._open.enter_context(opening)
        except InvalidStatus as e:
            raise _refused(self.url, e) from None
        except (OSError, TimeoutError, WebSocketException) as e:
            raise NodeError(f"cannot open {self.url} ({type(e).__name__}); is the node running?") from None

    def close(self) -> None:
        self._open.close()

    def __enter__(self) -> TxStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit_many(self, txs: list[Transaction]) -> list[dict[str, Any]]:
        return self.submit_hex([tx.encode().hex() for tx in txs])

    def submit_hex(self, items: list[str]) -> list[dict[str, Any]]:
        """Send txs (hex of their encoding); their results, as ``POST /txs`` gives them."""
        self._send(items, None)
        answer = self._receive()
        if "error" in answer:
            raise _answer_error(answer)
        return answer["results"]

    def submit_pipelined(
        self, batches: Iterable[list[str]], window: int = 8
    ) -> Iterator[list[dict[str, Any]] | NodeError]:
        """Send batches of hex txs with up to ``window`` unanswered; yield each one's answer, in order.

        An answer is the batch's results, or the ``NodeError`` a refused batch
        (a full mempool, the rate limit, a bad batch) would have raised,
        yielded rather than raised so the batches after it are not lost; retry
        those after ``retry_after_s``. A closed stream, a silent node or an
        answer out of step raises (open a new stream then). Leaving the loop
        early still reads the answers in flight, so the stream stays usable.
        """
        if window < 1:
            raise ValueError("window must be at least 1")
        in_flight: deque[int] = deque()
        try:
            for number, items in enumerate(batches):
                if len(in_flight) == window:
                    yield self._answer_for(in_flight.popleft())
                self._send(items, number)
                in_flight.append(number)
            while in_flight:
                yield self._answer_for(in_flight.popleft())
        except GeneratorExit:  # the caller stopped early: read what is in flight, keep in step
            while in_flight:
                self._answer_for(in_flight.popleft())
            raise

    def _answer_for(self, number: int) -> list[dict[str, Any]] | NodeError:
        answer = self._receive()
        if answer.get("id") != number:
            raise NodeError(f"{self.url} answered message {answer.get('id')!r} where {number} was due")
        return _answer_error(answer) if "error" in answer else answer["results"]

    def _send(self, items: list[str], number: int | None) -> None:
        message: dict[str, Any] = {"txs": items}
        if number is not None:
            message["id"] = number
        try:
            self._ws.send(json.dumps(message))
        except WebSocketException as e:
            raise NodeError(f"the stream {self.url} closed ({e})") from None

    def _receive(self) -> dict[str, Any]:
        try:
            return json.loads(self._ws.recv(timeout=self._timeout))
        except TimeoutError:
            raise NodeError(f"node did not answer on {self.url} in time") from None
        except WebSocketException as e:
            raise NodeError(f"the stream {self.url} closed ({e})") from None


def _answer_error(answer: dict[str, Any]) -> NodeError:
    error = NodeError(answer["message"], answer.get("status"), answer["error"])
    error.retry_after_s = answer.get("retry_after_s")
    return error


def _refused(url: str, e: InvalidStatus) -> NodeError:
    """The node's JSON error for a refused stream opening, as a NodeError."""
    status = e.response.status_code
    try:
        body = json.loads(e.response.body or b"")
        return NodeError(body["message"], status, body.get("error"))
    except (ValueError, TypeError, KeyError):
        return NodeError(f"node refused to open {url} (HTTP {status})", status)
