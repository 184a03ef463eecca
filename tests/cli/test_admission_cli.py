"""Admitting a new member from the command line: the joining bank's request, a member's proposal of it.

``gov admission-request`` (no node) signs what ``lendchain.ledger.admission``
checks; ``gov propose-admit`` refuses, before sending anything, a request the
ledger would refuse or one made for another chain; ``gov show`` reads an
admission as a person would.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lendchain.cli import governance as gov_cli
from lendchain.cli import main
from lendchain.crypto import verify
from lendchain.ledger.admission import ADMISSION_TAG, admitted_members, proof_body
from lendchain.ledger.kinds import lookup_kind
from lendchain.ledger.schema import check_payload
from lendchain.node.testnet import generate_testnet
from tests.ledger.chain import CHAIN_ID, seeded_key
from tests.ledger.test_admission import rules_world
from tests.ledger.test_domain_cli import FakeClient
from tests.ledger.test_membership import vote_through

ADDRESS = "/ip4/10.0.0.5/tcp/47105"


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LENDCHAIN_PASSPHRASE", raising=False)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def admission_request(run, *options: str, chain_id: str = CHAIN_ID):
    """``gov admission-request bank5`` with bank5.key, at ADDRESS, for ``chain_id``, and ``options``."""
    common = ("--key", "bank5.key", "--address", ADDRESS, "--chain-id", chain_id)
    return run("gov", "admission-request", "bank5", *common, *options)


@pytest.fixture
def request_file(run):
    """bank5's request to join the ledger tests' chain as a lender and kyc member."""
    assert run("keys", "new", "bank5.key").exit_code == 0
    made = admission_request(run, "--roles", "lender,kyc", "--out", "bank5.json")
    assert made.exit_code == 0, made.output
    assert "gov propose-admit bank5.json" in made.output
    return "bank5.json"


def read_json(path):
    with open(path) as file:
        return json.load(file)


def test_a_request_verifies_and_the_members_admit_it_with_its_value(run, request_file):
    request = read_json(request_file)
    public_key, proof = bytes.fromhex(request["public_key"]), bytes.fromhex(request["proof"])
    assert request["roles"] == ["kyc", "lender"]  # sorted, as the proof signs them
    body = proof_body("bank5", public_key, ADDRESS, request["roles"])
    assert verify(public_key, proof, ADMISSION_TAG, CHAIN_ID, body)
    assert request["did"] == json.loads(run("--json", "keys", "show", "bank5.key").output)["did"]
    # The ledger's parse_admission takes the value when proposed; the quorum's vote admits bank5.
    chain, members = rules_world()
    vote_through(chain, members[0], members[1:3], "member.admit", "bank5", request["value"])
    [admitted] = admitted_members(chain.state)
    assert (admitted.name, admitted.public_key, admitted.address, admitted.roles, admitted.voting) == (
        "bank5",
        public_key,
        ADDRESS,
        ("kyc", "lender"),
        False,
    )


def test_without_out_the_request_goes_to_stdout_and_the_hint_to_stderr(run):
    run("keys", "new", "bank5.key")
    result = admission_request(run, chain_id="c1")
    assert result.exit_code == 0, result.output
    request = json.loads(result.stdout)
    assert sorted(request) == ["address", "chain_id", "did", "name", "proof", "public_key", "roles", "value"]
    assert (request["chain_id"], request["roles"]) == ("c1", [])
    assert "gov propose-admit FILE" in result.stderr


def test_an_encrypted_key_opens_with_its_passphrase(run, tmp_path):
    (tmp_path / "pass").write_text("bank5 passphrase\n")
    run("keys", "new", "bank5.key", "--passphrase-file", "pass")
    locked = admission_request(run)
    assert locked.exit_code == 1 and "is encrypted and no passphrase was given" in locked.output
    assert admission_request(run, "--passphrase-file", "pass").exit_code == 0


def test_the_genesis_gives_the_chain_id_and_refuses_a_name_or_key_it_has(run, tmp_path):
    generate_testnet(tmp_path / "net", 4)
    run("keys", "new", "bank5.key")
    base = ("gov", "admission-request", "--address", ADDRESS, "--genesis", "net/genesis.toml")
    made = run(*base, "bank5", "--key", "bank5.key")
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["chain_id"] == "lendchain-test-1"
    taken = run(*base, "bank1", "--key", "bank5.key")
    assert taken.exit_code == 2 and "'bank1' is already a member in net/genesis.toml" in taken.output
    held = run(*base, "bank5", "--key", "net/keys/bank2.key")
    assert held.exit_code == 2 and "is bank2's node key in net/genesis.toml" in held.output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"NAME": "bank 5"}, "'bank 5' is no member name"),
        ({"--address": "/ip4/10.0.0.5/udp/47105"}, "must be a multiaddr like"),
        ({"--address": "/ip4/300.0.0.5/tcp/47105"}, "invalid IP address '300.0.0.5'"),
        ({"--address": "/dns4/node.example/tcp/0"}, "invalid TCP port '0'"),
        ({"--address": f"/dns4/{'a' * 200}.example/tcp/1"}, "is too long: the proposal would be"),
        ({"--roles": "lender,banker"}, "'banker' is no role; roles are lender, kyc"),
        ({"--chain-id": None}, "give the chain to join: --chain-id ID"),
        ({"--chain-id": "c" * 65}, "(1 to 64 characters)"),
        ({"--genesis": "genesis.toml"}, "either as --chain-id or as --genesis, not both"),
    ],
)
def test_each_bad_input_is_a_usage_error_naming_it(run, tmp_path, change, message):
    run("keys", "new", "bank5.key")
    generate_testnet(tmp_path / "net", 1)
    (tmp_path / "genesis.toml").write_text((tmp_path / "net" / "genesis.toml").read_text())
    options = {"NAME": "bank5", "--key": "bank5.key", "--address": ADDRESS, "--chain-id": "c1", **change}
    args = [options.pop("NAME")]
    for option, value in options.items():
        if value is not None:
            args += [option, value]
    result = run("gov", "admission-request", *args, "--out", "bank5.json")
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "bank5.json").exists()


def test_a_request_file_is_never_overwritten(run, request_file):
    again = admission_request(run, "--out", request_file)
    assert again.exit_code == 1 and "bank5.json already exists" in again.output


def node_status(chain_id=CHAIN_ID, version=3, scheduled=()):
    return {"chain_id": chain_id, "height": 10, "rules": {"version": version, "scheduled": list(scheduled)}}


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(gov_cli, "send_tx", lambda ctx, kw, kind, payload: calls.append((kind, payload)))
    return calls


def use_node(monkeypatch, status):
    monkeypatch.setattr(gov_cli, "client_from", lambda kw: FakeClient({"/status": status}))


def test_propose_admit_sends_the_request_the_ledger_accepts(run, request_file, sent, monkeypatch):
    use_node(monkeypatch, node_status())
    result = run("gov", "propose-admit", request_file)
    assert result.exit_code == 0, result.output
    [(kind, payload)] = sent
    check_payload(kind, lookup_kind(kind).schema, payload)
    assert payload == {"action": "member.admit", "key": "bank5", "value": read_json(request_file)["value"]}
    chain, members = rules_world()
    proposed = chain.run_one(chain.tx(members[0], kind, payload))
    assert proposed.ok, proposed.message


def test_propose_admit_refuses_a_request_for_another_chain(run, request_file, sent, monkeypatch):
    use_node(monkeypatch, node_status(chain_id="lendchain-prod-1"))
    result = run("gov", "propose-admit", request_file)
    assert result.exit_code == 2
    assert f"asks to join chain '{CHAIN_ID}', but this node is on 'lendchain-prod-1'" in result.output
    assert sent == []


def tamper(path, **fields):
    request = read_json(path)
    for field, value in fields.items():
        if value is None:
            del request[field]
        else:
            request[field] = value
    with open(path, "w") as file:
        json.dump(request, file)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"address": "/ip4/10.6.6.6/tcp/47105"}, "proof that is not its key's signature of bank5's"),
        ({"roles": ["lender", "regulator"]}, "has a proof that is not its key's signature"),
        ({"name": "bank6"}, "has a proof that is not its key's signature"),
        ({"chain_id": "lendchain-prod-1"}, "has a proof that is not its key's signature"),
        ({"proof": "00" * 64}, "has a proof that is not its key's signature"),
        ({"proof": "00" * 63}, "field 'proof' must be 128 lower-case hex digits"),
        ({"public_key": "zz" * 32}, "field 'public_key' must be 64 lower-case hex digits"),
        ({"did": seeded_key(7).did}, "field 'did' is not the did:key of its public key"),
        ({"value": "00" * 32}, "field 'value' is not the one its other fields make"),
        ({"proof": None, "value": None}, "lacks the field(s) proof, value"),
        ({"roles": "lender"}, "field 'roles' must be a list of role names"),
        ({"roles": ["banker"]}, "is refused: 'banker' is no role"),
        ({"name": "bank 5"}, "is refused: 'bank 5' is no member name"),
        ({"address": "/ip4/10.0.0.5/udp/1"}, "field 'address' must be a multiaddr like"),
    ],
)
def test_propose_admit_refuses_a_tampered_or_malformed_request_without_sending(
    run, request_file, sent, monkeypatch, fields, message
):
    use_node(monkeypatch, node_status())
    tamper(request_file, **fields)
    result = run("gov", "propose-admit", request_file)
    assert result.exit_code == 2, result.output
    assert "Invalid value for 'REQUEST_FILE': bank5.json" in result.output and message in result.output
    assert sent == []


def test_propose_admit_refuses_a_file_that_is_no_request(run, sent, monkeypatch, tmp_path):
    use_node(monkeypatch, node_status())
    (tmp_path / "notes.txt").write_text("please admit bank5\n")
    result = run("gov", "propose-admit", "notes.txt")
    assert result.exit_code == 2 and "notes.txt is not an admission request" in result.output
    assert sent == []


def test_propose_admit_says_when_the_chain_needs_rules_3(run, request_file, sent, monkeypatch):
    use_node(monkeypatch, node_status(version=2))
    unscheduled = run("gov", "propose-admit", request_file)
    assert unscheduled.exit_code == 1
    assert "runs rules version 2 and member.admit needs version 3" in unscheduled.output
    assert "lendchain gov propose rules.upgrade 3 HEIGHT" in unscheduled.output
    use_node(monkeypatch, node_status(version=2, scheduled=[{"height": 50, "version": 3}]))
    assert "it starts at height 50" in run("gov", "propose-admit", request_file).output
    assert sent == []
    use_node(monkeypatch, node_status(version=2, scheduled=[{"height": 11, "version": 3}]))
    assert run("gov", "propose-admit", request_file).exit_code == 0  # the next block runs rules 3
    assert len(sent) == 1


def test_gov_propose_takes_member_admit_as_is(run, request_file, sent):
    value = read_json(request_file)["value"]
    assert run("gov", "propose", "member.admit", "bank5", value).exit_code == 0
    assert sent == [("gov.propose", {"action": "member.admit", "key": "bank5", "value": value})]


def test_gov_show_and_list_read_an_admission_by_name_address_roles_and_key(run, request_file, monkeypatch):
    request = read_json(request_file)
    proposal = {
        "proposal_id": "ab" * 32,
        "action": "member.admit",
        "key": "bank5",
        "value": request["value"],
        "status": "open",
        "votes": ["did:key:z6Mkbank1"],
        "expires_ms": 1_700_000_600_000,
    }
    open_view = {"open": 1, "needed": 3, "proposals": [proposal]}
    answers = {f"/proposals/{'ab' * 32}": proposal, "/proposals/open": open_view}
    monkeypatch.setattr(gov_cli, "client_from", lambda kw: FakeClient(answers))
    expected = (
        f"{'ab' * 32}  member.admit bank5 at {ADDRESS}, roles kyc,lender, key {request['public_key'][:16]}… "
        f"({request['did']})  open"
    )
    shown = run("gov", "show", "ab" * 32)
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith(expected) and request["proof"] not in shown.output
    listed = run("gov", "list")
    assert listed.output.startswith(expected) and "1/3 votes" in listed.output
