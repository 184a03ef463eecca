"""Helpers shared by the CLI's command modules: errors, output, clients, signers."""

from __future__ import annotations

import ctypes
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from lendchain.consensus.keys import KeySchedule
from lendchain.crypto import (
    CryptoError,
    SigningKey,
    did_from_public_key,
    key_file_is_encrypted,
    read_key_file,
    read_public_key_file,
)
from lendchain.ledger.dispute_records import time_text
from lendchain.ledger.member_names import dids_in
from lendchain.node.config import ConfigError, load_node_config

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_NODE = "http://127.0.0.1:8101"
PASSPHRASE_ENV = "LENDCHAIN_PASSPHRASE"


def user_errors(fn: F) -> F:
    """Turn the errors a user can cause into one line on stderr and exit code 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from lendchain.client import NodeError

        try:
            return fn(*args, **kwargs)
        except (ConfigError, CryptoError, NodeError, FileExistsError) as e:
            raise click.ClickException(str(e)) from None
        except json.JSONDecodeError as e:
            raise click.ClickException(f"payload is not valid JSON: {e}") from None

    return wrapper  # type: ignore[return-value]


def read_passphrase(passphrase_file: str | None) -> str | None:
    if passphrase_file:
        try:
            return Path(passphrase_file).read_text().rstrip("\n")
        except OSError as e:
            raise click.ClickException(
                f"cannot read passphrase file {passphrase_file}: {e.strerror}"
            ) from None
    return os.environ.get(PASSPHRASE_ENV)


def forget_env_passphrase() -> None:
    """Take LENDCHAIN_PASSPHRASE out of this process's environment once the keys are open.

    A long-running node needs the passphrase only at start. Removed, it is
    not inherited by anything the process starts; overwritten first where
    the C library keeps it, it no longer shows in ``/proc/<pid>/environ``
    either (which reads the memory the process started with). Python's own
    copies of the string are not scrubbed: this is hygiene, not a vault.
    """
    if PASSPHRASE_ENV not in os.environ:
        return
    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_void_p
    address = libc.getenv(PASSPHRASE_ENV.encode())
    if address:
        ctypes.memset(address, 0, len(ctypes.string_at(address)))
    del os.environ[PASSPHRASE_ENV]  # unsetenv too


def emit(ctx: click.Context, value: Any, human: Callable[[Any], str] | None = None) -> None:
    """Print ``value`` as JSON with ``--json`` (or without a human form), else as text."""
    if ctx.find_root().params.get("as_json") or human is None:
        click.echo(json.dumps(value, indent=2, sort_keys=True))
    else:
        click.echo(human(value))


def config_option(help: str) -> Callable[[F], F]:
    """``--config`` (required, or ``LENDCHAIN_CONFIG``): the node config a command works on."""
    return click.option(
        "--config",
        "config_path",
        required=True,
        envvar="LENDCHAIN_CONFIG",
        type=click.Path(dir_okay=False),
        help=help,
    )


def client_options(fn: F) -> F:
    fn = click.option(
        "--node",
        "node_url",
        envvar="LENDCHAIN_NODE",
        help=f"Node API URL (default: from --config, else {DEFAULT_NODE}).",
    )(fn)
    fn = click.option(
        "--config",
        "config_path",
        envvar="LENDCHAIN_CONFIG",
        type=click.Path(dir_okay=False),
        help="A node config to take the API address, token and default key from.",
    )(fn)
    fn = click.option(
        "--token-file",
        envvar="LENDCHAIN_TOKEN_FILE",
        type=click.Path(dir_okay=False),
        help="File holding the API bearer token.",
    )(fn)
    return fn


def key_options(fn: F) -> F:
    """``--key`` and ``--passphrase-file``: what a command signs with."""
    fn = click.option(
        "--key",
        "key_path",
        envvar="LENDCHAIN_KEY",
        type=click.Path(dir_okay=False),
        help="Key file to sign with (default: the --config node's key).",
    )(fn)
    return click.option("--passphrase-file", type=click.Path(dir_okay=False), help="For an encrypted key.")(
        fn
    )


def signer_options(fn: F) -> F:
    fn = key_options(fn)
    fn = click.option("--no-wait", is_flag=True, help="Return once the node accepted the tx.")(fn)
    fn = click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the commit.")(
        fn
    )
    return client_options(fn)


def make_client(node_url: str | None, config_path: str | None, token_file: str | None):
    from lendchain.client import NodeClient

    if config_path:
        config = load_node_config(config_path)
        node_url = node_url or config.api_url
        if token_file is None and config.api_token_file is not None:
            token_file = str(config.api_token_file)
    token = None
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as e:
            raise click.ClickException(f"cannot read token file {token_file}: {e.strerror}") from None
    return NodeClient(node_url or DEFAULT_NODE, token)


def client_from(kw: dict[str, Any]):
    return make_client(kw["node_url"], kw["config_path"], kw["token_file"])


def load_signer(
    key_path: str | None, config_path: str | None, passphrase_file: str | None, client: Any = None
) -> SigningKey:
    """The key to sign with: ``--key``, else the ``--config`` node's key.

    With ``client``, a node config's ``next_key_file`` is used instead once
    the chain says the member's rotation to it is in effect by the next
    block: from then on the ledger refuses the member's old key. (The next key
    file is read only once some rotation of the member is in effect.)
    """
    if key_path is None and config_path:
        config = load_node_config(config_path)
        key_path = str(config.key_file)
        if config.next_key_file is not None and client is not None:
            if _rotated_to(client, config.name, config.next_key_file):
                key_path = str(config.next_key_file)
    if key_path is None:
        raise click.ClickException("no signing key: give --key FILE (or --config with a node key)")
    return _read_key(key_path, passphrase_file)


def _rotated_to(client: Any, member: str, key_file: Path) -> bool:
    """Whether ``member``'s node key from the next block on is a rotated one, the one in ``key_file``."""
    keys = member_keys(client, member)
    if keys is None:
        return False
    current = keys.key_at(client.get("/status")["height"] + 1)
    return current != keys.genesis_key and current == read_public_key_file(key_file)


def _read_key(key_path: str, passphrase_file: str | None) -> SigningKey:
    if key_file_is_encrypted(key_path):
        return read_key_file(key_path, read_passphrase(passphrase_file))
    return read_key_file(key_path)


@dataclass(frozen=True)
class MemberKeys:
    """A member's genesis key and rotations, as ``GET /node-keys/{name}`` shows them."""

    name: str
    did: str  # the member's ledger identity: its genesis key's did:key
    schedule: KeySchedule  # this member's keys by effective height

    @property
    def genesis_key(self) -> bytes:
        return self.schedule.keys_of(self.name)[0]

    def key_at(self, height: int) -> bytes:
        return self.schedule.key_of(self.name, height)


def member_keys(client: Any, member: str) -> MemberKeys | None:
    """Voting member ``member`` (by name) from the node's key schedule; None if there is none."""
    from lendchain.client import NodeError, ref_path

    try:
        doc = client.get(ref_path("/node-keys", member))
    except NodeError as e:
        if e.status == 404:
            return None
        raise
    return _member_keys(doc["members"][0])


def all_member_keys(client: Any) -> list[MemberKeys]:
    return [_member_keys(m) for m in client.get("/node-keys/*")["members"]]


def _member_keys(doc: dict[str, Any]) -> MemberKeys:
    genesis = bytes.fromhex(doc["genesis_key"])
    schedule = KeySchedule([(doc["name"], genesis)])
    for rotation in doc["rotations"]:
        schedule.add(doc["name"], rotation["effective_height"], bytes.fromhex(rotation["public_key"]))
    return MemberKeys(doc["name"], did_from_public_key(genesis), schedule)


def send_tx(ctx: click.Context, kw: dict[str, Any], kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Sign ``payload`` as a ``kind`` tx with the chosen key, submit it, wait, print it."""
    with client_from(kw) as client:
        key = load_signer(kw["key_path"], kw["config_path"], kw["passphrase_file"], client)
        result = client.send(key, kind, payload, wait=not kw["no_wait"], timeout_s=kw["timeout"])
        names = event_names(ctx, client, tx_events(result))
    emit(ctx, result, lambda status: describe_tx(status, names))
    return result


def tx_events(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of a tx's result (none while it is not committed)."""
    return (status.get("result") or {}).get("events", [])


def next_rules(status: dict[str, Any]) -> int:
    """The rules version the chain's next block runs under, from the node's ``/status``."""
    version = status["rules"]["version"]
    for upgrade in status["rules"]["scheduled"]:
        if upgrade["height"] <= status["height"] + 1:
            version = upgrade["version"]
    return version


def require_rules(status: dict[str, Any], since: int, what: str, action: str) -> None:
    """Refuse, saying what to do, when the chain's next block runs rules older than ``since``.

    ``status`` is the node's ``/status``; ``what`` (a kind or governance action)
    exists from rules ``since``. A tx of it sent sooner is never included, so
    the command would only wait for nothing; ``action`` names what to do once
    the version starts.
    """
    version = next_rules(status)
    if version >= since:
        return
    scheduled = status["rules"]["scheduled"]
    later = [upgrade["height"] for upgrade in scheduled if upgrade["version"] >= since]
    if later:
        what_to_do = f"it starts at height {later[0]}; {action} from then on"
    else:
        what_to_do = f"schedule it first with `lendchain gov propose rules.upgrade {since} HEIGHT`"
    raise click.ClickException(
        f"this chain runs rules version {version} and {what} needs version {since}: {what_to_do}"
    )


def member_text(did: str, name: str | None = None, names: Mapping[str, str] | None = None) -> str:
    """A member as ``name (did)``: the name a view gives, else the one ``names`` has for ``did``; the
    DID alone when neither has one (a party's DID, or a node of an older release that names none)."""
    name = name or (names or {}).get(did)
    return f"{name} ({did})" if name else did


def named_in(text: str, names: Mapping[str, str]) -> str:
    """``text`` (a ledger sentence) with each member DID that ``names`` has written ``name (did)``."""
    for did, name in names.items():
        text = text.replace(did, f"{name} ({did})")
    return text


def roster_names(client: Any) -> dict[str, str]:
    """Every member's name by DID (removed members too), from ``GET /members/*``."""
    return {member["did"]: member["name"] for member in client.get("/members/*")["members"]}


def event_names(ctx: click.Context, client: Any, events: list[dict[str, Any]]) -> dict[str, str]:
    """The names of the members that ``events`` name by DID, for their text (``event_text``).

    Events are a tx's record, DIDs only: the names are asked of the node (``GET /members/*``), only
    for text and only when an event holds a DID. Nothing when the node cannot say: the DIDs show.
    """
    from lendchain.client import NodeError

    if ctx.find_root().params.get("as_json") or not dids_in(events):
        return {}
    try:
        return roster_names(client)
    except NodeError:
        return {}


def describe_tx(status: dict[str, Any], names: Mapping[str, str] | None = None) -> str:
    """A tx's status as text; ``names`` names the members its events hold the DIDs of."""
    if status.get("status") != "committed":
        message = status.get("message")
        return f"tx {status['id']} {status['status']}" + (f": {message}" if message else "")
    result = status.get("result") or {}
    lines = [f"tx {status['id']} committed in block {status['height']}: {result.get('code', '?')}"]
    if status.get("sender"):  # an older node does not say who signed it
        signer = member_text(status["sender"], status.get("sender_name"), names)
        lines.append(f"  {status.get('kind', 'tx')} signed by {signer}")
    for key, value in sorted(result.items()):
        if key.endswith("_id") and isinstance(value, str):
            lines.append(f"  {key}: {value}")
    for event in result.get("events", []):
        lines.append(f"  event: {event_text(event, names)}")
    return "\n".join(lines)


def event_text(event: dict[str, Any], names: Mapping[str, str] | None = None) -> str:
    """One ledger event as a line: its name, then each field and value (a time ``*_ms`` as a UTC date,
    a member's DID as ``name (did)`` when ``names`` has it)."""
    fields = ", ".join(
        f"{key} {_field_text(key, value, names or {})}"
        for key, value in sorted(event.items())
        if key != "event"
    )
    return str(event.get("event", "?")) + (f": {fields}" if fields else "")


def _field_text(key: str, value: Any, names: Mapping[str, str]) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "none"}[value]
    if isinstance(value, int) and key.endswith("_ms"):
        return time_text(value)
    if isinstance(value, list):
        return "[" + ", ".join(_field_text(key, item, names) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} {_field_text(k, v, names)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, str):
        return member_text(value, names=names)
    return str(value)
