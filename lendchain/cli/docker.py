"""``lendchain docker``: the 4-bank docker-compose test network (see docker/README.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from lendchain.cli._common import emit
from lendchain.cli.network import parse_params


@contextmanager
def _net(directory: str | None, observer: bool = False, **given: Any) -> Iterator[Any]:
    """The network of ``directory`` (default docker/network), with the settings it was made with."""
    from lendchain.node import dockernet

    try:
        net = dockernet.DockerNet.for_dir(
            Path(directory) if directory else dockernet.DEFAULT_NETWORK_DIR, observer=observer, **given
        )
    except dockernet.DockerNetError as e:
        raise click.ClickException(str(e)) from None
    try:
        yield net
    except dockernet.DockerNetError as e:
        raise click.ClickException(str(e)) from None
    finally:
        net.close()


_dir = click.option("--dir", "directory", type=click.Path(file_okay=False), help="Config directory.")


def _show(ctx: click.Context, states: list[Any]) -> None:
    emit(
        ctx,
        [s.as_dict() for s in states],
        lambda rows: "\n".join(
            f"{r['name']:<12} {r['state']:<9} {str(r.get('health')):<10} height {r.get('height')}  {r.get('api_url')}"
            for r in rows
        ),
    )


@click.group()
def docker() -> None:
    """Run and break the docker-compose test network."""


@docker.command("up")
@_dir
@click.option("--observer", is_flag=True, help="Also run the read-only regulator1.")
@click.option("--no-build", is_flag=True, help="Use the images already built.")
@click.option("--timeout", default=120.0, show_default=True)
@click.option("--project", help="Compose project: container and network name prefix [lendchain].")
@click.option("--subnet", help="The nodes' private bridge network [172.28.0.0/16].")
@click.option("--api-port", type=click.IntRange(1, 65530), help="Bank i's API on 127.0.0.1:PORT+i [8100].")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    callback=lambda ctx, param, values: parse_params(values),
    help="A chain parameter for the genesis [app] of a new network (repeatable), as for lendchain testnet.",
)
@click.pass_context
def docker_up(
    ctx: click.Context,
    directory: str | None,
    observer: bool,
    no_build: bool,
    timeout: float,
    project: str | None,
    subnet: str | None,
    api_port: int | None,
    params: dict[str, Any],
) -> None:
    """Build images if missing, start the network and wait until every node is healthy.

    A second network runs beside the first from its own --dir, with a
    --project, --subnet and --api-port of its own; the directory remembers
    them (docker.toml), so later commands need only --dir. A genesis no node
    has run yet is checked as strictly as one --param writes.
    """
    ports = tuple(api_port + i for i in range(1, 6)) if api_port is not None else None
    given = {"project": project, "subnet": subnet, "api_ports": ports, "params": params or None}
    with _net(directory, observer, **given) as net:
        _show(ctx, net.up(build=not no_build, timeout_s=timeout))


@docker.command("down")
@_dir
@click.option("--volumes", is_flag=True, help="Also delete the nodes' data volumes.")
def docker_down(directory: str | None, volumes: bool) -> None:
    """Stop and remove the network's containers."""
    with _net(directory) as net:
        net.down(volumes=volumes)


@docker.command("status")
@_dir
@click.pass_context
def docker_status(ctx: click.Context, directory: str | None) -> None:
    """Each container's state, health and height."""
    with _net(directory) as net:
        _show(ctx, net.status())


@docker.command("logs")
@click.argument("node", required=False)
@_dir
@click.option(
    "--tail", type=click.IntRange(0), default=200, show_default=True, help="Lines from the end of each log."
)
@click.option("--follow", is_flag=True)
def docker_logs(node: str | None, directory: str | None, tail: int, follow: bool) -> None:
    """Show (or follow) a node's logs, or all of them."""
    with _net(directory) as net:
        text = net.logs(node, tail=tail, follow=follow)
        if text:
            click.echo(text)


def _node_command(name: str, help_text: str, action: str) -> None:
    @docker.command(name, help=help_text)
    @click.argument("node")
    @_dir
    def command(node: str, directory: str | None) -> None:
        with _net(directory) as net:
            getattr(net, action)(node)
            click.echo(f"{node}: {name} done")


_node_command("stop", "Stop one node (docker stop).", "stop")
_node_command("kill", "Kill one node (docker kill).", "kill")
_node_command("restart", "Start or restart one node and wait for its API.", "restart")
_node_command("partition", "Cut one node off the ledger network.", "partition")
_node_command("heal", "Reconnect a partitioned node and wait for it.", "heal")
