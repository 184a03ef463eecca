"""What the console's browser tests share: four real nodes on 127.0.0.1 and headless Chromium.

Each test module that uses ``net`` gets its own network (module scope). bank4
guards its API with a bearer token so the console's token handling runs
against the real guard. Chromium is Debian's (``/usr/bin/chromium``), driven
by Playwright's Python package; browsers cannot be downloaded here, so a
module using ``browser`` skips without them (``skip_without_a_browser``).
"""

from __future__ import annotations

import secrets
import tomllib
from pathlib import Path

import pytest
import tomli_w

from lendchain.ledger.rules import RULES_VERSION
from lendchain.node.cluster import Cluster, free_port_block
from lendchain.node.testnet import generate_testnet

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
TOKEN_NODE = "bank4"
KYC_NODE = "bank1"  # generate_testnet gives the first member the lender, kyc and bureau roles
WAIT_MS = 60_000

NO_PLAYWRIGHT = "Playwright's Python package is not installed (pip install playwright)"
NO_CHROMIUM = (
    f"{CHROMIUM} is missing (apt-get install -y chromium); Playwright cannot download a browser here"
)


def skip_without_a_browser() -> None:
    """Skip the calling test module at collection when Playwright or Chromium is missing."""
    pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT)
    if not CHROMIUM.exists():
        pytest.skip(NO_CHROMIUM, allow_module_level=True)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    out = tmp_path_factory.mktemp("console-net")
    p2p = free_port_block(8)
    api = free_port_block(8, start=p2p + 20)
    layout = generate_testnet(
        out / "net", 4, p2p_base_port=p2p, api_base_port=api, rules_version=RULES_VERSION
    )
    token = secrets.token_hex(16)
    token_path = out / "net" / "api.token"
    token_path.write_text(token + "\n")
    config_path = out / "net" / f"{TOKEN_NODE}.toml"
    config = tomllib.loads(config_path.read_text())
    config["api"]["token_file"] = str(token_path)
    config_path.write_text(tomli_w.dumps(config))
    cluster = Cluster(list(layout.configs), out / "logs")
    cluster.token = token
    cluster.start_all()
    try:
        cluster.wait_healthy(timeout_s=90)
        cluster.wait_agree([n for n in cluster.names if n != TOKEN_NODE], timeout_s=60)
        yield cluster
    finally:
        cluster.stop_all()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT)
    if not CHROMIUM.exists():
        pytest.skip(NO_CHROMIUM)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


class ConsolePage:
    """One browser tab on one node's console, recording every console error and page error."""

    def __init__(self, browser, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url)

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_console(browser):
    opened: list[ConsolePage] = []

    def open_(url: str) -> ConsolePage:
        page = ConsolePage(browser, url)
        opened.append(page)
        return page

    yield open_
    for page in opened:
        page.close()
