"""Node config and genesis validation: every error names the file, the key and the fix."""

import re
import tomllib

import pytest
import tomli_w

from lendchain.ledger.rules import RULES_VERSION
from lendchain.node.config import (
    ApiLimits,
    ConfigError,
    genesis_warnings,
    load_genesis,
    load_node_config,
    read_api_token,
)
from lendchain.node.testnet import generate_testnet


@pytest.fixture
def net(tmp_path):
    return generate_testnet(tmp_path / "net", 4)


def _edit(path, change):
    doc = tomllib.loads(path.read_text())
    change(doc)
    path.write_text(tomli_w.dumps(doc))


def test_generated_testnet_loads(net):
    config = load_node_config(net.configs[2])
    assert config.name == "bank3"
    assert config.genesis.n == 4 and config.genesis.f == 1
    assert config.genesis.member(config.name).public_key == net.genesis.members[2].public_key
    assert not config.joining
    assert config.api_url == "http://127.0.0.1:8103"
    assert load_genesis(net.out / "genesis.toml").hash() == net.genesis.hash()


def test_without_p2p_listen_a_node_listens_where_the_chain_says(net):
    config = load_node_config(net.configs[0])
    assert config.p2p_listen == net.genesis.members[0].address and config.p2p_listen_from_chain
    _edit(net.configs[0], lambda d: d.update(p2p={"listen": "/ip4/0.0.0.0/tcp/47101"}))
    config = load_node_config(net.configs[0])
    assert config.p2p_listen == "/ip4/0.0.0.0/tcp/47101" and not config.p2p_listen_from_chain


def test_testnet_refuses_to_overwrite(net):
    with pytest.raises(ConfigError, match="already holds a network"):
        generate_testnet(net.out, 4)


def test_a_member_admitted_after_the_genesis_loads_with_join(net):
    path = net.configs[0]
    _edit(path, lambda d: d.update(name="bank9", join=True, p2p={"listen": "/ip4/127.0.0.1/tcp/47109"}))
    config = load_node_config(path)
    assert (config.name, config.joining, config.p2p_listen) == ("bank9", True, "/ip4/127.0.0.1/tcp/47109")
    assert config.genesis.member("bank9") is None


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(mempol={"max_txs": 3}), "unknown key 'mempol'; did you mean 'mempool'"),
        (lambda d: d["api"].update(listn="x"), "unknown key 'api.listn'; did you mean 'api.listen'"),
        (lambda d: d["api"].update(listen="127.0.0.1"), "'api.listen' must be 'host:port'"),
        (lambda d: d["api"].update(listen="0.0.0.0:8101"), "api.token_file must name a bearer token"),
        (lambda d: d.update(name="bank9"), "'name' is 'bank9', which is not in"),
        (lambda d: d.update(name="bank9"), "a member admitted after the genesis .* sets join = true"),
        (lambda d: d.update(join=True), "'join' is true, but 'bank1' is a member in"),
        (
            lambda d: d.update(name="bank9", join=True),
            "'p2p.listen' must be set: 'bank9' joins after the genesis",
        ),
        (lambda d: d.update(join="yes"), "'join' must be true for a member the genesis does not name"),
        (lambda d: d.pop("key_file"), "'key_file' is missing"),
        (lambda d: d.update(mempool={"max_txs": -1}), "'mempool.max_txs' must be a positive integer"),
        (lambda d: d.update(log={"level": "loud"}), "'log.level' must be one of"),
        (lambda d: d.update(p2p={"listen": "127.0.0.1:47101"}), "'p2p.listen' must be a multiaddr"),
        (
            lambda d: d["api"].update(write_rate=5),
            "unknown key 'api.write_rate'; did you mean 'api.write_rate_per_s'",
        ),
        (lambda d: d["api"].update(write_brust=5), "did you mean 'api.write_burst'"),
        (lambda d: d["api"].update(write_rate_per_s=0), "'api.write_rate_per_s' must be a positive number"),
        (
            lambda d: d["api"].update(write_rate_per_s=True),
            "'api.write_rate_per_s' must be a positive number",
        ),
        (lambda d: d["api"].update(write_rate_per_s="fast"), "'api.write_rate_per_s' must be requests per"),
        (lambda d: d["api"].update(write_burst=0), "'api.write_burst' must be a positive integer"),
        (lambda d: d["api"].update(max_body_bytes=-1), "'api.max_body_bytes' must be a positive integer"),
        (lambda d: d["api"].update(max_batch_txs=1.5), "'api.max_batch_txs' must be a positive integer"),
        (
            lambda d: d.update(store={"compression": "zstd"}),
            "'store.compression' must be one of none, snappy",
        ),
        (lambda d: d.update(store={"compression": False}), "'store.compression' must be 'none' or 'snappy'"),
        (lambda d: d.update(store={"compresion": "none"}), "did you mean 'store.compression'"),
        (lambda d: d.update(store={"backup_dir": 7}), "'store.backup_dir' must be a directory for backups"),
        (lambda d: d.update(store={"backups": "b"}), "did you mean 'store.backup_dir'"),
        (
            lambda d: d.update(store={"backup_interval_s": 30}),
            r"'store.backup_interval_s' must be at least 60 \(seconds; 86400 is daily\), not 30",
        ),
        (lambda d: d.update(store={"backup_interval_s": 0}), "'store.backup_interval_s' must be at least 60"),
        (
            lambda d: d.update(store={"backup_interval_s": "daily"}),
            "'store.backup_interval_s' must be seconds between scheduled backups, not str 'daily'",
        ),
        (
            lambda d: d.update(store={"backup_interval_s": 86400, "backup_keep": 0}),
            "'store.backup_keep' must be a positive integer, not 0",
        ),
        (
            lambda d: d.update(store={"backup_keep": 3}),
            "'store.backup_keep' applies to scheduled backups: set backup_interval_s too",
        ),
        (lambda d: d.update(store={"backup_interval": 3600}), "did you mean 'store.backup_interval_s'"),
    ],
)
def test_node_config_errors_name_the_key(net, change, message):
    path = net.configs[0]
    _edit(path, change)
    with pytest.raises(ConfigError, match=message) as info:
        load_node_config(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["members"][1].update(public_key="zz"), r"'members\[1\].public_key' is not hex"),
        (lambda d: d["members"][0].update(roles=["banker"]), "unknown role 'banker'"),
        (lambda d: d["members"][1].update(name="bank1"), "two members share the name bank1"),
        (
            lambda d: d["consensus"].update(checkpoint_intervl=5),
            "did you mean 'consensus.checkpoint_interval'",
        ),
        (lambda d: d["consensus"].update(watermark_window=10), "at least twice"),
        (lambda d: d.update(members=[]), "needs at least one voting member"),
        (lambda d: d.update(chain_id=7), "'chain_id' must be a chain id .* not int 7"),
        (
            lambda d: d.update(app={"rules_version": RULES_VERSION + 1}),
            f"rules_version must be an integer from 1 to {RULES_VERSION} .* got {RULES_VERSION + 1}",
        ),
        (lambda d: d.update(app={"rules_version": "2"}), "rules_version must be an integer .* got '2'"),
        (lambda d: d.update(app={"rules_version": True}), "rules_version must be an integer .* got True"),
        (
            lambda d: d.update(app={"max_restructurings": 0}),
            r"'app.max_restructurings' must be an integer from 1 to 20 \(restructurings per loan\), got 0",
        ),
        (lambda d: d.update(app={"max_restructurings": 21}), "'app.max_restructurings' .* got 21"),
        (lambda d: d.update(app={"max_restructurings": "3"}), "'app.max_restructurings' .* got '3'"),
        (lambda d: d.update(app={"max_restructurings": True}), "'app.max_restructurings' .* got True"),
        (
            lambda d: d.update(app={"restructure_offer_ms": 59_999}),
            r"'app.restructure_offer_ms' must be an integer from 60000 to 31536000000 \(milliseconds a "
            r"proposal stays open\), got 59999",
        ),
        (lambda d: d.update(app={"restructure_offer_ms": -1}), "'app.restructure_offer_ms' .* got -1"),
        (
            lambda d: d.update(app={"max_restructuring": 2}),
            r"unknown key 'app.max_restructuring'; did you mean 'app.max_restructurings'\?",
        ),
        (
            lambda d: d.update(app={"restructure_offer": 86_400_000}),
            r"unknown key 'app.restructure_offer'; did you mean 'app.restructure_offer_ms'\?",
        ),
    ],
)
def test_genesis_errors_name_the_key(net, change, message):
    path = net.out / "genesis.toml"
    _edit(path, change)
    with pytest.raises(ConfigError, match=message):
        load_genesis(path)


def test_a_genesis_sets_the_restructuring_guard_rails_within_their_bounds(net):
    path = net.out / "genesis.toml"
    _edit(path, lambda d: d.setdefault("app", {}).update(max_restructurings=20, restructure_offer_ms=60_000))
    app = load_genesis(path).app
    assert (app["max_restructurings"], app["restructure_offer_ms"]) == (20, 60_000)


def test_invalid_toml_is_named(net):
    net.configs[0].write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_node_config(net.configs[0])


def test_genesis_hash_changes_with_any_member_detail(net):
    path = net.out / "genesis.toml"
    before = load_genesis(path).hash()
    _edit(path, lambda d: d["members"][3].update(address="/ip4/127.0.0.1/tcp/47999"))
    assert load_genesis(path).hash() != before


def test_a_config_that_is_not_utf8_is_a_clean_error(tmp_path):
    from lendchain.node.config import ConfigError, load_node_config

    path = tmp_path / "node.toml"
    path.write_bytes(b'name = "bank1"\nkey_file = "k\xe8y"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_node_config(path)


def test_the_api_is_local_with_default_limits_unless_configured(net):
    _edit(net.configs[0], lambda d: d.pop("api"))
    config = load_node_config(net.configs[0])
    assert (config.api_host, config.api_port, config.api_token_file) == ("127.0.0.1", 8100, None)
    assert config.api_limits == ApiLimits()
    _edit(
        net.configs[1],
        lambda d: d["api"].update(write_rate_per_s=2.5, write_burst=10, max_body_bytes=4096, max_batch_txs=7),
    )
    assert load_node_config(net.configs[1]).api_limits == ApiLimits(4096, 7, 2.5, 10)


def test_the_store_is_uncompressed_unless_configured(net):
    assert load_node_config(net.configs[0]).store.compression == "none"
    _edit(net.configs[1], lambda d: d.update(store={"compression": "snappy"}))
    assert load_node_config(net.configs[1]).store.compression == "snappy"


def test_backups_go_beside_the_data_directory_unless_configured(net):
    config = load_node_config(net.configs[0])
    assert config.backup_dir == config.data_dir.parent / "backups"
    _edit(net.configs[1], lambda d: d.update(store={"backup_dir": "../vault"}))
    assert load_node_config(net.configs[1]).backup_dir == (net.configs[1].parent / "../vault").resolve()


def test_an_api_token_file_must_hold_a_long_enough_token(tmp_path):
    path = tmp_path / "api.token"
    with pytest.raises(ConfigError, match=f"api token file {path} cannot be read"):
        read_api_token(path)
    path.write_text("\n")
    with pytest.raises(ConfigError, match="holds no token; write at least 16 random characters"):
        read_api_token(path)
    path.write_text("hunter2\n")
    with pytest.raises(ConfigError, match="a token that is too short") as info:
        read_api_token(path)
    assert "hunter2" not in str(info.value)
    path.write_text("  0123456789abcdef0123  \n")
    assert read_api_token(path) == "0123456789abcdef0123"


def test_scheduled_backups_are_off_unless_configured_and_keep_seven_by_default(net):
    store = load_node_config(net.configs[0]).store
    assert (store.backup_interval_s, store.backup_keep) == (None, 7)
    _edit(net.configs[1], lambda d: d.update(store={"backup_interval_s": 86400}))
    store = load_node_config(net.configs[1]).store
    assert (store.backup_interval_s, store.backup_keep) == (86400, 7)
    _edit(net.configs[2], lambda d: d.update(store={"backup_interval_s": 3600, "backup_keep": 2}))
    store = load_node_config(net.configs[2]).store
    assert (store.backup_interval_s, store.backup_keep) == (3600, 2)


# The genesis [app] table: the registry's checks, strict for a new chain, warnings for a running one.


def _typo_in_app(path):
    _edit(path, lambda d: d.update(app={"rules_version": 6, "max_term_month": 360}))


@pytest.mark.parametrize(
    "app, message",
    [
        ({"max_term_month": 360}, r"unknown key 'app.max_term_month'; did you mean 'app.max_term_months'\?"),
        (
            {"colour": "red"},
            r"unknown key 'app.colour'; the chain parameters are currencies, max_term_months,",
        ),
        ({"require_kyc": "no"}, r"'app.require_kyc' must be true or false, got 'no'"),
        (
            {"max_term_months": "360"},
            r"'app.max_term_months' must be an integer from 1 to 1200 \(months\), got '360'",
        ),
        (
            {"max_term_months": 0},
            r"'app.max_term_months' must be an integer from 1 to 1200 \(months\), got 0",
        ),
        ({"voting_period_ms": 1000}, r"'app.voting_period_ms' must be an integer from 60000 to 31536000000"),
        ({"key_rotation_delay_blocks": 1}, r"'app.key_rotation_delay_blocks' .* got 1"),
        ({"currencies": ["EUR", "eur"]}, r"'app.currencies' has 'eur', which is no currency code"),
        ({"currencies": []}, r"'app.currencies' must name 1 to 32 currencies, not 0"),
    ],
)
def test_a_new_chains_genesis_is_refused_for_any_problem_in_app(net, app, message):
    path = net.out / "genesis.toml"
    _edit(path, lambda d: d.update(app=app))
    with pytest.raises(ConfigError, match=f"{path}: {message}"):
        load_genesis(path, strict=True)
    # A genesis a chain may already run on loads, and its problem is a warning.
    genesis = load_genesis(path)
    assert genesis.app == app
    [warning] = genesis_warnings(genesis, path)
    assert re.search(message, warning)
    assert warning.endswith(
        "members change a parameter by governance (lendchain gov propose params.set KEY VALUE)"
    )


def test_a_genesis_within_the_registry_loads_strictly_without_warnings(net):
    path = net.out / "genesis.toml"
    app = {"rules_version": 6, "currencies": ["EUR", "JPY"], "require_kyc": False, "grace_days": 0}
    _edit(path, lambda d: d.update(app=app))
    genesis = load_genesis(path, strict=True)
    assert genesis.app == app and genesis_warnings(genesis, path) == []


def test_testnet_refuses_a_problem_in_its_params_before_writing_anything(tmp_path):
    with pytest.raises(
        ConfigError, match=r"unknown key 'app.max_term_month'; did you mean 'app.max_term_months'"
    ):
        generate_testnet(tmp_path / "net", 4, params={"max_term_month": 360})
    with pytest.raises(
        ConfigError, match=r"'app.grace_days' must be an integer from 0 to 365 \(days\), got 400"
    ):
        generate_testnet(tmp_path / "net", 4, params={"grace_days": 400})
    assert not (tmp_path / "net").exists()
    layout = generate_testnet(tmp_path / "net", 4, rules_version=6, params={"max_term_months": 360})
    assert load_genesis(layout.out / "genesis.toml", strict=True).app == {
        "rules_version": 6,
        "max_term_months": 360,
    }


def test_devnet_refuses_a_typo_until_a_node_has_run_the_chain(tmp_path):
    from lendchain.node.devnet import _configs

    layout = generate_testnet(tmp_path / "dev", 4)
    _typo_in_app(layout.out / "genesis.toml")
    with pytest.raises(ConfigError, match=r"did you mean 'app.max_term_months'"):
        _configs(layout.out, 4, 8100, 47100)
    (layout.out / "data" / "bank1").mkdir(parents=True)
    (layout.out / "data" / "bank1" / "CURRENT").write_text("MANIFEST-000001\n")  # bank1 has run it
    assert _configs(layout.out, 4, 8100, 47100) == list(layout.configs)
