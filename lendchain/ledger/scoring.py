"""The open credit score: an integer-only scorecard with a per-factor explanation.

The score of a borrower is the sum of a fixed list of factors, each worth a
whole number of points, clamped to ``[min, max]``. Every node computes it the
same way from chain state alone:

- ``base``: a constant from the scorecard;
- ``income_band``, ``dti_bps``, ``history_months``, ``obligations``: the
  latest attested credit report (``credit.report``); each factor looks its
  value up in a table of ``[upper_bound, points]`` rows — the first row whose
  bound is at least the value applies, and values past the last bound take
  the last row. Without a report these factors are worth 0. From rules 7 the
  subject may dispute its report (``disputes``): the caller passes the report
  the score counts (none once a dispute is overdue) and a ``note`` saying so,
  which each factor's source carries (``dispute_records.report_standing``);
- ``on_time``, ``late``, ``defaults``: the chain's own repayment history of the
  borrower (instalments paid on time, paid late, loans defaulted), each a
  count times its points, ``on_time`` and ``late`` capped; a loan written
  off after its default (``writeoff``) counts as the default it was, and so
  does a loan restructured after its default (``restructuring``); money
  recovered on a written-off loan afterwards (rules 5) changes nothing here.
  ``defaults`` counts default episodes: from rules 6 a loan restructured
  after its default that defaults again counts twice (under older rules
  once), and the factor's source says so (``DEFAULTS_SOURCE``);
- ``restructurings``: present only when the borrower has had a loan
  restructured, the number accepted, worth 0 points: shown to a lender, not
  weighed (the instalments in arrears when a loan was restructured already
  count as ``late``, and its default, if any, among ``defaults``);
- ``clamp``: present only when the raw sum falls outside ``[min, max]``, so
  that the explanation always adds up to the score.

The scorecard lives in chain state under ``SCORECARD_KEY``; until one is
stored there, ``DEFAULT_SCORECARD`` applies. There are no floats anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SCORECARD_KEY = b"scorecard"

DEFAULT_SCORECARD: dict[str, Any] = {
    "base": 300,
    "min": 0,
    "max": 1000,
    "tables": {
        "income_band": [[1, 0], [3, 40], [5, 80], [7, 120], [10, 160]],
        "dti_bps": [[2000, 150], [3500, 100], [5000, 40], [1_000_000, 0]],
        "history_months": [[0, 0], [12, 30], [36, 70], [84, 110], [1200, 140]],
        "obligations": [[0, 60], [2, 40], [5, 10], [1000, 0]],
    },
    "on_time_points": 5,
    "on_time_cap": 100,
    "late_points": -25,
    "late_cap": -150,
    "default_points": -200,
}

# How the ``defaults`` factor counts (``identity.default_episodes``), said where the score is explained.
DEFAULTS_SOURCE = (
    "repayment history on this chain: each default counts, so a loan that defaulted again after a "
    "restructuring counts again (from rules 6; under older rules a loan counted once)"
)
REPORT_FACTORS = ("income_band", "dti_bps", "history_months", "obligations")
EMPTY_HISTORY: dict[str, int] = {
    "on_time": 0,
    "late": 0,
    "defaults": 0,
    "closed": 0,
    "written_off": 0,
    "restructurings": 0,
}


@dataclass(frozen=True)
class Factor:
    name: str
    value: int | None  # the input the points came from (None: no data)
    points: int
    source: str

    def to_value(self) -> dict[str, Any]:
        return {"factor": self.name, "value": self.value, "points": self.points, "source": self.source}


@dataclass(frozen=True)
class Score:
    total: int
    factors: tuple[Factor, ...]

    def to_value(self) -> dict[str, Any]:
        return {"score": self.total, "factors": [f.to_value() for f in self.factors]}


def table_points(table: list[list[int]], value: int) -> int:
    """Points of the first ``[upper_bound, points]`` row with ``value <= upper_bound``."""
    for bound, points in table:
        if value <= bound:
            return points
    return table[-1][1]


def credit_score(
    report: dict[str, Any] | None,
    history: dict[str, Any] | None,
    scorecard: dict[str, Any] | None = None,
    note: str = "",
) -> Score:
    """The score and its explanation; ``report`` is a stored credit report or None.

    ``note`` (a dispute's, ``dispute_records.report_standing``) follows the report's source, or
    says why no report counts in place of "no credit report".
    """
    card = scorecard or DEFAULT_SCORECARD
    history = history or EMPTY_HISTORY
    factors = [Factor("base", None, card["base"], "scorecard")]
    for name in REPORT_FACTORS:
        if report is None:
            factors.append(Factor(name, None, 0, note or "no credit report"))
            continue
        value = report[name]
        source = f"credit report by {report['reporter']} at height {report['height']}"
        source += f"; {note}" if note else ""
        factors.append(Factor(name, value, table_points(card["tables"][name], value), source))
    chain = "repayment history on this chain"
    on_time = min(history["on_time"] * card["on_time_points"], card["on_time_cap"])
    late = max(history["late"] * card["late_points"], card["late_cap"])
    factors.append(Factor("on_time", history["on_time"], on_time, chain))
    factors.append(Factor("late", history["late"], late, chain))
    factors.append(
        Factor("defaults", history["defaults"], history["defaults"] * card["default_points"], DEFAULTS_SOURCE)
    )
    if history["restructurings"]:
        factors.append(
            Factor("restructurings", history["restructurings"], 0, f"{chain} (shown, not weighed)")
        )
    raw = sum(f.points for f in factors)
    total = min(max(raw, card["min"]), card["max"])
    if total != raw:
        factors.append(
            Factor("clamp", raw, total - raw, f"score is kept within {card['min']}..{card['max']}")
        )
    return Score(total, tuple(factors))
