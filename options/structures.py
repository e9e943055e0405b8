"""Option structures as data: one spec per structure, from which everything else derives.

A :class:`StructureSpec` lists its legs. Each :class:`LegSpec` says the right (call or put), the
side (long +1 / short -1, times a ratio), how the strike is chosen and which expiry it uses:

====================  =====================================================================
strike rule           meaning
====================  =====================================================================
``Delta(field)``      the listed strike whose ``|delta|`` is nearest ``StrategyConfig.<field>``
``AtTheMoney()``      the listed strike nearest spot
``Offset(leg, n)``    leg ``leg``'s strike plus ``n`` wing widths (``StrategyConfig.wing_width``)
====================  =====================================================================

Expiry rules: ``"front"`` is the listed expiry nearest ``StrategyConfig.dte_days``; ``"back"``
the one nearest ``StrategyConfig.back_dte_days`` (calendar spreads), strictly after the front.

From the registry :data:`STRUCTURES` derive: the names (:data:`STRUCTURE_NAMES`), the
environment's opening actions, the leg builder (:func:`build_structure_legs`) and the validity
rules (:func:`check_structure`): a set of legs is a valid ``name`` when it has the spec's shape,
that is the same rights, signs and ratios, and the same strike and expiry order relations (equal,
below, above) between legs as the spec implies, with equal wing widths where the spec uses the
same offset. Adding a structure means adding one spec here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "CUSTOM_STRATEGY",
    "STRUCTURES",
    "STRUCTURE_NAMES",
    "AtTheMoney",
    "Delta",
    "LegSpec",
    "Offset",
    "StructureSpec",
    "build_structure_legs",
    "check_structure",
]

CUSTOM_STRATEGY = "custom"
"""Strategy name of a position with no structural rules (e.g. what is left after a partial
settlement)."""

OptionType = Literal["call", "put"]
ExpiryRule = Literal["front", "back"]
_STRIKE_TOL = 1e-9


@dataclass(frozen=True)
class Delta:
    """Strike whose |delta| is nearest the ``StrategyConfig`` field ``target_field``."""

    target_field: str


@dataclass(frozen=True)
class AtTheMoney:
    """The listed strike nearest spot."""


@dataclass(frozen=True)
class Offset:
    """Leg ``leg``'s strike plus ``wings`` wing widths (negative: below)."""

    leg: int
    wings: int


StrikeRule = Delta | AtTheMoney | Offset


@dataclass(frozen=True)
class LegSpec:
    """One leg of a structure: right, signed ratio (+ long, - short), strike and expiry rules."""

    option_type: OptionType
    ratio: int
    strike: StrikeRule
    expiry: ExpiryRule = "front"

    def __post_init__(self) -> None:
        if self.option_type not in ("call", "put"):
            raise ValueError(f"LegSpec.option_type must be 'call' or 'put', got {self.option_type!r}")
        if self.ratio == 0:
            raise ValueError("LegSpec.ratio must be nonzero (+ long, - short)")
        if self.expiry not in ("front", "back"):
            raise ValueError(f"LegSpec.expiry must be 'front' or 'back', got {self.expiry!r}")


@dataclass(frozen=True)
class StructureSpec:
    """A named structure: its legs and a one-line description."""

    name: str
    legs: tuple[LegSpec, ...]
    description: str
    expiries: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        for i, leg in enumerate(self.legs):
            if isinstance(leg.strike, Offset) and not 0 <= leg.strike.leg < i:
                raise ValueError(f"{self.name}: leg {i} offsets from leg {leg.strike.leg}, "
                                 "which must be an earlier leg")
        object.__setattr__(self, "expiries", tuple(sorted({leg.expiry for leg in self.legs},
                                                          key=("front", "back").index)))

    @property
    def is_calendar(self) -> bool:
        return "back" in self.expiries


def _spec(name: str, description: str, *legs: LegSpec) -> StructureSpec:
    return StructureSpec(name, tuple(legs), description)


_CREDIT = Delta("credit_short_delta_abs")
_DEBIT = Delta("debit_long_delta_abs")
_CONDOR = Delta("condor_short_delta_abs")
_STRANGLE = Delta("strangle_delta_abs")
_ATM = AtTheMoney()

STRUCTURES: dict[str, StructureSpec] = {s.name: s for s in (
    _spec("bull_put_spread", "short put by delta, long put one wing lower (credit)",
          LegSpec("put", -1, _CREDIT), LegSpec("put", +1, Offset(0, -1))),
    _spec("bear_call_spread", "short call by delta, long call one wing higher (credit)",
          LegSpec("call", -1, _CREDIT), LegSpec("call", +1, Offset(0, +1))),
    _spec("bull_call_spread", "long call by delta, short call one wing higher (debit)",
          LegSpec("call", +1, _DEBIT), LegSpec("call", -1, Offset(0, +1))),
    _spec("bear_put_spread", "long put by delta, short put one wing lower (debit)",
          LegSpec("put", +1, _DEBIT), LegSpec("put", -1, Offset(0, -1))),
    _spec("iron_condor", "short put and call by delta, long wings one width out (credit)",
          LegSpec("put", -1, _CONDOR), LegSpec("call", -1, _CONDOR),
          LegSpec("put", +1, Offset(0, -1)), LegSpec("call", +1, Offset(1, +1))),
    _spec("iron_butterfly", "short put and call at the money, long wings one width out (credit)",
          LegSpec("put", -1, _ATM), LegSpec("call", -1, Offset(0, 0)),
          LegSpec("put", +1, Offset(0, -1)), LegSpec("call", +1, Offset(0, +1))),
    _spec("long_straddle", "long put and call at the money (debit)",
          LegSpec("put", +1, _ATM), LegSpec("call", +1, Offset(0, 0))),
    _spec("short_straddle", "short put and call at the money (credit, undefined risk)",
          LegSpec("put", -1, _ATM), LegSpec("call", -1, Offset(0, 0))),
    _spec("long_strangle", "long put and call by delta (debit)",
          LegSpec("put", +1, _STRANGLE), LegSpec("call", +1, _STRANGLE)),
    _spec("short_strangle", "short put and call by delta (credit, undefined risk)",
          LegSpec("put", -1, _STRANGLE), LegSpec("call", -1, _STRANGLE)),
    _spec("call_butterfly", "long calls one wing either side of two short at-the-money calls",
          LegSpec("call", -2, _ATM), LegSpec("call", +1, Offset(0, -1)),
          LegSpec("call", +1, Offset(0, +1))),
    _spec("put_butterfly", "long puts one wing either side of two short at-the-money puts",
          LegSpec("put", -2, _ATM), LegSpec("put", +1, Offset(0, -1)),
          LegSpec("put", +1, Offset(0, +1))),
    _spec("calendar_spread", "short front-month call, long back-month call, both at the money",
          LegSpec("call", -1, _ATM, "front"), LegSpec("call", +1, Offset(0, 0), "back")),
)}
STRUCTURE_NAMES: tuple[str, ...] = tuple(STRUCTURES)


# --------------------------------------------------------------------------- building
StrikeSelector = Callable[[OptionType, float], float]
"""``(option_type, target_delta_abs) -> listed strike`` at one bar and expiry."""


@dataclass(frozen=True)
class LegChoice:
    """A leg as chosen at one bar: right, strike, expiry and signed contracts."""

    option_type: OptionType
    strike: float
    expiry: object
    quantity_contracts: int


def build_structure_legs(spec: StructureSpec, *, expiries: dict[str, object],
                         atm_strike: float, wing_width: float,
                         by_delta: dict[str, StrikeSelector], targets: object,
                         listed: Callable[[str, OptionType, float], bool] | None = None,
                         contracts: int = 1) -> tuple[LegChoice, ...] | None:
    """The legs of ``spec`` at one bar, or None when they cannot form a valid structure.

    Args:
        expiries: expiry per rule (``"front"``, and ``"back"`` for calendars).
        atm_strike: the listed strike nearest spot.
        wing_width: distance of one wing, in strike units.
        by_delta: strike selector per expiry rule.
        targets: an object with the delta-target fields (``StrategyConfig``).
        listed: ``(expiry_rule, option_type, strike) -> bool``: whether the strike is listed;
            None accepts every positive strike (a model's regular grid).
        contracts: multiplier of every leg's ratio.
    """
    strikes: list[float] = []
    for leg in spec.legs:
        rule = leg.strike
        if isinstance(rule, Delta):
            strike = by_delta[leg.expiry](leg.option_type, float(getattr(targets, rule.target_field)))
        elif isinstance(rule, AtTheMoney):
            strike = atm_strike
        else:
            strike = round(strikes[rule.leg] + rule.wings * wing_width, 10)
        if not (strike > 0 and math.isfinite(strike)):
            return None
        if listed is not None and not listed(leg.expiry, leg.option_type, strike):
            return None
        strikes.append(float(strike))
    legs = tuple(LegChoice(leg.option_type, k, expiries[leg.expiry], leg.ratio * contracts)
                 for leg, k in zip(spec.legs, strikes, strict=True))
    try:
        check_structure(spec.name, legs)
    except ValueError:
        return None
    return legs


# --------------------------------------------------------------------------- rules
def _canonical_strikes(spec: StructureSpec) -> list[float]:
    """Strikes of a representative build (spot 100, wing 5, delta strikes placed by right and
    target so that puts sit below the money and calls above): the order relations between legs
    that every valid build keeps (made once per spec; callers do not change the list)."""
    cached = _CANONICAL.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    strikes = _make_canonical_strikes(spec)
    _CANONICAL[id(spec)] = (spec, strikes)
    return strikes


_CANONICAL: dict[int, tuple[StructureSpec, list[float]]] = {}  # id(spec) -> (spec, strikes)


def _make_canonical_strikes(spec: StructureSpec) -> list[float]:
    strikes: list[float] = []
    for leg in spec.legs:
        rule = leg.strike
        if isinstance(rule, Delta):
            # A smaller |delta| target sits further out of the money; 0.5 is at the money.
            away = 40.0 * (0.5 - _TARGET_HINT.get(rule.target_field, 0.3))
            strikes.append(100.0 - away if leg.option_type == "put" else 100.0 + away)
        elif isinstance(rule, AtTheMoney):
            strikes.append(100.0)
        else:
            strikes.append(strikes[rule.leg] + 5.0 * rule.wings)
    return strikes


# Representative targets for the canonical build only (orders, not values, matter there).
_TARGET_HINT = {"credit_short_delta_abs": 0.30, "debit_long_delta_abs": 0.50,
                "condor_short_delta_abs": 0.16, "strangle_delta_abs": 0.20}


def _sign(x: float) -> int:
    return 0 if abs(x) <= _STRIKE_TOL * max(1.0, abs(x)) else (1 if x > 0 else -1)


def _order(first, second) -> int:
    """-1, 0 or 1 as ``second`` lies before, at or after ``first``; 0 without comparing when
    they are one object (legs of one expiry rule share it; a Timestamp comparison is slow, and
    an object is neither above nor below itself, so the answer is the same)."""
    if second is first:
        return 0
    return (second > first) - (second < first)


def check_structure(strategy: str, legs: Sequence) -> None:
    """Raise ValueError unless ``legs`` (objects with ``option_type, strike, expiry,
    quantity_contracts``) form a valid ``strategy``.

    Valid means the spec's shape: as many legs; legs matched in the spec's order by right; each
    leg's contracts equal to its ratio times one common positive multiple; strikes and expiries
    ordered between every pair of legs as in the spec (equal, below or above); equal wing widths
    where the spec offsets by the same number of wings. ``"custom"`` has no rules.
    """
    if strategy == CUSTOM_STRATEGY:
        return
    spec = STRUCTURES.get(strategy)
    if spec is None:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of "
                         f"{(*STRUCTURE_NAMES, CUSTOM_STRATEGY)}")
    legs = list(legs)
    if len(legs) != len(spec.legs):
        raise ValueError(f"{strategy}: needs {len(spec.legs)} legs, got {len(legs)}")
    order = _match(spec, legs, strategy)
    matched = [legs[j] for j in order]
    multiple = abs(matched[0].quantity_contracts) / abs(spec.legs[0].ratio)
    for leg_spec, leg in zip(spec.legs, matched, strict=True):
        if leg.quantity_contracts != leg_spec.ratio * multiple:
            raise ValueError(
                f"{strategy}: the {leg.option_type} {leg.strike:g} must have "
                f"{'+' if leg_spec.ratio > 0 else '-'}{abs(leg_spec.ratio)} x {multiple:g} "
                f"contracts ({'long' if leg_spec.ratio > 0 else 'short'}), got "
                f"{leg.quantity_contracts}")
    for a, b, want, want_e in _rules(spec).pairs:  # matched legs a < b, in the spec's order
        got = _sign(matched[b].strike - matched[a].strike)
        if want != got:
            rel = {-1: "below", 0: "equal to", 1: "above"}[want]
            raise ValueError(
                f"{strategy}: strike order requires the {matched[b].option_type} "
                f"{matched[b].strike:g} to be {rel} the {matched[a].option_type} "
                f"{matched[a].strike:g}")
        got_e = _order(matched[a].expiry, matched[b].expiry)
        if want_e != got_e:
            what = "one expiry" if want_e == 0 else "a later expiry for the back leg"
            raise ValueError(f"{strategy}: legs need {what}, got "
                             f"{matched[a].expiry} and {matched[b].expiry}")
    widths: dict[int, float] = {}
    for leg_spec, leg in zip(spec.legs, matched, strict=True):
        rule = leg_spec.strike
        if isinstance(rule, Offset) and rule.wings != 0:
            width = abs(leg.strike - matched[rule.leg].strike) / abs(rule.wings)
            first = widths.setdefault(abs(rule.wings), width)
            if abs(first - width) > _STRIKE_TOL * max(1.0, width):
                raise ValueError(f"{strategy}: wings must be equal, got widths {first:g} and "
                                 f"{width:g}")


def _match(spec: StructureSpec, legs: list, strategy: str) -> list[int]:
    """Indices of ``legs`` matched to the spec's legs: by right, side and expiry rule, then by
    strike in the spec's canonical order."""
    order = [0] * len(spec.legs)
    for option_type, is_long, spec_sorted in _rules(spec).groups:
        cand = [j for j, leg in enumerate(legs)
                if leg.option_type == option_type and (leg.quantity_contracts > 0) == is_long]
        if len(cand) != len(spec_sorted):
            n_calls = sum(leg.option_type == "call" for leg in spec.legs)
            raise ValueError(
                f"{strategy}: needs {len(spec_sorted)} {'long' if is_long else 'short'} "
                f"{option_type}(s) ({n_calls} call(s) and {len(spec.legs) - n_calls} put(s) in "
                f"all), got {len(cand)}")
        cand_sorted = sorted(cand, key=lambda j: (legs[j].expiry, legs[j].strike))
        for i, j in zip(spec_sorted, cand_sorted, strict=True):
            order[i] = j
    return order


@dataclass(frozen=True)
class _SpecRules:
    """What :func:`check_structure` compares a spec's legs with, derived once per spec."""

    # per (right, long) group, in the spec's first-seen order: spec leg indices sorted by
    # (back expiry, canonical strike)
    groups: tuple[tuple[str, bool, tuple[int, ...]], ...]
    # per pair of spec legs a < b: the wanted strike sign and expiry sign of b against a
    pairs: tuple[tuple[int, int, int, int], ...]


_RULES: dict[int, tuple[StructureSpec, _SpecRules]] = {}  # id(spec) -> (spec, rules)


def _rules(spec: StructureSpec) -> _SpecRules:
    cached = _RULES.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    canon = _canonical_strikes(spec)
    grouped: dict[tuple, list[int]] = {}
    for i, leg_spec in enumerate(spec.legs):
        grouped.setdefault((leg_spec.option_type, leg_spec.ratio > 0), []).append(i)
    groups = tuple((option_type, is_long, tuple(sorted(
        idx, key=lambda i: (spec.legs[i].expiry == "back", canon[i]))))
        for (option_type, is_long), idx in grouped.items())
    expiry_rank = {"front": 0, "back": 1}
    pairs = tuple((a, b, _sign(canon[b] - canon[a]),
                   _sign(expiry_rank[spec.legs[b].expiry] - expiry_rank[spec.legs[a].expiry]))
                  for a in range(len(spec.legs)) for b in range(a + 1, len(spec.legs)))
    rules = _SpecRules(groups, pairs)
    _RULES[id(spec)] = (spec, rules)
    return rules
