"""The docker test network, driven from the host: ``lendchain docker up|down|status|logs|…``.

This module owns the host side of ``docker/compose.yaml``: it generates the
network's keys and configs (``generate_testnet(docker=True)`` plus an API
token), builds the images when they are missing (``dockerimages``), runs
docker-compose, waits on conditions through the published APIs, and breaks
the network on purpose: stop, kill and restart one container, cut one off the
bridge network and put it back. Every failure is a ``DockerNetError`` with
one sentence that says what to do.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import tomli_w

from lendchain.client import NodeClient, NodeError
from lendchain.genesis import Genesis
from lendchain.ledger.rules import RULES_VERSION
from lendchain.node.config import ConfigError, load_genesis
from lendchain.node.dockerimages import (
    DOCKER_DIR,
    NODE_IMAGE_REPO,
    DockerNetError,
    compose_command,
    ensure_node_image,
    image_exists,
    run_docker,
)
from lendchain.node.testnet import DOCKER_SUBNET, docker_ip, generate_testnet

T = TypeVar("T")

COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
DEFAULT_NETWORK_DIR = DOCKER_DIR / "network"
NODES = ("bank1", "bank2", "bank3", "bank4")
OBSERVER = "regulator1"  # read-only member, started only with observer=True (compose profile "observer")
P2P_PORT = 47100
CONTAINER_API_PORT = 8100
DEFAULT_API_PORTS = (8101, 8102, 8103, 8104, 8105)
IMAGE_UID = 10001
SETTINGS_FILE = "docker.toml"  # in the network directory: its compose project, subnet and API ports


def wait_for(condition: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.1) -> T:
    """Poll ``condition`` until it returns a truthy value; say what was awaited when giving up."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except (httpx.HTTPError, NodeError, DockerNetError, KeyError, ValueError) as e:
            last_error = e
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise DockerNetError(f"gave up after {timeout_s:.0f} s waiting for {what}{detail}")
        time.sleep(interval_s)


# The network ----------------------------------------------------------------


@dataclass(frozen=True)
class NodeState:
    """One member's container as docker and its API see it."""

    name: str
    container: str
    state: str  # running, exited, restarting, … or "missing"
    health: str  # healthy, starting, unhealthy, none
    api_url: str | None
    height: int | None = None
    head_hash: str | None = None
    peers: tuple[str, ...] = ()
    connected: bool = True  # attached to the ledger network

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "peers": list(self.peers)}


@dataclass
class DockerNet:
    """The 4-bank compose network for one config directory and one compose project.

    ``nodes`` are the containers this network runs: the four voting banks,
    and the read-only ``regulator1`` when ``observer`` is set. ``api_ports``
    are their host ports on 127.0.0.1, in that order.
    """

    network_dir: Path = DEFAULT_NETWORK_DIR
    project: str = "lendchain"
    api_ports: tuple[int, ...] = DEFAULT_API_PORTS
    image: str | None = None
    observer: bool = False
    subnet: str = DOCKER_SUBNET
    params: dict[str, Any] | None = None  # chain parameters for the genesis [app] of a new network
    _clients: dict[str, NodeClient] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.network_dir = Path(self.network_dir).resolve()
        self.nodes: tuple[str, ...] = NODES + ((OBSERVER,) if self.observer else ())
        self._given_ports = tuple(self.api_ports)  # saved whole: a later up may add the observer
        self.api_ports = self._given_ports[: len(self.nodes)]
        if len(self.api_ports) != len(self.nodes):
            raise DockerNetError(f"give one API port per node ({len(self.nodes)}), not {len(self.api_ports)}")
        try:
            docker_ip(self.subnet, len(NODES))
        except (ValueError, ConfigError) as e:
            raise DockerNetError(f"subnet {self.subnet!r} cannot hold the network: {e}") from None

    @classmethod
    def for_dir(cls, network_dir: Path, **given: Any) -> DockerNet:
        """The network of ``network_dir``: its saved settings (``docker.toml``), then ``given``'s.

        Every ``up`` saves them (with ``--project/--subnet/--api-port`` as given),
        so every later command on the directory finds that network.
        """
        saved: dict[str, Any] = {}
        settings = Path(network_dir) / SETTINGS_FILE
        if settings.is_file():
            try:
                doc = tomllib.loads(settings.read_text())
                saved = {"project": str(doc["project"]), "subnet": str(doc["subnet"])}
                saved["api_ports"] = tuple(int(port) for port in doc["api_ports"])
            except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as e:
                raise DockerNetError(f"{settings} is unreadable ({e}); fix or remove it") from None
        chosen = {key: value for key, value in given.items() if value is not None}
        return cls(network_dir=Path(network_dir), **{**saved, **chosen})

    def _save_settings(self) -> None:
        doc = {"project": self.project, "subnet": self.subnet, "api_ports": list(self._given_ports)}
        (self.network_dir / SETTINGS_FILE).write_text(tomli_w.dumps(doc))

    # names and addresses

    def container(self, node: str) -> str:
        if node != OBSERVER:
            self._check_node(node)
        return f"{self.project}-{node}"

    @property
    def ledger_network(self) -> str:
        return f"{self.project}-ledger"

    def ip(self, node: str) -> str:
        return docker_ip(self.subnet, self.nodes.index(node))

    def api_url(self, node: str) -> str:
        self._check_node(node)
        return f"http://127.0.0.1:{self.api_ports[self.nodes.index(node)]}"

    def token(self) -> str:
        return (self.network_dir / "api.token").read_text().strip()

    def client(self, node: str, timeout_s: float = 10.0) -> NodeClient:
        """A NodeClient for ``node``'s published API (with the network's token)."""
        if node not in self._clients:
            self._clients[node] = NodeClient(self.api_url(node), self.token(), timeout=timeout_s)
        return self._clients[node]

    def _check_node(self, node: str) -> None:
        if node not in self.nodes:
            raise DockerNetError(f"no node {node!r} in the docker network; nodes: {', '.join(self.nodes)}")

    # configs

    def prepare(self) -> None:
        """Generate the configs (once) and make the key files readable by the containers' user."""
        genesis_path = self.network_dir / "genesis.toml"
        if not genesis_path.exists():
            try:  # checks ``params`` strictly, as ``lendchain testnet --param`` does
                # The observer is always in the genesis, so it can join a running chain later.
                generate_testnet(
                    self.network_dir,
                    nodes=len(NODES),
                    observers=1,
                    docker=True,
                    docker_subnet=self.subnet,
                    rules_version=RULES_VERSION,  # a new network starts on the newest rules
                    params=self.params,
                )
            except ConfigError as e:
                raise DockerNetError(str(e)) from None
        elif self.params:
            raise DockerNetError(
                f"{self.network_dir} holds a network already, so --param has no genesis to go into; "
                "change a parameter of a running chain by governance (lendchain gov propose params.set "
                f"KEY VALUE), or remove {self.network_dir} (after 'lendchain docker down --volumes') to "
                "generate a new one"
            )
        genesis = self._load_genesis(genesis_path)
        names = tuple(m.name for m in genesis.members)
        observers = tuple(m.name for m in genesis.observers)
        if names != NODES or (self.observer and OBSERVER not in observers):
            raise DockerNetError(
                f"{self.network_dir}/genesis.toml lists members {', '.join(names)} and observers "
                f"{', '.join(observers) or 'none'}, but the compose file runs {', '.join(self.nodes)}; "
                f"remove {self.network_dir} (after 'lendchain docker down --volumes') to generate it again"
            )
        expected = [f"/ip4/{docker_ip(self.subnet, i)}/tcp/{P2P_PORT}" for i in range(len(NODES) + 1)]
        if [m.address for m in (*genesis.members, *genesis.observers)][: len(expected)] != expected:
            raise DockerNetError(
                f"{self.network_dir}/genesis.toml addresses its members on another subnet than "
                f"{self.subnet}; give the subnet it was made for, or remove {self.network_dir} (after "
                "'lendchain docker down --volumes') to generate it again"
            )
        self._save_settings()  # what this up uses is what later commands on the directory find
        token = self.network_dir / "api.token"
        if not token.exists():
            token.write_text(secrets.token_hex(32) + "\n")
            token.chmod(0o600)
        for node in self.nodes:
            for path in (self.network_dir / f"{node}.toml", self.network_dir / "keys" / f"{node}.key"):
                if not path.is_file():
                    raise DockerNetError(
                        f"{path} is missing; remove {self.network_dir} to generate the network again"
                    )
        if os.geteuid() == 0:
            # Root on the host: hand the files to the image's unprivileged user
            # rather than run the nodes as root.
            for path in [self.network_dir, *self.network_dir.rglob("*")]:
                os.chown(path, IMAGE_UID, 0)

    def _load_genesis(self, path: Path) -> Genesis:
        """The network's genesis: checked strictly while no node of the network has run its chain.

        A genesis no node has run yet (generated and then edited, or written by
        ``lendchain testnet --docker``) is a new chain's: a typo in its ``[app]``
        would be the chain's for good (its hash is the chain's identity), so it is
        refused here, before any container starts, as ``lendchain testnet --param``
        refuses one. Once a node has a store, the chain runs on that genesis
        whatever it says, and its nodes warn at every start (``node.config``).
        """
        started = self.chain_started()
        try:
            return load_genesis(path, strict=not started)
        except ConfigError as e:
            if started:
                raise DockerNetError(str(e)) from None
            raise DockerNetError(
                f"{e}; no node of this network has run its chain yet (the compose project {self.project} "
                f"has no data volume), so fix {path}, or remove {self.network_dir} to generate it again"
            ) from None

    def chain_started(self) -> bool:
        """Whether a node of this network may hold a store: its compose project has a data volume.

        False when docker cannot say; then no node of it runs either.
        """
        label = f"label=com.docker.compose.project={self.project}"
        try:
            listed = run_docker(
                ["docker", "volume", "ls", "--quiet", "--filter", label], check=False, timeout_s=30
            )
        except (DockerNetError, OSError):
            return False
        return listed.returncode == 0 and any(name.endswith("-data") for name in listed.stdout.split())

    def container_uid(self) -> int:
        return IMAGE_UID if os.geteuid() == 0 else os.getuid()

    # compose

    def compose_env(self) -> dict[str, str]:
        env = {
            "LENDCHAIN_NETWORK_DIR": str(self.network_dir),
            "LENDCHAIN_PROJECT": self.project,
            "LENDCHAIN_UID": str(self.container_uid()),
            "LENDCHAIN_NODE_IMAGE": self.image or f"{NODE_IMAGE_REPO}:dev",
            "LENDCHAIN_SUBNET": self.subnet,
        }
        for index, node in enumerate((*NODES, OBSERVER)):
            env[f"LENDCHAIN_{node.upper()}_IP"] = docker_ip(self.subnet, index)
        for node, port in zip(self.nodes, self.api_ports, strict=True):
            env[f"LENDCHAIN_{node.upper()}_API_PORT"] = str(port)
        if self.observer:
            env["COMPOSE_PROFILES"] = "observer"
        return env

    def compose(
        self, *args: str, capture: bool = True, timeout_s: float = 180
    ) -> subprocess.CompletedProcess:
        if not COMPOSE_FILE.is_file():
            raise DockerNetError(
                f"{COMPOSE_FILE} is missing; run lendchain docker from a checkout of the repository"
            )
        cmd = [*compose_command(), "-p", self.project, "-f", str(COMPOSE_FILE), *args]
        env = {**os.environ, **self.compose_env()}
        if args[:1] == ("down",):
            env["COMPOSE_PROFILES"] = "observer"  # so down also removes a running observer
        kwargs: dict[str, Any] = {"capture_output": True, "text": True} if capture else {}
        try:
            result = subprocess.run(cmd, env=env, timeout=timeout_s, **kwargs)
        except subprocess.TimeoutExpired:
            raise DockerNetError(f"'{' '.join(cmd)}' did not finish within {timeout_s:.0f} s") from None
        if result.returncode != 0:
            tail = "\n".join(((result.stderr or "") + (result.stdout or "")).strip().splitlines()[-15:])
            raise DockerNetError(
                f"'{' '.join(args[:1])}' of the compose project {self.project} failed:\n{tail}"
            )
        return result

    def up(self, *, build: bool = True, timeout_s: float = 120.0, quiet: bool = False) -> list[NodeState]:
        """Generate configs, build images if missing, start all nodes and wait until their APIs answer."""
        self.prepare()
        if self.image is None and build:
            self.image = ensure_node_image(quiet=quiet)
        elif self.image is not None and not image_exists(self.image):
            raise DockerNetError(
                f"image {self.image} does not exist; build it with docker/build-node-image.sh"
            )
        try:
            self.compose("up", "-d", "--remove-orphans")
        except DockerNetError as e:
            if "overlaps" in str(e):
                raise DockerNetError(
                    f"another docker network already uses {self.subnet}, so {self.ledger_network} cannot be "
                    "created; stop the other network ('lendchain docker down', or 'docker network ls' and "
                    "'docker network rm' it), or run this one elsewhere: a new --dir with --project, "
                    "--subnet and --api-port of its own"
                ) from None
            raise
        self.wait_ready(self.nodes, timeout_s)
        return self.status()

    def down(self, *, volumes: bool = False) -> None:
        """Stop and remove the containers and the network; with ``volumes`` also every node's chain."""
        self.close()
        self.compose("down", "--remove-orphans", *(["--volumes"] if volumes else []))

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def logs(self, node: str | None = None, *, tail: int = 200, follow: bool = False) -> str:
        """The nodes' logs (one node's with ``node``); with ``follow`` stream them to stdout until ^C."""
        services = [node] if node else []
        if node:
            self._check_node(node)
        args = ["logs", "--no-color", "--tail", str(tail), *(["--follow"] if follow else []), *services]
        if follow:
            try:
                self.compose(*args, capture=False, timeout_s=10**7)
            except KeyboardInterrupt:
                pass
            return ""
        return self.compose(*args).stdout

    # one container

    def inspect(self, node: str) -> dict[str, Any] | None:
        result = run_docker(["docker", "inspect", self.container(node)], check=False)
        if result.returncode != 0:
            return None
        return json.loads(result.stdout)[0]

    def stop(self, node: str, timeout_s: int = 20) -> None:
        """``docker stop``: SIGTERM, then SIGKILL after ``timeout_s``."""
        run_docker(["docker", "stop", "-t", str(timeout_s), self.container(node)], timeout_s=timeout_s + 30)

    def kill(self, node: str) -> None:
        """``docker kill``: SIGKILL, no chance to shut down cleanly."""
        run_docker(["docker", "kill", self.container(node)])

    def start(self, node: str) -> None:
        run_docker(["docker", "start", self.container(node)])

    def restart(self, node: str, *, timeout_s: float = 60.0) -> None:
        """Start a stopped node (or restart a running one) and wait until its API answers."""
        info = self.inspect(node)
        if info is None:
            raise DockerNetError(
                f"container {self.container(node)} does not exist; run 'lendchain docker up'"
            )
        verb = "restart" if info["State"]["Running"] else "start"
        run_docker(["docker", verb, self.container(node)])
        self.wait_ready([node], timeout_s)

    def partition(self, node: str) -> None:
        """Cut ``node`` off the ledger network: it keeps running but reaches no peer (nor the host)."""
        run_docker(["docker", "network", "disconnect", self.ledger_network, self.container(node)])

    def heal(self, node: str, *, timeout_s: float = 60.0) -> None:
        """Reattach ``node`` to the ledger network at its own address and wait until its API answers."""
        run_docker(
            ["docker", "network", "connect", "--ip", self.ip(node), self.ledger_network, self.container(node)]
        )
        self.wait_ready([node], timeout_s)

    def cli(self, node: str, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
        """Run ``lendchain ARGS`` inside ``node``'s container, against that node (LENDCHAIN_CONFIG)."""
        return run_docker(["docker", "exec", self.container(node), "lendchain", *args], timeout_s=timeout_s)

    # observing

    def node_status(self, node: str) -> dict[str, Any]:
        """``GET /status`` of one node through its published port."""
        return self.client(node).status()

    def status(self) -> list[NodeState]:
        states = []
        for node in self.nodes + (() if self.observer else (OBSERVER,)):
            info = self.inspect(node)
            if info is None and node == OBSERVER and not self.observer:
                continue  # not asked for and not running
            if info is None:
                states.append(NodeState(node, self.container(node), "missing", "none", None, connected=False))
                continue
            state = info["State"]
            connected = self.ledger_network in (info["NetworkSettings"].get("Networks") or {})
            url = self._published_url(info)
            height = head = None
            peers: tuple[str, ...] = ()
            if state.get("Running") and url is not None and connected:
                try:
                    with NodeClient(url, self.token(), timeout=2.0) as c:
                        doc = c.status()
                    height, head, peers = (
                        doc.get("height"),
                        doc.get("head_hash"),
                        tuple(doc.get("peers") or ()),
                    )
                except Exception:  # a node that does not answer is shown without a height
                    pass
            health = (state.get("Health") or {}).get("Status", "none")
            states.append(
                NodeState(
                    node, self.container(node), state["Status"], health, url, height, head, peers, connected
                )
            )
        return states

    def _published_url(self, info: dict[str, Any]) -> str | None:
        bindings = (info["HostConfig"].get("PortBindings") or {}).get(f"{CONTAINER_API_PORT}/tcp") or []
        for b in bindings:
            if b.get("HostPort"):
                return f"http://{b.get('HostIp') or '127.0.0.1'}:{b['HostPort']}"
        return None

    def wait_ready(self, nodes: Iterable[str], timeout_s: float = 120.0) -> None:
        """Wait until every named node answers ``GET /status`` through its published port."""
        nodes = list(nodes)

        def answering() -> bool:
            for node in nodes:
                info = self.inspect(node)
                if info is None or not info["State"]["Running"]:
                    return False
                httpx.get(f"{self.api_url(node)}/health", timeout=2.0).raise_for_status()
                self.node_status(node)
            return True

        try:
            wait_for(answering, timeout_s, f"the API of {', '.join(nodes)} to answer")
        except DockerNetError as e:
            tails = "\n".join(f"--- {n} ---\n{self.logs(n, tail=15)}" for n in nodes)
            raise DockerNetError(f"{e}\n{tails}") from None

    def heights(self, nodes: Iterable[str]) -> dict[str, int]:
        return {node: int(self.node_status(node)["height"]) for node in nodes}

    def wait_height(self, height: int, nodes: Iterable[str], timeout_s: float = 60.0) -> dict[str, int]:
        nodes = list(nodes)

        def reached() -> dict[str, int] | None:
            got = self.heights(nodes)
            return got if min(got.values()) >= height else None

        return wait_for(reached, timeout_s, f"{', '.join(nodes)} to reach height {height}")

    def block_hash(self, node: str, height: int) -> str:
        return str(self.client(node).get(f"/blocks/{height}")["hash"])
