"""The governance action ``params.set`` (rules version 6): the members change a chain parameter.

- ``gov.propose`` {action ``params.set``, key: a parameter's name, value:
  its new value as text: a number, ``true``/``false``, or comma-separated
  currency codes (``params.parse_text``)}, voted through at 2f+1 like every
  governance change. Refused (``bad_payload``, with a sentence naming why)
  when the key is no parameter (naming the nearest one), when governance
  may not change the parameter (``params.Param.fixed_because``: the rules
  version, the key rotation delay), when the value is not of its type or out
  of its bounds or below the floor governance may set (``Param.change_least``:
  a voting period under an hour could leave no time to vote the next change),
  and when it is the value already in force.
- Checked when proposed and again when the vote executes it, against the
  chain as it is then: another change executed meanwhile may have made it
  moot (the vote is refused with ``invalid_state``, saying so).
- In force from the block after the one that executes it: a block reads its
  parameters once, at its start (``execute``), so every transaction and
  block hook of a block sees the same ones.
- What the change does to what exists already is each parameter's
  ``change`` (``params.PARAMS``): nothing stored under the old value is
  re-judged. Open governance proposals and pending restructurings keep the
  ``expires_ms`` they were made with; loans keep their terms; a loan
  disbursed before a change of ``grace_days``, ``default_days`` or
  ``penalty_bps`` keeps the servicing terms it was disbursed under
  (``params.SERVICING_ERAS``).

Stored: the new value in the ``params`` map (``state.PARAMS_KEY``; only a
chain that uses the action changes these bytes), the parameter's last change
under ``CHANGES_KEY`` as ``{name: {"height", "proposal_id"}}`` (where a value
came from, for ``params_view``), event ``params.changed`` {key, value,
previous, proposal_id, from_height}, and the proposal's record, as every
proposal's.
"""

from __future__ import annotations

from typing import Any

from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.params import (
    PARAMS,
    SERVICING,
    SERVICING_ERAS,
    STORED_DEFAULTS,
    ParamError,
    as_text,
    parse_text,
    unknown,
    value,
)
from lendchain.ledger.state import PARAMS_KEY, StateReader, read_value

ACTION = "params.set"
SINCE_RULES = 6
CHANGES_KEY = b"params/changes"


def _refuse(message: str) -> TxRejected:
    return TxRejected("bad_payload", f"gov.propose {ACTION} {message}")


def stored_params(get: Any) -> dict[str, Any]:
    """The ``params`` map as of now (``get``: ``ctx.get``): this block's earlier changes included."""
    return dict(get(PARAMS_KEY) or STORED_DEFAULTS)


def parse_params_change(ctx: TxContext, name: str, text: str) -> Any:
    """The checked new value of parameter ``name``; refuses a change that could not apply."""
    param = PARAMS.get(name)
    if param is None or param.since > ctx.rules:
        raise _refuse(f"field 'key': {unknown(name, ctx.rules)}")
    if not param.changeable:
        raise _refuse(f"field 'key': governance does not change {name}: {param.fixed_because}")
    try:
        new = parse_text(name, text)
    except ParamError as e:
        raise _refuse(f"field 'value': {e}") from None
    if param.change_least and new < param.change_least:
        raise _refuse(
            f"field 'value': governance sets {name} no lower than {param.change_least} ({param.unit}), not "
            f"{new}: a shorter one could leave the members too little time to vote the next change, "
            "this one's undoing included"
        )
    current = value(stored_params(ctx.get), name)
    if new == current:
        raise _refuse(
            f"field 'value': {name} is {as_text(name, current)} already; the change would do nothing"
        )
    return new


def apply_params_change(ctx: TxContext, proposal: dict[str, Any], proposal_id: bytes) -> None:
    """Put a change voted through in force from the next block; refused if it became moot meanwhile."""
    name = proposal["key"]
    try:
        new = parse_params_change(ctx, name, proposal["value"])
    except TxRejected as e:
        raise TxRejected("invalid_state", f"{e.message} (not so when it was proposed)") from None
    stored = stored_params(ctx.get)
    previous = value(stored, name)
    if name in SERVICING:
        stored[SERVICING_ERAS] = _with_era(ctx, stored)
    stored[name] = new
    ctx.put(PARAMS_KEY, stored)
    ctx.put(
        CHANGES_KEY,
        {**(ctx.get(CHANGES_KEY) or {}), name: {"height": ctx.height, "proposal_id": proposal_id}},
    )
    ctx.emit(
        "params.changed",
        key=name,
        value=new,
        previous=previous,
        proposal_id=proposal_id.hex(),
        from_height=ctx.height + 1,
    )


def _with_era(ctx: TxContext, stored: dict[str, Any]) -> list[list[int]]:
    """The servicing eras with the terms loans disbursed up to this block keep (``params``).

    Taken from the block's own parameters (``ctx.params``, read at its start), which every
    loan disbursed in this block was filed under; a second change in the same block finds
    the era recorded already.
    """
    eras = list(stored.get(SERVICING_ERAS, ()))
    if eras and eras[-1][0] == ctx.timestamp_ms:
        return eras
    return [*eras, [ctx.timestamp_ms, *(value(ctx.params, term) for term in SERVICING)]]


def params_view(reader: StateReader, ref: str) -> dict[str, Any] | None:
    """Every parameter (``*``) or one by name: its value in force, default, where it came from, what it
    does and whether governance may change it; None for a name that is no parameter.

    ``source`` is ``governance`` (with the ``changed_height`` and ``proposal_id`` of its last
    change), ``genesis`` when the stored map holds a value of its own, else ``default``. The
    state cannot tell a genesis that wrote a first-release parameter's default value from one
    that left it out: the node, which holds the genesis, says ``genesis`` for those too.
    A servicing term changed by governance lists the values loans disbursed before keep
    (``earlier_loans``).
    """
    if ref != "*" and ref not in PARAMS:
        return None
    stored = read_value(reader, PARAMS_KEY) or STORED_DEFAULTS
    changes = read_value(reader, CHANGES_KEY) or {}
    rows = []
    for name in PARAMS if ref == "*" else [ref]:
        param = PARAMS[name]
        row: dict[str, Any] = {
            "name": name,
            "value": value(stored, name),
            "default": param.default,
            "source": "default",
            "what": param.what,
            "values": param.shape(),
            "changeable": param.changeable,
            "change": param.change if param.changeable else param.fixed_because,
        }
        if name in changes:
            change = changes[name]
            row |= {"source": "governance", "changed_height": change["height"]}
            row["proposal_id"] = change["proposal_id"].hex()
        elif name in stored and (name not in STORED_DEFAULTS or stored[name] != param.default):
            row["source"] = "genesis"
        if name in SERVICING and SERVICING_ERAS in stored:
            index = SERVICING.index(name) + 1
            row["earlier_loans"] = [
                {"disbursed_until_ms": era[0], "value": era[index]} for era in stored[SERVICING_ERAS]
            ]
        rows.append(row)
    return {"parameters": rows}
