"""The ``lendchain`` command line.

Operators create keys, generate test networks and start nodes; bank systems
and people submit a loan's life and query the chain. Commands that talk to a
node go through its HTTP API (``--node`` or ``--config``) and sign
transactions locally with ``--key``; nothing here opens a running node's
LevelDB.

Every error a user can cause ends in one sentence on stderr and exit code 1
(2 for usage errors, as click does) — never a traceback.
"""

from __future__ import annotations

import click

from lendchain.cli.assignment import accept_assignment, assign, decline_assignment, withdraw_assignment
from lendchain.cli.backup import backup, restore
from lendchain.cli.book import accept_transfers, transfer_book
from lendchain.cli.chain import block, status, tx, verify_chain
from lendchain.cli.collateral import collateral as collateral_group  # the module keeps its name
from lendchain.cli.disputes import credit_answer_dispute, credit_dispute, credit_disputes
from lendchain.cli.docker import docker
from lendchain.cli.domain import COMMANDS as DOMAIN_COMMANDS
from lendchain.cli.domain import credit, fund
from lendchain.cli.governance import gov
from lendchain.cli.guarantees import COMMANDS as GUARANTEE_COMMANDS
from lendchain.cli.join import join
from lendchain.cli.keys import keys
from lendchain.cli.loans import loan, party
from lendchain.cli.network import devnet, start, testnet
from lendchain.cli.report import report
from lendchain.cli.restructure_consent import consent_restructure, withdraw_consent


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.version_option(package_name="lendchain")
def main(as_json: bool) -> None:
    """lendchain: a consortium ledger for lending (PBFT over py-libp2p).

    \b
    Quick start:
      lendchain devnet                 # 4 local nodes and a demo loan
      lendchain status --node http://127.0.0.1:8101
    """


for command in (
    keys,
    testnet,
    start,
    devnet,
    status,
    tx,
    block,
    party,
    loan,
    collateral_group,
    verify_chain,
    report,
    backup,
    restore,
    docker,
    gov,
    join,
    *DOMAIN_COMMANDS,
):
    main.add_command(command)
loan.add_command(transfer_book)  # in their own module: they page, batch and summarise
loan.add_command(accept_transfers)
loan.add_command(consent_restructure)  # beside loans.py, which is near its size limit
loan.add_command(withdraw_consent)
for command in GUARANTEE_COMMANDS:  # rules 7, in their own module
    loan.add_command(command)
# rules 6 (the decline rules 7), in their own module
for command in (assign, accept_assignment, withdraw_assignment, decline_assignment):
    fund.add_command(command)
for command in (credit_dispute, credit_answer_dispute, credit_disputes):  # rules 7, in their own module
    credit.add_command(command)
