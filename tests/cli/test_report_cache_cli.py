"""``lendchain report --cache-dir``: a later report resumes from the cache, says so on stderr and in its
heading, and prints the figures a replay from the genesis prints.

The chain is ``report_chain``'s (10 blocks) in a stopped node's data directory.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lendchain.cli import main
from tests.cli.test_report_cli import from_data_dir
from tests.node.report_chain import report_chain
from tests.node.test_point_in_time_sources import node_running_on


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    chain = report_chain()
    where = tmp_path_factory.mktemp("report")
    return chain, chain.write_data_dir(where / "data"), chain.write_genesis(where / "genesis.toml")


def run(*args: str, **env: str):
    return CliRunner(env=env).invoke(main, list(args))


def test_a_second_report_resumes_from_the_cache_and_its_heading_says_so(world, tmp_path):
    chain = world[0]
    cache = tmp_path / "cache"  # made by the first report
    first = run(*from_data_dir(world, "report", "books", "--height", "5", "--cache-dir", str(cache)))
    assert first.exit_code == 0 and first.stderr == ""
    where = cache / chain.genesis.hash().hex()
    assert json.loads((where / "reached.json").read_text())["height"] == 5

    second = run(*from_data_dir(world, "report", "books"), LENDCHAIN_REPORT_CACHE=str(cache))
    assert second.exit_code == 0, second.output
    assert second.stderr == f"note: resuming from block 5 of the replay cache {where}\n"
    checked = second.stdout.splitlines()[3]
    assert checked == (
        f"checked   5 blocks replayed onto block 5 of the replay cache {where} (blocks 1 to 5 replayed from the "
        "genesis and checked alike by an earlier report; the source's block 5 has the same hash), each "
        "re-executed (tx, state and results roots, signatures) and its certificate verified under the genesis "
        f"keys and the replayed governance; from data directory {world[1]}"
    )
    plain = run(*from_data_dir(world, "report", "books"))
    assert second.stdout.split("\n\n", 1)[1] == plain.stdout.split("\n\n", 1)[1]  # the same figures
    as_json = json.loads(
        run("--json", *from_data_dir(world, "report", "books", "--cache-dir", str(cache))).stdout
    )
    assert as_json["basis"]["resumed_from"] == {
        "height": 10,
        "block_hash": as_json["basis"]["block_hash"],
        "cache": str(where),
    }
    assert as_json["basis"]["blocks_checked"] == 0

    earlier = run(*from_data_dir(world, "report", "books", "--height", "3", "--cache-dir", str(cache)))
    assert earlier.exit_code == 0 and "from the genesis" in earlier.stdout.splitlines()[3]
    assert earlier.stderr.startswith("note: the report's block is before block 10, where the replay cache")


def test_a_report_from_a_running_nodes_data_directory_is_refused(world, tmp_path):
    chain = world[0]
    data_dir = chain.write_data_dir(tmp_path / "data")
    with node_running_on(data_dir):
        result = run("report", "books", "--data-dir", str(data_dir), "--genesis", str(world[2]))
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        f"Error: data directory {data_dir} is in use by another process (is a node running on it?): stop the "
        "node first, or for a running node give --node URL instead\n"
    )
