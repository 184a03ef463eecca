"""What the API takes from a request, parsed at the edge: path references, query parameters, JSON bodies.

Each parser returns the value a route hands to the node, or raises ``ApiError``
(400, or 413 for a batch over the limit) with one sentence naming the bad
part and what is expected. So the node's views see only well-formed input:
a route never answers a malformed reference with a 404 as if it named
nothing, nor with a 500 from deep in a view.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.requests import Request

from lendchain.crypto import DidError, public_key_from_did
from lendchain.node.config import ApiLimits
from lendchain.node.pages import HEIGHT_MAX

_HEX_ID = re.compile(r"[0-9a-fA-F]{64}")
_HEX = re.compile(r"[0-9a-fA-F]*")
_HEIGHT = re.compile(r"[0-9]{1,19}")
_INT = re.compile(r"-?[0-9]{1,19}")  # longer is out of every range a route takes (and int() refuses 4,300+)
_SHOWN_MAX = 80  # characters of a bad reference echoed back


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def shown(ref: str) -> str:
    """``ref`` quoted for a message, cut short if long."""
    return repr(ref if len(ref) <= _SHOWN_MAX else ref[:_SHOWN_MAX] + "…")


def hex_id(ref: str, what: str, expected: str = "") -> str:
    """``ref`` as the lowercase hex of a 32-byte id (a loan's, an offer's, …), or ApiError.

    Capitals are taken (the console and a pasted id may have them); anything
    but 64 hex digits is refused, saying whether it is not hex or how many
    digits it has. ``expected`` replaces the sentence's default ending.
    """
    if _HEX_ID.fullmatch(ref):
        return ref.lower()
    expected = expected or f"a {what} is 64 hex digits (32 bytes)"
    if not _HEX.fullmatch(ref):
        raise bad_request(f"{what} {shown(ref)} is not hex: {expected}")
    raise bad_request(f"{what} {shown(ref)} has {len(ref)} hex digits: {expected}")


def did_ref(ref: str) -> str:
    """``ref`` if it is an Ed25519 did:key (every party and member is one), else ApiError."""
    try:
        public_key_from_did(ref)
    except DidError as e:
        reason = str(e) if len(ref) <= _SHOWN_MAX else f"{shown(ref)} is not a did:key"
        raise bad_request(f"{reason}: this route takes a party's or a member's did:key") from None
    return ref


def block_ref(ref: str) -> str:
    """``head``, a height (decimal digits) or a block hash (64 hex digits, lowercased), else ApiError."""
    if ref == "head" or (_HEIGHT.fullmatch(ref) and int(ref) <= HEIGHT_MAX):
        return ref
    if _HEX_ID.fullmatch(ref):
        return ref.lower()
    if ref.isascii() and ref.isdigit():
        raise bad_request(f"block height {shown(ref)} is over {HEIGHT_MAX}")
    raise bad_request(f"block {shown(ref)} is no height, block hash (64 hex digits) or 'head'")


# A path route that takes a reference: how it parses one, and its 404 sentence for one that names nothing.
RefRoutes = Mapping[str, tuple[Callable[[str], str], str]]
_ESCAPED_SLASH = re.compile(rb"%2f", re.IGNORECASE)


def slashed_ref(method: str, raw_path: bytes, routes: RefRoutes) -> ApiError | None:
    """The answer to a path with an escaped ``/`` (``%2F``) in it, or None for any other path.

    The server decodes the path before routing, so ``/loans/ab%2Fcd`` (a loan
    id ``ab/cd``, sent as one segment) would be routed as ``/loans/ab/cd``: a
    generic "no route" 404, or another route's answer (``/portfolio/x%2Floans``
    is ``/portfolio/x/loans``). From the raw path, a reference holding the
    ``/`` gets what its route says of it: the 400 sentence of a malformed id,
    DID or block, or for a name (no member's or parameter's has a ``/``) the
    route's 404. An escaped ``/`` anywhere else is no route.
    """
    if not _ESCAPED_SLASH.search(raw_path):
        return None
    segments = raw_path.split(b"/")
    for template, (parse, missing) in routes.items():
        parts = template.encode().split(b"/")
        if len(parts) != len(segments):
            continue
        at = next(i for i, part in enumerate(parts) if part.startswith(b"{"))
        literal = all(parts[i] == segments[i] for i in range(len(parts)) if i != at)
        if literal and _ESCAPED_SLASH.search(segments[at]):
            try:
                ref = parse(unquote_to_bytes(segments[at]).decode("utf-8", "replace"))
            except ApiError as refusal:
                return refusal
            return ApiError(404, "not_found", missing.format(ref=ref))
    return ApiError(404, "not_found", f"no route {method} {raw_path.decode('ascii', 'replace')}")


def int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    """Query parameter ``name`` as an integer from ``lo`` to ``hi`` (ASCII digits), ``default`` if absent."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _INT.fullmatch(raw) or not lo <= int(raw) <= hi:
        raise bad_request(f"query parameter '{name}' must be an integer from {lo} to {hi}")
    return int(raw)


def parse_json(data: str | bytes, what: str) -> Any:
    """``data`` as JSON, or ApiError naming ``what`` (the request body, a stream message)."""
    try:
        return _DECODER.decode(data.decode() if isinstance(data, bytes) else data)
    except (ValueError, UnicodeDecodeError):  # ValueError: JSONDecodeError, or an integer of 4,300+ digits
        raise bad_request(f"{what} is not valid JSON") from None
    except RecursionError:
        raise bad_request(f"{what} nests arrays or objects too deeply") from None


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; one that names a key twice is refused, not read as its last value."""
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise bad_request(f"a JSON object names the key {shown(key)} twice")
            seen.add(key)
    return doc


# One decoder for every request: json.loads with a hook would build one per call (~4 µs a message).
_DECODER = json.JSONDecoder(object_pairs_hook=_object)


async def json_body(request: Request, limit: int, empty: Any = None) -> Any:
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
    return parse_json(body, "request body")


def batch(doc: Any, limits: ApiLimits, also: tuple[str, ...] = ()) -> list[bytes]:
    """The raw txs of a ``POST /txs`` body (``{"tx": hex}`` or ``{"txs": [hex, ...]}``), or ApiError.

    ``also``: keys the body may have besides (a stream message's ``id``).
    """
    if not isinstance(doc, dict) or ("tx" in doc) == ("txs" in doc):
        raise bad_request('body must be {"tx": hex} or {"txs": [hex, ...]}')
    if len(doc) > 1 + len(also):
        unknown = sorted(set(doc) - {"tx", "txs", *also})
        raise bad_request(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(shown(k) for k in unknown)} in the "
            f'body: it is {{"tx": hex}} or {{"txs": [hex, ...]}}'
        )
    single = "tx" in doc
    items = [doc["tx"]] if single else doc["txs"]
    if isinstance(items, list) and len(items) <= limits.max_batch_txs:
        # A good batch decodes in one pass, by a2b_hex: a quarter fewer instructions than
        # bytes.fromhex, which also skips whitespace. It refuses a non-str (TypeError) and
        # whitespace or a bad digit (binascii.Error, a ValueError); the checks below then run,
        # as they always did, to name what is wrong, or to take hex with spaces in it.
        try:
            raws = [binascii.a2b_hex(t) for t in items]
        except (TypeError, ValueError):
            pass
        else:
            if raws and all(raws):  # an empty batch, or an empty tx, is named below
                return raws
    if single:
        if not isinstance(doc["tx"], str):
            raise bad_request("'tx' must be a hex string")
        return [_hex_tx(doc["tx"], "tx")]
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        raise bad_request("'txs' must be a list of hex strings")
    if not items:
        raise bad_request(f"'txs' is empty: a batch holds 1 to {limits.max_batch_txs} txs")
    if len(items) > limits.max_batch_txs:
        raise ApiError(
            413, "too_large", f"a batch holds at most {limits.max_batch_txs} txs, got {len(items)}"
        )
    return [_hex_tx(t, f"txs[{i}]") for i, t in enumerate(items)]


def _hex_tx(value: str, name: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        digits = "".join(value.split())
        if _HEX.fullmatch(digits) and len(digits) % 2:
            raise bad_request(f"'{name}' has an odd number of hex digits ({len(digits)})") from None
        raise bad_request(f"'{name}' must be hex") from None
    if not raw:
        raise bad_request(f"'{name}' is empty: a transaction is the hex of its encoding")
    return raw
