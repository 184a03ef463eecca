"""The CLI refuses an out-of-range ``--limit`` or ``--from`` itself, naming the option, from the page
limits the API checks (``lendchain.node.pages``), without importing the API (Starlette costs the
CLI's start-up about 64 ms).

Found after the names pass: ``block list --limit 600`` got the node's sentence "query parameter
'limit' must be an integer from 1 to 500", which names no option of the command.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from lendchain.cli import _common, main
from lendchain.cli.report import BLOCKS_PER_REQUEST
from lendchain.node.pages import BLOCKS_PAGE_MAX, HEIGHT_MAX, RAW_BLOCKS_PAGE_MAX
from tests.cli.api_node import use_chain
from tests.ledger.test_loan_transfer import with_borrower

LIMIT, HEIGHTS = f"1<=x<={BLOCKS_PAGE_MAX}", f"0<=x<={HEIGHT_MAX}"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["--limit", str(BLOCKS_PAGE_MAX + 1)],
            f"'--limit': {BLOCKS_PAGE_MAX + 1} is not in the range {LIMIT}.",
        ),
        (["--limit", "0"], f"'--limit': 0 is not in the range {LIMIT}."),
        (["--from", "-1"], f"'--from': -1 is not in the range {HEIGHTS}."),
        (["--from", str(HEIGHT_MAX + 1)], f"'--from': {HEIGHT_MAX + 1} is not in the range {HEIGHTS}."),
    ],
)
def test_block_list_refuses_an_out_of_range_option_naming_it_before_asking_the_node(monkeypatch, args, says):
    def no_node(*_):
        raise AssertionError("asked the node")

    monkeypatch.setattr(_common, "make_client", no_node)
    result = CliRunner().invoke(main, ["block", "list", *args])
    assert result.exit_code == 2
    assert f"Error: Invalid value for {says}" in result.output


def test_docker_logs_refuses_a_negative_tail():
    result = CliRunner().invoke(main, ["docker", "logs", "--tail", "-1"])
    assert result.exit_code == 2
    assert "Invalid value for '--tail': -1 is not in the range x>=0." in result.output


def test_block_list_takes_the_most_the_node_hands_out(monkeypatch):
    chain, members, borrower = with_borrower()
    use_chain(monkeypatch, chain)
    result = CliRunner().invoke(main, ["block", "list", "--limit", str(BLOCKS_PAGE_MAX)])
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == chain.height
    assert BLOCKS_PER_REQUEST <= RAW_BLOCKS_PAGE_MAX  # `report --node` asks for no more than a page


def test_the_cli_refuses_a_limit_without_importing_the_api():
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from lendchain.cli import main\n"
        "result = CliRunner().invoke(main, ['block', 'list', '--limit', '600'])\n"
        "assert result.exit_code == 2, result.output\n"
        "print(sorted(m for m in sys.modules if m.startswith(('starlette', 'lendchain.node.api'))))\n"
    )
    answer = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == "[]"
