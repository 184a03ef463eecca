"""``lendchain devnet --exit`` end to end, then ``verify-chain`` on the stopped nodes' data."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lendchain.node.cluster import free_port_block

pytestmark = pytest.mark.slow


def test_devnet_runs_a_demo_loan_and_its_chain_verifies_offline(tmp_path):
    p2p = free_port_block(8)
    api = free_port_block(8, start=p2p + 20)
    directory = tmp_path / "devnet"
    args = [sys.executable, "-m", "lendchain", "devnet", "--dir", str(directory), "--exit"]
    args += ["--p2p-port", str(p2p), "--api-port", str(api)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"http://127.0.0.1:{api + 1}" in result.stdout
    assert "is repaying" in result.stdout
    repaid = int(result.stdout.split("principal repaid ")[1].split(",")[0])
    assert f"EUR outstanding {1_200_000 - repaid} on 1 loan(s) (carried by bank2 {1_200_000 - repaid})" in (
        result.stdout
    )
    # The newest rules: the demo loan gets a guarantee (rules 7) its guarantor signs.
    assert "loan.guarantee_accept" in result.stdout
    assert "the guarantor's contingent exposure, as every member sees it: EUR 600000 on 1 guarantee(s)" in (
        result.stdout
    )
    assert "all 4 nodes agree" in result.stdout
    assert "stopped all nodes" in result.stdout and "exit codes" not in result.stdout

    for name in ("bank1", "bank4"):
        verify = subprocess.run(
            [sys.executable, "-m", "lendchain", "verify-chain", "--config", str(directory / f"{name}.toml")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert verify.returncode == 0, verify.stderr
        assert "replayed and certified up to height 11" in verify.stdout

    # A second run reuses the same network and continues its chain.
    again = subprocess.run(args, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "reusing the network" in again.stdout
    assert "agree at height 22" in again.stdout


def test_verify_chain_refuses_a_directory_without_a_chain(tmp_path):
    from click.testing import CliRunner

    from lendchain.cli import main

    runner = CliRunner()
    assert runner.invoke(main, ["testnet", "--out", str(tmp_path / "net")]).exit_code == 0
    result = runner.invoke(main, ["verify-chain", "--config", str(tmp_path / "net" / "bank1.toml")])
    assert result.exit_code == 1
    assert "holds no chain store" in result.output
