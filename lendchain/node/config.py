"""Node configuration and genesis, both TOML, validated on load.

Every error names the file, the key and what to do about it, and an unknown
key (a typo) is refused with the nearest known key suggested: a node that
silently ignores ``listn = …`` would start with a default nobody chose.

The genesis is the consortium's constitution: chain id, the voting members in
order (the primary of view v is ``members[v mod n]``), read-only observers,
consensus parameters and the chain parameters (``[app]``, checked against the
registry ``ledger.params``). Its hash is the previous-block hash of block 1.

The ``[app]`` table is in that hash, so a chain's genesis can never be
edited: a typo in it is the chain's for good. Hence two strengths of check:

- ``strict``: every problem the registry finds (a key that is no parameter,
  with the nearest name; a value of the wrong type or out of bounds) refuses
  the genesis. For a genesis being created (``lendchain testnet``, devnet and
  the docker network generate theirs with ``testnet.generate_testnet``) and
  for one loaded to start a chain no node has run yet, where the loader can
  tell (``lendchain devnet`` on a directory without data).
- otherwise (the default): the genesis may be one a chain runs on, written
  before the registry checked it, and a node must never refuse to restart on
  its own chain; the problems are left for ``genesis_warnings``, which the
  node logs at every start and ``start --check`` prints. A node starting on an
  empty data directory cannot tell a new chain from one its peers have run
  for years (a member joining late, or restoring), so it warns too. The
  problems an older release already refused (a ``rules_version`` this release
  does not run, restructuring limits out of bounds or misspelt:
  ``Param.refused_always``) refuse the genesis either way: no chain has them.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lendchain import codec
from lendchain.crypto import PUBLIC_KEY_SIZE
from lendchain.genesis import ROLES, ConsensusParams, Genesis, Member, address_problem
from lendchain.ledger.params import app_problems
from lendchain.ledger.params import value as param
from lendchain.ledger.rules import RULES_VERSION


class ConfigError(ValueError):
    """A configuration or genesis file that cannot be used as written."""


@dataclass(frozen=True)
class MempoolConfig:
    max_txs: int = 100_000
    max_bytes: int = 128 * 1024 * 1024
    tx_ttl_ms: int = 10 * 60 * 1000


@dataclass(frozen=True)
class ApiLimits:
    """The ``[api]`` table's limits on what one request, and one client, may ask of the node."""

    max_body_bytes: int = 16 * 1024 * 1024
    max_batch_txs: int = 10_000
    # Per client address, on writes (POST) and failed bearer-token checks.
    write_rate_per_s: float = 200.0
    write_burst: int = 400


# The [store] compression values; ChainStore.open gives LevelDB the same names (none: None).
STORE_COMPRESSIONS = ("none", "snappy")


@dataclass(frozen=True)
class StoreConfig:
    """The ``[store]`` table: how this node's LevelDB writes its table files.

    Uncompressed by default: snappy saves ~40 % of the bytes on disk but costs ~13 %
    of a loaded node's CPU in compaction and reads (benchmarks/RESULTS.md,
    third session of 2026-12-05). LevelDB records the compression of each
    block, so a store written either way opens and reads with either setting;
    changing it affects only what is written from then on.
    """

    compression: str = "none"
    # Where ``lendchain backup`` writes (default: ``backups`` next to the data directory).
    backup_dir: Path | None = None
    # The node's own backups: one whenever its newest is this old (None: only when asked),
    # keeping the newest ``backup_keep`` (``NodeBackups.run_schedule``).
    backup_interval_s: int | None = None
    backup_keep: int = 7


# Scheduled backups closer together than this would do little but wear the disk.
MIN_BACKUP_INTERVAL_S = 60


# A bearer token shorter than this is guessable; `openssl rand -hex 32` gives 64 characters.
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class NodeConfig:
    path: Path
    name: str
    genesis_path: Path
    genesis: Genesis
    key_file: Path
    passphrase_file: Path | None
    data_dir: Path
    p2p_listen: str
    api_host: str
    api_port: int
    api_token_file: Path | None
    api_limits: ApiLimits
    mempool: MempoolConfig
    log_level: str
    log_format: str
    # The key this member rotates to (a ``member.rotate_key`` proposal): signs from its effective height.
    next_key_file: Path | None = None
    store: StoreConfig = StoreConfig()
    # ``join = true``: a member the genesis does not name, admitted (or to be) by ``member.admit``.
    joining: bool = False
    # No ``[p2p] listen``: the node listens on its member's address as the chain records it
    # (``p2p_listen`` is the genesis's; a ``member.address`` change moves it, see the daemon).
    p2p_listen_from_chain: bool = False

    @property
    def backup_dir(self) -> Path:
        """Where this node's backups go: ``[store] backup_dir``, else ``backups`` beside ``data_dir``."""
        return self.store.backup_dir or self.data_dir.parent / "backups"

    @property
    def api_url(self) -> str:
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::") else self.api_host
        return f"http://{host}:{self.api_port}"


# Reading ------------------------------------------------------------------


class _Table:
    """One TOML table being read: tracks which keys were used to catch typos."""

    def __init__(self, data: dict[str, Any], file: Path, prefix: str) -> None:
        self.data = data
        self.file = file
        self.prefix = prefix
        self.used: set[str] = set()

    def where(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.file}: '{self.where(key)}' {message}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., *, what: str = ""):
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                typo = difflib.get_close_matches(key, [k for k in self.data if isinstance(k, str)], n=1)
                if typo:
                    raise self.error(key, f"is missing, and '{self.where(typo[0])}' looks like a typo of it")
                raise self.error(key, f"is missing; add it ({what or _kind_name(kind)})")
            return default
        value = self.data[key]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            raise self.error(key, f"must be {what or _kind_name(kind)}, not {type(value).__name__} {value!r}")
        return value

    def positive_int(self, key: str, default: Any = ...) -> int:
        value = self.get(key, int, default, what="a positive integer")
        if value <= 0:
            raise self.error(key, f"must be a positive integer, not {value}")
        return value

    def table(self, key: str, required: bool = False) -> _Table:
        raw = self.get(key, dict, ... if required else {}, what="a table")
        return _Table(raw, self.file, f"{self.where(key)}.")

    def finish(self) -> None:
        for key in self.data:
            if key not in self.used:
                hint = difflib.get_close_matches(key, sorted(self.used), n=1)
                fix = f"did you mean '{self.prefix}{hint[0]}'?" if hint else "remove it"
                raise ConfigError(f"{self.file}: unknown key '{self.where(key)}'; {fix}")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {
        int: "an integer",
        str: "a string",
        dict: "a table",
        list: "a list",
        bool: "true/false",
    }
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)


def _load_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {e.start} cannot be decoded); save it as UTF-8"
        ) from None
    except OSError as e:
        raise ConfigError(f"{what} {path} cannot be read: {e.strerror}") from None


def _check_multiaddr(t: _Table, key: str, value: str) -> str:
    problem = address_problem(value)
    if problem is not None:
        raise t.error(key, problem)
    return value


def _read_member(t: _Table, voting: bool) -> Member:
    name = t.get("name", str, what="the member's short name, e.g. 'bank1'")
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise t.error("name", f"must be letters, digits, '-' or '_', not {name!r}")
    key_hex = t.get("public_key", str, what="the member's Ed25519 public key in hex")
    try:
        public_key = bytes.fromhex(key_hex)
    except ValueError:
        raise t.error("public_key", "is not hex") from None
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise t.error("public_key", f"must be {PUBLIC_KEY_SIZE} bytes ({2 * PUBLIC_KEY_SIZE} hex digits)")
    address = _check_multiaddr(t, "address", t.get("address", str))
    roles = t.get("roles", list, [], what="a list of role names")
    for role in roles:
        if role not in ROLES:
            raise t.error("roles", f"has unknown role {role!r}; known roles: {', '.join(ROLES)}")
    t.finish()
    return Member(name, public_key, address, tuple(roles), voting)


def genesis_from_doc(doc: dict[str, Any], path: Path, *, strict: bool = False) -> Genesis:
    """The genesis ``doc`` (read from ``path``) describes; ``strict``: see the module docstring."""
    top = _Table(doc, path, "")
    chain_id = top.get("chain_id", str, what="a chain id such as 'lendchain-test-1'")
    if not chain_id or len(chain_id) > 64:
        raise top.error("chain_id", "must be 1 to 64 characters")
    genesis_time_ms = top.get("genesis_time_ms", int, what="milliseconds since the Unix epoch")
    c = top.table("consensus")
    defaults = ConsensusParams()
    consensus = ConsensusParams(
        **{name: c.positive_int(name, getattr(defaults, name)) for name in defaults.__dict__}
    )
    c.finish()
    if consensus.watermark_window < consensus.checkpoint_interval * 2:
        raise c.error("watermark_window", "must be at least twice consensus.checkpoint_interval")
    raw_members = top.get("members", list, what="a list of [[members]] tables")
    members = []
    for i, raw in enumerate(raw_members):
        if not isinstance(raw, dict):
            raise top.error("members", "must be a list of tables ([[members]])")
        members.append(_read_member(_Table(raw, path, f"members[{i}]."), True))
    observers = []
    for i, raw in enumerate(top.get("observers", list, [])):
        if not isinstance(raw, dict):
            raise top.error("observers", "must be a list of tables ([[observers]])")
        observers.append(_read_member(_Table(raw, path, f"observers[{i}]."), False))
    app = top.get("app", dict, {})
    top.finish()
    if not members:
        raise ConfigError(f"{path}: 'members' is empty; a chain needs at least one voting member")
    names = [m.name for m in members + observers]
    keys = [m.public_key for m in members + observers]
    for what, values in (("name", names), ("public_key", keys)):
        dup = {v for v in values if values.count(v) > 1}
        if dup:
            shown = ", ".join(sorted(v.hex() if isinstance(v, bytes) else v for v in dup))
            raise ConfigError(f"{path}: two members share the {what} {shown}; each must be unique")
    try:
        codec.pack(app)
    except codec.CodecError as e:
        raise top.error("app", f"cannot be encoded canonically ({e})") from None
    version = param(app, "rules_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= RULES_VERSION:
        raise top.error(
            "app",
            f"rules_version must be an integer from 1 to {RULES_VERSION} (the newest rules this release "
            f"executes), got {version!r}",
        )
    for refused, message in _app_problems(path, app):
        if strict or refused:
            raise ConfigError(message)
    return Genesis(chain_id, genesis_time_ms, tuple(members), tuple(observers), consensus, app)


def _app_problems(path: Path, app: dict[str, Any]) -> list[tuple[bool, str]]:
    """(refused at every load, sentence) for each problem of the genesis ``[app]`` table."""
    found = []
    for problem in app_problems(app):
        if problem.unknown:
            message = f"{path}: unknown key 'app.{problem.key}'; {problem.sentence}"
        else:
            message = f"{path}: 'app.{problem.key}' {problem.sentence}"
        found.append((problem.refused_always, message))
    return found


def refuse_app_problems(path: Path, app: dict[str, Any]) -> None:
    """ConfigError naming the first problem of the ``[app]`` table of a genesis about to be written."""
    problems = _app_problems(path, app)
    if problems:
        raise ConfigError(problems[0][1])


def genesis_warnings(genesis: Genesis, path: Path) -> list[str]:
    """What a strict load of the genesis at ``path`` would have refused, and what it means for its chain."""
    consequence = (
        "the chain's genesis stays as it is (its hash is the chain's identity): the ledger ignores an "
        "unknown key and keeps a value as written; members change a parameter by governance "
        "(lendchain gov propose params.set KEY VALUE)"
    )
    return [f"{message}; {consequence}" for _, message in _app_problems(path, genesis.app)]


def load_genesis(path: str | Path, *, strict: bool = False) -> Genesis:
    """The genesis at ``path``; ``strict`` for a new chain's (see the module docstring)."""
    path = Path(path)
    return genesis_from_doc(_load_toml(path, "genesis file"), path, strict=strict)


def load_node_config(path: str | Path) -> NodeConfig:
    path = Path(path).resolve()
    doc = _load_toml(path, "node config")
    top = _Table(doc, path, "")
    base = path.parent

    def rel(value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (base / p).resolve()

    name = top.get("name", str, what="this node's member name from the genesis")
    joining = top.get("join", bool, False, what="true for a member the genesis does not name")
    genesis_path = rel(top.get("genesis", str, "genesis.toml"))
    key_file = rel(top.get("key_file", str, what="the path of this node's key file"))
    passphrase = top.get("passphrase_file", str, "")
    next_key_file = top.get("next_key_file", str, "")
    data_dir = rel(top.get("data_dir", str, what="the directory for this node's LevelDB"))

    p2p = top.table("p2p")
    p2p_listen = p2p.get("listen", str, "")
    if p2p_listen:
        _check_multiaddr(p2p, "listen", p2p_listen)
    p2p.finish()

    api = top.table("api")
    api_listen = api.get("listen", str, "127.0.0.1:8100", what="'host:port'")
    host, _, port = api_listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise api.error("listen", f"must be 'host:port' such as '127.0.0.1:8101', not {api_listen!r}")
    token_file = api.get("token_file", str, "")
    ad = ApiLimits()
    write_rate = api.get("write_rate_per_s", (int, float), ad.write_rate_per_s, what="requests per second")
    if isinstance(write_rate, bool) or write_rate <= 0:
        raise api.error(
            "write_rate_per_s", f"must be a positive number of requests per second, not {write_rate}"
        )
    api_limits = ApiLimits(
        max_body_bytes=api.positive_int("max_body_bytes", ad.max_body_bytes),
        max_batch_txs=api.positive_int("max_batch_txs", ad.max_batch_txs),
        write_rate_per_s=float(write_rate),
        write_burst=api.positive_int("write_burst", ad.write_burst),
    )
    api.finish()
    if host not in ("127.0.0.1", "localhost", "::1") and not token_file:
        raise api.error(
            "listen",
            f"binds {host}, beyond this machine, so api.token_file must name a bearer token file",
        )

    mp = top.table("mempool")
    md = MempoolConfig()
    mempool = MempoolConfig(
        max_txs=mp.positive_int("max_txs", md.max_txs),
        max_bytes=mp.positive_int("max_bytes", md.max_bytes),
        tx_ttl_ms=mp.positive_int("tx_ttl_ms", md.tx_ttl_ms),
    )
    mp.finish()

    st = top.table("store")
    compression = st.get("compression", str, StoreConfig.compression, what="'none' or 'snappy'")
    if compression not in STORE_COMPRESSIONS:
        raise st.error("compression", f"must be one of {', '.join(STORE_COMPRESSIONS)}, not {compression!r}")
    backup_dir = st.get("backup_dir", str, "", what="a directory for backups")
    interval = st.get("backup_interval_s", int, 0, what="seconds between scheduled backups")
    if "backup_interval_s" in st.data and interval < MIN_BACKUP_INTERVAL_S:
        raise st.error(
            "backup_interval_s",
            f"must be at least {MIN_BACKUP_INTERVAL_S} (seconds; 86400 is daily), not {interval}; "
            "leave it out for no scheduled backups",
        )
    keep = st.positive_int("backup_keep", StoreConfig.backup_keep)
    if "backup_keep" in st.data and not interval:
        raise st.error("backup_keep", "applies to scheduled backups: set backup_interval_s too")
    st.finish()

    log = top.table("log")
    level = log.get("level", str, "info")
    if level not in ("debug", "info", "warning", "error"):
        raise log.error("level", f"must be one of debug, info, warning, error, not {level!r}")
    log_format = log.get("format", str, "text")
    if log_format not in ("text", "json"):
        raise log.error("format", f"must be 'text' or 'json', not {log_format!r}")
    log.finish()
    top.finish()

    genesis = load_genesis(genesis_path)
    member = genesis.member(name)
    if member is None and not joining:
        known = ", ".join(m.name for m in genesis.members + genesis.observers)
        raise top.error(
            "name",
            f"is {name!r}, which is not in {genesis_path} (members: {known}); a member admitted "
            "after the genesis (member.admit) sets join = true",
        )
    if member is not None and joining:
        raise top.error("join", f"is true, but {name!r} is a member in {genesis_path}: leave join out")
    listen_from_chain = member is not None and not p2p_listen
    if member is not None:
        p2p_listen = p2p_listen or member.address
    elif not p2p_listen:
        raise p2p.error(
            "listen", f"must be set: {name!r} joins after the genesis, which has no address for it"
        )
    return NodeConfig(
        path=path,
        name=name,
        genesis_path=genesis_path,
        genesis=genesis,
        key_file=key_file,
        passphrase_file=rel(passphrase) if passphrase else None,
        next_key_file=rel(next_key_file) if next_key_file else None,
        data_dir=data_dir,
        p2p_listen=p2p_listen,
        api_host=host,
        api_port=int(port),
        api_token_file=rel(token_file) if token_file else None,
        api_limits=api_limits,
        mempool=mempool,
        store=StoreConfig(compression, rel(backup_dir) if backup_dir else None, interval or None, keep),
        log_level=level,
        log_format=log_format,
        joining=joining,
        p2p_listen_from_chain=listen_from_chain,
    )


def read_api_token(path: Path) -> str:
    """The bearer token in ``path``; refuses an unreadable, empty or short one (the API would be open)."""
    try:
        token = path.read_text().strip()
    except OSError as e:
        raise ConfigError(f"api token file {path} cannot be read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"api token file {path} is not text; write a token such as `openssl rand -hex 32`"
        ) from None
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"api token file {path} holds {'no token' if not token else 'a token that is too short'}; "
            f"write at least {MIN_TOKEN_CHARS} random characters (e.g. `openssl rand -hex 32 > {path}`)"
        )
    return token
