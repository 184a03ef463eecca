"""The console's route and its place behind the API's bearer-token guard (no browser, no network)."""

from __future__ import annotations

from typing import Any

import httpx
import trio
from prometheus_client import CollectorRegistry

from lendchain.node.api import CONSOLE_DIR, build_app


class StatusOnly:
    metrics_registry = CollectorRegistry()

    def status(self) -> dict[str, Any]:
        return {"name": "bank1"}


def get_all(paths: list[str], headers: dict[str, str] | None = None) -> list[httpx.Response]:
    """GET each path from a token-guarded app in-process (no sockets)."""

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=build_app(StatusOnly(), token="s3cret"))
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            return [await client.get(path, headers=headers) for path in paths]

    return trio.run(run)


def test_the_console_files_ship_with_the_package():
    assert {p.name for p in CONSOLE_DIR.iterdir()} >= {"index.html", "console.js", "console.css"}


def test_the_page_loads_without_a_token_but_its_data_does_not():
    page, script, status = get_all(["/console/", "/console/console.js", "/status"])
    assert page.status_code == 200 and "console.js" in page.text
    assert page.headers["content-type"].startswith("text/html")
    assert script.status_code == 200
    assert status.status_code == 401
    [status] = get_all(["/status"], headers={"Authorization": "Bearer s3cret"})
    assert status.json() == {"name": "bank1"}


def test_the_console_prefix_opens_nothing_but_its_own_files():
    bare, dotted, escaped, lookalike, missing = get_all(
        ["/console", "/console/../status", "/console/%2e%2e/status", "/consolestatus", "/console/missing.js"]
    )
    assert bare.status_code in (307, 308) and bare.headers["location"].endswith("/console/")
    assert dotted.status_code in (401, 404)
    assert escaped.status_code == 404
    assert lookalike.status_code == 401
    assert missing.json()["error"] == "not_found"
