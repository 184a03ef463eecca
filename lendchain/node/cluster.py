"""Run several node processes on this machine: ``lendchain devnet`` and the multi-process tests.

Each node is a real ``lendchain start`` process with its own LevelDB, log
file and ports on 127.0.0.1. Waiting is always on a condition with a
deadline, and a wait that gives up says what it was waiting for and shows
the tail of the logs of the nodes involved.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from lendchain.node.config import NodeConfig, load_node_config
from lendchain.node.faults import ENV as FAULTS_ENV

T = TypeVar("T")


class ClusterError(RuntimeError):
    """A node did not start, or a condition was not met in time."""


def free_port_block(count: int, start: int | None = None) -> int:
    """A base port such that base+1 .. base+count are free on 127.0.0.1 right now.

    Ports come from 20000 up to the kernel's ephemeral range, never inside it:
    there any outgoing connection (a dial, an HTTP client) may take a port a
    node is about to listen on. Without ``start`` the search begins at a place
    derived from the pid, so parallel test processes rarely collide; a second
    block for the same network passes ``start`` past the first one.
    """
    low = 20000
    window = _ephemeral_low() - low - count - 1
    base = low + ((start - low) if start is not None else os.getpid() * 97) % window
    for _ in range(200):
        ports = range(base + 1, base + count + 1)
        if all(_port_free(p) for p in ports):
            return base
        base = low + (base - low + count * 7 + 13) % window
    raise ClusterError(f"found no block of {count} free ports between {low} and {low + window}")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for(condition: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.05) -> T:
    """Poll ``condition`` until it returns something truthy; ClusterError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except (httpx.HTTPError, OSError, KeyError, ValueError) as e:
            last_error = e
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise ClusterError(f"gave up after {timeout_s:.0f} s waiting for {what}{detail}")
        time.sleep(interval_s)


@dataclass
class NodeProcess:
    config_path: Path
    config: NodeConfig
    log_path: Path
    process: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def url(self) -> str:
        return self.config.api_url

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def get(self, path: str, timeout: float = 5.0) -> Any:
        response = httpx.get(self.url + path, timeout=timeout)
        response.raise_for_status()
        return response.json()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log yet)"


class Cluster:
    """Node processes for the configs of one network directory."""

    def __init__(self, configs: list[Path], log_dir: Path, extra_args: tuple[str, ...] = ()) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.nodes: dict[str, NodeProcess] = {}
        for path in configs:
            config = load_node_config(path)
            self.nodes[config.name] = NodeProcess(path, config, log_dir / f"{config.name}.log")
        self.extra_args = extra_args

    def __getitem__(self, name: str) -> NodeProcess:
        return self.nodes[name]

    @property
    def names(self) -> list[str]:
        return list(self.nodes)

    def use_fault_files(self, directory: Path) -> None:
        """Give every node a test fault file (``lendchain.node.faults``) in ``directory``."""
        for name, node in self.nodes.items():
            node.env[FAULTS_ENV] = str(directory / f"{name}.faults.json")

    def set_faults(self, name: str, **faults: Any) -> None:
        """Write ``name``'s fault file; if it runs, wait until it has applied it (it polls)."""
        node = self.nodes[name]
        applied = self._fault_reloads(node)
        path = Path(node.env[FAULTS_ENV])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(faults))
        tmp.replace(path)
        if node.running:
            wait_for(lambda: self._fault_reloads(node) > applied, 10, f"{name} to apply its fault file")

    @staticmethod
    def _fault_reloads(node: NodeProcess) -> int:
        try:
            return node.log_path.read_text(errors="replace").count("fault injection now:")
        except FileNotFoundError:
            return 0

    def start(self, name: str, extra_env: dict[str, str] | None = None) -> NodeProcess:
        node = self.nodes[name]
        if node.running:
            raise ClusterError(f"{name} is already running")
        env = dict(os.environ, PYTHONUNBUFFERED="1", **node.env, **(extra_env or {}))
        log = open(node.log_path, "ab")
        node.process = subprocess.Popen(
            [sys.executable, "-m", "lendchain", "start", "--config", str(node.config_path), *self.extra_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()
        return node

    def start_all(self) -> None:
        for name in self.nodes:
            self.start(name)

    def wait_healthy(self, names: list[str] | None = None, timeout_s: float = 60.0) -> None:
        for name in names or self.names:
            node = self.nodes[name]

            def healthy(node: NodeProcess = node) -> bool:
                if not node.running:
                    raise ClusterError(
                        f"{node.name} exited with {node.process.returncode}:\n{node.log_tail()}"
                    )
                return node.get("/health")["status"] == "ok"

            try:
                wait_for(healthy, timeout_s, f"{name} to answer /health")
            except ClusterError as e:
                raise ClusterError(f"{e}\n--- {name} log ---\n{node.log_tail()}") from None

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> int:
        """Signal a node and wait for it to exit; returns its exit code."""
        self._signal(name, sig)
        return self._wait_exit(name, sig, timeout_s)

    def _signal(self, name: str, sig: int) -> None:
        process = self.nodes[name].process
        if process is not None and process.poll() is None:
            process.send_signal(sig)

    def _wait_exit(self, name: str, sig: int, timeout_s: float) -> int:
        process = self.nodes[name].process
        if process is None:
            return 0
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise ClusterError(
                f"{name} did not stop within {timeout_s:.0f} s of {signal.Signals(sig).name}"
            ) from None
        return process.returncode

    def kill(self, name: str) -> None:
        self.stop(name, signal.SIGKILL)

    def stop_all(self, timeout_s: float = 20.0) -> dict[str, int]:
        """SIGTERM every node at once (exactly once each: a second one would cut its clean exit short)."""
        for name in self.nodes:
            self._signal(name, signal.SIGTERM)
        codes = {}
        for name in self.nodes:
            try:
                codes[name] = self._wait_exit(name, signal.SIGTERM, timeout_s)
            except ClusterError:
                codes[name] = -9
        return codes

    def heights(self, names: list[str] | None = None) -> dict[str, int]:
        out = {}
        for name in names or self.names:
            node = self.nodes[name]
            if node.running:
                try:
                    out[name] = node.get("/status")["height"]
                except httpx.HTTPError:
                    pass
        return out

    def wait_height(self, height: int, names: list[str] | None = None, timeout_s: float = 60.0) -> None:
        names = names or self.names

        def reached() -> bool:
            got = self.heights(names)
            return len(got) == len(names) and min(got.values()) >= height

        try:
            wait_for(reached, timeout_s, f"{', '.join(names)} to reach height {height}")
        except ClusterError as e:
            tails = "\n".join(
                f"--- {n} (height {self.heights([n])}) ---\n{self.nodes[n].log_tail(15)}" for n in names
            )
            raise ClusterError(f"{e}\n{tails}") from None

    def wait_agree(self, names: list[str] | None = None, timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait until the named nodes report the same head (height and hash)."""
        names = names or self.names

        def agreed() -> dict[str, Any] | None:
            heads = [self.nodes[n].get("/status") for n in names]
            if len({(h["height"], h["head_hash"]) for h in heads}) == 1:
                return heads[0]
            return None

        return wait_for(agreed, timeout_s, f"{', '.join(names)} to agree on one head")
