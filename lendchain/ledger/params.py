"""Chain parameters: every parameter the ledger reads, in one registry (``PARAMS``).

Each entry says the parameter's type, bounds and default, what it does (one
sentence), and whether governance may change it: how a change takes effect
(``change``), or why it may not (``fixed_because``). Nothing else in the
ledger holds a parameter's default: a reader asks ``value`` (or, for a
loan's servicing terms, ``for_loan``).

Where a value comes from. The genesis ``[app]`` table sets a chain's
parameters. The state key ``params`` (``state.PARAMS_KEY``) holds them from
height 0 as ``{**STORED_DEFAULTS, **app}``: the parameters of the first
release with their defaults, overridden by whatever the genesis set. Those
bytes are in every chain's genesis state root, so ``STORED_DEFAULTS`` never
grows: a parameter registered later is absent from the stored map unless
the genesis sets it (or governance changes it), and ``value`` gives its
default from here. So adding a parameter changes no chain's bytes.

Checking a genesis. ``app_problems`` lists what is wrong with an ``[app]``
table: a key that is no parameter (with the nearest name, a typo left
silently ignored would leave a default nobody chose), a value of the wrong
type or out of bounds. ``node.config`` decides which refuse a genesis and
which only warn: a chain's genesis cannot be edited once the chain runs (its
hash is the chain's identity), so a node must still start on one written
before this registry checked it. ``refused_always`` marks the parameters
whose values were checked before the registry existed: no chain holds a bad
one, so one is refused at every load.

Changing one. From rules version 6 the governance action ``params.set``
changes a parameter whose ``change`` is not empty (``params_change``): its
value is given as text, which ``parse_text`` reads (a number, ``true`` or
``false``, comma-separated currency codes). Its refusals are hashed into
blocks' results, so they must read the same to every later release: a
parameter registered later names the rules version that first reads it
(``since``), and a refusal names only the parameters known under its
block's rules (``unknown``); changing a bound or a default is a rules
change like any other.

Servicing terms. ``grace_days``, ``default_days`` and ``penalty_bps`` are
part of a loan's contract, and decide when the due-loan pass (``due``) next
looks at it: every serviced loan is filed under a check time computed with
them. A change could not re-file every loan in one transaction (the index is
unbounded), and applied to loans filed under the old terms it would look at
them late and charge the new penalty rate on arrears that accrued under the
old one. So a change applies to the loans disbursed after the block that
executes it, and the loans disbursed before keep the terms they were
disbursed under, for good: the change records them in the stored map under
``SERVICING_ERAS`` as ``[until_ms, grace_days, default_days, penalty_bps]``
(``until_ms``: the changing block's time); a loan disbursed at or before
``until_ms`` keeps the first such row's terms (``for_loan``). No loan
record changes, and a chain that never changes them stores nothing new.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

INT, BOOL, CURRENCIES = "int", "bool", "currencies"
_DAY_MS = 86_400_000
# The reserved entry of the stored map that keeps earlier loans' servicing terms (see above);
# not a parameter, so a genesis cannot set it (it is an unknown key).
SERVICING_ERAS = "servicing_eras"
SERVICING = ("grace_days", "default_days", "penalty_bps")
_NUMBER = re.compile(r"[0-9]{1,18}")
_CODE = re.compile(r"[A-Z]{3}")
# An unknown key this similar to a parameter's name, in percent, is a typo of it (difflib's default).
_TYPO_PERCENT = 60
# The names whose near misses (85 % similar) a genesis was refused for before the registry.
_TYPOS_REFUSED_BEFORE = ("max_restructurings", "restructure_offer_ms")
_REFUSED_PERCENT = 85


class ParamError(ValueError):
    """A parameter value that cannot be: the sentence says what is wrong and what it must be."""


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # INT, BOOL or CURRENCIES
    default: Any
    what: str  # what it does, one sentence
    least: int = 0  # INT: the value's bounds; CURRENCIES: how many codes
    greatest: int = 0
    unit: str = ""  # what an INT counts
    change: str = ""  # how a params.set change takes effect; empty when governance may not change it
    fixed_because: str = ""  # why governance may not change it
    refused_always: bool = False  # its values were checked before the registry: refused at every load
    since: int = 1  # the rules version that reads it first (``params.set`` refusals name only those known)
    # INT: the lowest value ``params.set`` may set, above ``least`` where a lower one could leave the
    # members no time to vote the next change (its own undoing included); 0: ``least``
    change_least: int = 0

    @property
    def changeable(self) -> bool:
        return bool(self.change)

    def bounds(self) -> tuple[int, int]:
        if self.name == "rules_version":
            # Imported here: the rules import the state, which imports this registry.
            from lendchain.ledger.rules import RULES_VERSION

            return 1, RULES_VERSION
        return self.least, self.greatest

    def shape(self) -> str:
        """The values it takes, in words (the README's table and the CLI say it)."""
        least, greatest = self.bounds()
        if self.kind == BOOL:
            return "true or false"
        if self.kind == CURRENCIES:
            return f"{least} to {greatest} three-letter currency codes"
        return f"{least} to {greatest} {self.unit}"


_NEXT_BLOCK = "from the next block"

PARAMS: dict[str, Param] = {
    p.name: p
    for p in (
        Param(
            "currencies",
            CURRENCIES,
            ["CHF", "EUR", "GBP", "INR", "KES", "USD"],
            "The currencies loan.apply and policy.publish accept (ISO 4217 codes).",
            least=1,
            greatest=32,
            change=f"{_NEXT_BLOCK}: an added currency takes new loans and policies; a removed one takes "
            "none, and the loans and policies already in it go on as before",
        ),
        Param(
            "max_term_months",
            INT,
            480,
            "The longest term of a loan.apply, and of a restructuring's new schedule.",
            least=1,
            greatest=1200,
            unit="months",
            change=f"{_NEXT_BLOCK}, for applications and restructurings; loans keep the terms they have",
        ),
        Param(
            "max_offers_per_loan",
            INT,
            16,
            "How many offers, made by hand or by a lender's policy, one loan may collect.",
            least=1,
            greatest=64,
            unit="offers",
            change=f"{_NEXT_BLOCK}; a loan already holding more offers takes no further one",
        ),
        Param(
            "require_kyc",
            BOOL,
            True,
            "Whether loan.apply needs an unexpired KYC attestation from a member with the kyc role.",
            change=f"{_NEXT_BLOCK}, for applications",
        ),
        Param(
            "voting_period_ms",
            INT,
            7 * _DAY_MS,
            "How long, in block time, a governance proposal is open for votes.",
            least=60_000,
            greatest=365 * _DAY_MS,
            unit="ms",
            change=f"{_NEXT_BLOCK}, for proposals made from then on; open proposals keep their expires_ms; "
            "governance sets it no lower than one hour (a genesis may, for a test network)",
            change_least=3_600_000,
        ),
        Param(
            "key_rotation_delay_blocks",
            INT,
            20,
            "How many blocks after its last vote a node key rotation or a change of who votes takes "
            "effect, and a removed member's node is let go.",
            least=2,
            greatest=10_000,
            unit="blocks",
            fixed_because="every node trusts its key schedule to be complete up to the executed height "
            "plus this delay (its horizon): a shorter delay would let a key change take effect inside a "
            "horizon already relied on, and removed members' cut-off heights are computed from it after "
            "the fact; it is fixed by the genesis",
        ),
        Param(
            "max_evaluations_per_block",
            INT,
            256,
            "How many due loans the due-loan pass evaluates at the start of one block; the rest wait "
            "for the next.",
            least=1,
            greatest=10_000,
            unit="loans",
            change=_NEXT_BLOCK,
        ),
        Param(
            "grace_days",
            INT,
            5,
            "Days after an instalment's due time before the loan falls overdue and penalty interest starts.",
            least=0,
            greatest=365,
            unit="days",
            change="for loans disbursed after the change; a loan disbursed before keeps its terms",
        ),
        Param(
            "default_days",
            INT,
            90,
            "Days after the oldest unpaid instalment's due time before an overdue loan defaults.",
            least=1,
            greatest=730,
            unit="days",
            change="for loans disbursed after the change; a loan disbursed before keeps its terms",
        ),
        Param(
            "penalty_bps",
            INT,
            1000,
            "Penalty interest a year on every amount unpaid past its due time plus grace.",
            least=0,
            greatest=100_000,
            unit="basis points",
            change="for loans disbursed after the change; a loan disbursed before keeps its terms",
        ),
        Param(
            "max_restructurings",
            INT,
            3,
            "How many times one loan may be restructured (from rules 6).",
            least=1,
            greatest=20,
            unit="restructurings per loan",
            change=f"{_NEXT_BLOCK}; a loan restructured as often already is restructured no more",
            refused_always=True,
            since=6,
        ),
        Param(
            "restructure_offer_ms",
            INT,
            30 * _DAY_MS,
            "How long a restructuring proposal stays open for the borrower's acceptance (from rules 6).",
            least=60_000,
            greatest=365 * _DAY_MS,
            unit="milliseconds a proposal stays open",
            change=f"{_NEXT_BLOCK}, for proposals made from then on; pending ones keep their expires_ms",
            refused_always=True,
            since=6,
        ),
        Param(
            "min_share_part_bps",
            INT,
            100,
            "The least part of a syndicated loan's commitment that loan.share_assign sells, and leaves "
            "its seller unless it sells the whole, in basis points of the loan's funding target "
            "(from rules 7; rules 6 holds it at 100).",
            least=1,
            greatest=5000,
            unit="basis points of the loan",
            change=f"{_NEXT_BLOCK}, for offers made from then on; an offer pending is accepted by the "
            "least part in force when it was made",
            refused_always=True,
            since=7,
        ),
        Param(
            "dispute_response_ms",
            INT,
            30 * _DAY_MS,
            "How long a credit report's furnisher has to answer the subject's dispute of it before the "
            "report stops counting in the score (from rules 7).",
            least=_DAY_MS,
            greatest=180 * _DAY_MS,
            unit="milliseconds a furnisher has to answer",
            change=f"{_NEXT_BLOCK}, for disputes opened from then on; open ones keep their deadline_ms",
            refused_always=True,
            since=7,
        ),
        Param(
            "rules_version",
            INT,
            1,
            "The ledger rules version the chain runs from block 1.",
            unit="rules versions",
            fixed_because="rules.upgrade changes the rules, at a height the members vote for, with "
            "notice for every node to install a release that runs them",
            refused_always=True,
        ),
    )
}

# What the first release stored at every genesis (see the module docstring): never grows.
STORED_DEFAULTS: dict[str, Any] = {
    name: PARAMS[name].default
    for name in ("currencies", "max_term_months", "max_offers_per_loan", "require_kyc", "voting_period_ms")
}


def value(params: dict[str, Any], name: str) -> Any:
    """The chain's value of parameter ``name``: as stored in ``params`` (the block's), else its default."""
    return params[name] if name in params else PARAMS[name].default


def for_loan(params: dict[str, Any], name: str, loan: dict[str, Any]) -> int:
    """A servicing term (``SERVICING``) of ``loan``: the one in force when it was disbursed."""
    disbursed_ms = loan.get("disbursed_ms")
    if disbursed_ms is not None:
        for until_ms, *terms in params.get(SERVICING_ERAS, ()):
            if disbursed_ms <= until_ms:
                return terms[SERVICING.index(name)]
    return params[name] if name in params else PARAMS[name].default  # ``value``, without its call


def _similar(word: str, names: tuple[str, ...], percent: int) -> str | None:
    """The name most similar to ``word`` by difflib's ratio (2 x matching characters / both lengths),
    if at least ``percent`` % similar; in integers, as the ledger computes (a refusal names it)."""
    best, best_score = None, -1
    for name in names:
        matching = sum(
            block.size for block in difflib.SequenceMatcher(None, name, word).get_matching_blocks()
        )
        total = len(name) + len(word)
        score = 2 * matching * 1000 // total  # per mille
        if 2 * matching * 100 >= percent * total and score > best_score:
            best, best_score = name, score
    return best


def nearest(name: str, rules: int | None = None) -> str | None:
    """The parameter an unknown ``name`` most likely means, if any is close (of those known under
    ``rules``: all when None)."""
    return _similar(name, known(rules), _TYPO_PERCENT)


def known(rules: int | None = None) -> tuple[str, ...]:
    """The parameters known under rules version ``rules`` (all when None)."""
    return tuple(name for name, param in PARAMS.items() if rules is None or param.since <= rules)


def unknown(name: str, rules: int) -> str:
    """Why ``name`` is no parameter, and what it may have meant, under rules version ``rules``.

    Only the parameters known under ``rules`` are named, so a refusal replayed by a release
    that registered more says what it said when its block was made.
    """
    meant = nearest(name, rules)
    if meant is not None:
        return f"{name!r} is no chain parameter; did you mean {meant!r}?"
    return f"{name!r} is no chain parameter; they are {', '.join(known(rules))}"


def problem(name: str, given: Any) -> str | None:
    """What is wrong with ``given`` as the value of parameter ``name`` (a genesis value); None if fine."""
    param = PARAMS[name]
    least, greatest = param.bounds()
    if param.kind == BOOL:
        return None if isinstance(given, bool) else f"must be true or false, got {given!r}"
    if param.kind == CURRENCIES:
        if not isinstance(given, list) or not all(isinstance(code, str) for code in given):
            return f'must be a list of currency codes such as ["EUR", "USD"], got {given!r}'
        return _currencies_problem(param, given)
    if not isinstance(given, int) or isinstance(given, bool) or not least <= given <= greatest:
        return f"must be an integer from {least} to {greatest} ({param.unit}), got {given!r}"
    return None


def _currencies_problem(param: Param, codes: list[str]) -> str | None:
    bad = [code for code in codes if not _CODE.fullmatch(code)]
    if bad:
        return f"has {bad[0]!r}, which is no currency code (three capital letters, such as 'EUR')"
    twice = sorted({code for code in codes if codes.count(code) > 1})
    if twice:
        return f"names {twice[0]} twice"
    if not param.least <= len(codes) <= param.greatest:
        return f"must name {param.least} to {param.greatest} currencies, not {len(codes)}"
    return None


def parse_text(name: str, text: str) -> Any:
    """The value ``text`` gives parameter ``name`` (a ``params.set`` value, a ``--param``); ParamError
    with a sentence saying what it must be."""
    param = PARAMS[name]
    if param.kind == BOOL:
        if text not in ("true", "false"):
            raise ParamError(f"{name} is true or false, not {text!r}")
        return text == "true"
    if param.kind == CURRENCIES:
        codes = text.split(",") if text else []
        found = _currencies_problem(param, codes)
        if found is not None:
            raise ParamError(f"{name} is comma-separated currency codes such as 'EUR,USD': {text!r} {found}")
        return codes
    least, greatest = param.bounds()
    number = int(text) if _NUMBER.fullmatch(text) else None
    if number is None or not least <= number <= greatest:
        raise ParamError(f"{name} is a whole number from {least} to {greatest} ({param.unit}), not {text!r}")
    return number


def as_text(name: str, given: Any) -> str:
    """``given`` as ``parse_text`` reads it back."""
    if PARAMS[name].kind == BOOL:
        return "true" if given else "false"
    if PARAMS[name].kind == CURRENCIES:
        return ",".join(given)
    return str(given)


@dataclass(frozen=True)
class AppProblem:
    key: str
    sentence: str  # what is wrong, after the key
    refused_always: bool  # see the module docstring
    unknown: bool = False


def app_problems(app: dict[str, Any]) -> list[AppProblem]:
    """Everything wrong with a genesis ``[app]`` table, in its order: unknown keys, bad values."""
    found = []
    for key, given in app.items():
        if key not in PARAMS:
            # A near miss of a restructuring limit was refused before the registry too.
            refused_before = _similar(key, _TYPOS_REFUSED_BEFORE, _REFUSED_PERCENT)
            meant = refused_before or nearest(key)
            fix = f"did you mean 'app.{meant}'?" if meant else f"the chain parameters are {', '.join(PARAMS)}"
            found.append(AppProblem(key, fix, bool(refused_before), unknown=True))
            continue
        sentence = problem(key, given)
        if sentence is not None:
            found.append(AppProblem(key, sentence, PARAMS[key].refused_always))
    return found


def markdown_table() -> str:
    """The README's table of the parameters (a test keeps the two the same)."""
    rows = [
        "| parameter | values | default | what it does | a `params.set` change applies |",
        "|---|---|---|---|---|",
    ]
    for param in PARAMS.values():
        default = as_text(param.name, param.default)
        applies = param.change if param.changeable else f"never: {param.fixed_because}"
        rows.append(f"| `{param.name}` | {param.shape()} | `{default}` | {param.what} | {applies} |")
    return "\n".join(rows)
