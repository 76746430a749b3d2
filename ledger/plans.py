"""The allocation plans as versioned reference data: one plan per compliance year, with its sources.

A plan is plain JSON-able data (strings for exact decimals), so that the plans the code ships and the plans a
regulator publishes (`rules publish PLAN.json`, recorded as a PlanPublished event) are the same kind of thing:
`plan_for(year, published)` lays the published entries for a year over the shipped plan of that year (or, for
a year the code does not ship, over the latest shipped one before it), and checks the result.

Sources (docs/domain.md names them in full):
- P19: MEE, 2019-2020 national carbon emission trading allowance total setting and allocation implementation
  plan (power sector), notice of 29 December 2020, section 4 and annex 2 (benchmarks, correction factors);
- P21: MEE, 2021 and 2022 plan (power sector), notice of 15 March 2023, section 3 and annex (benchmarks,
  balance values; the load factor for pure-condensing conventional coal units only);
- P23: MEE, 2023 and 2024 power-sector allowance total and allocation plan, annex 1 of the notice of October
  2024: annex 1 (categories), annex 2 (benchmarks and 2023 balance values), annexes 3 and 4 (the coal and gas
  formulas), section 5(1) (pre-allocation), 5(3) (exemptions);
- P25d: MEE draft 2025-2026 allocation plan for comment (benchmarks, the new peak-load curve, pre-allocation
  at most 50%, the new sectors' A = E x (1 + a)); marked draft;
- MEE 2025: the notice of March 2025 on steel, cement and aluminium (2024: allocation = verified emissions).
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from ledger import units
from ledger.errors import BadInput

D = Decimal

P19 = "MEE 2019-2020 power allocation plan (notice of 29 Dec 2020)"
P21 = "MEE 2021-2022 power allocation plan (notice of 15 Mar 2023)"
P23 = "MEE 2023-2024 power allocation plan (annex 1 of the notice of Oct 2024)"
P25D = "MEE 2025-2026 allocation plan, draft for comment"
MEE25 = "MEE notice of Mar 2025 on steel, cement and aluminium"

# Peak-load (load, output) factor formulas, by id; the id is part of the formula version an event records.
# "p19": P19 annex 2, conventional coal: F >= 85% -> 1; 80% <= F < 85% -> 1 + 0.0014 (85 - 100F);
#        75% <= F < 80% -> 1.007 + 0.0016 (80 - 100F); F < 75% -> 1.015^(16 - 20F) (F a fraction).
# "p23": P23 annex 3: F < 65% -> 1.015^(16 - 20F), else 1.
# "p25d": P25d: F < 50% (F in percent) -> 7.254 - 0.633 (1 - e^(-F/29.822)) - 5.643 (1 - e^(-F/6.871)),
#        rounded to 6 places; else 1.
PEAK_LOAD_FORMULAS = ("p19", "p23", "p25d")

_SHARE_FACTOR_P19 = {"coal": "0.22", "gas": "0.6"}  # P19 annex 2: heat-share factor 1 - k x heat share


def _power(version: str, draft: bool, basis: str, electricity: tuple[str, str, str, str], heat: tuple[str, str],
           peak_load: str, peak_load_scope: str, heat_share_factor: dict[str, str] | None,
           pre_allocation: dict[str, Any], sources: dict[str, str]) -> dict[str, Any]:
    return {
        "version": version,
        "draft": draft,
        "output_basis": basis,  # "supplied" (P19, P21) or "generated" (P23, P25d) electricity
        "category_i_min_mw": "400",  # P23 annex 1: category I is conventional coal rated at 400 MW or more
        "electricity_t_per_mwh": dict(zip(("I", "II", "III", "IV"), electricity, strict=True)),
        "heat_t_per_gj": dict(zip(("coal", "gas"), heat, strict=True)),
        "peak_load_formula": peak_load,
        "peak_load_scope": peak_load_scope,  # "coal": conventional coal units; "coal-condensing": without heat
        "heat_share_factor": heat_share_factor,
        "pre_allocation": pre_allocation,
        "gas_unit_exemption": True,
        "gap_cap_share": "0.20",  # a firm's allocation is topped up to (1 - 0.20) of its verified emissions
        "sources": sources,
    }


_PRE_OUTPUT = {"basis": "output", "share": "0.70"}  # P19: 70% x the base year's output x the benchmark
_PRE_VERIFIED_70 = {"basis": "verified", "share": "0.70"}  # P23 5(1): 70% of each unit's previous-year emissions
_PRE_VERIFIED_50 = {"basis": "verified", "share": "0.50"}  # P25d: at most 50%

POWER_PLANS: dict[int, dict[str, Any]] = {
    2019: _power("power-2019-2020", False, "supplied", ("0.877", "0.979", "1.146", "0.392"), ("0.126", "0.059"),
                 "p19", "coal", _SHARE_FACTOR_P19, _PRE_OUTPUT,
                 {"benchmarks": f"{P19}, annex 2 table; ICAP", "formula": f"{P19}, annex 2",
                  "exemptions": f"{P19}, section 6"}),
    2021: _power("power-2021", False, "supplied", ("0.8218", "0.8773", "0.9350", "0.3920"), ("0.1111", "0.0560"),
                 "p19", "coal-condensing", _SHARE_FACTOR_P19, _PRE_OUTPUT,
                 {"benchmarks": f"{P21}, annex table (2021 values; to be confirmed against the text)",
                  "formula": f"{P21}, section 3 (P19's factors; load factor for pure-condensing coal units only)",
                  "exemptions": f"{P21}, section 7"}),
    2022: _power("power-2022", False, "supplied", ("0.8177", "0.8729", "0.9303", "0.3901"), ("0.1105", "0.0557"),
                 "p19", "coal-condensing", _SHARE_FACTOR_P19, _PRE_OUTPUT,
                 {"benchmarks": f"{P21}, annex table (2022 values; to be confirmed against the text)",
                  "formula": f"{P21}, section 3", "exemptions": f"{P21}, section 7"}),
    2023: _power("power-2023-p23", False, "generated", ("0.7950", "0.8090", "0.8285", "0.3305"), ("0.1038", "0.0536"),
                 "p23", "coal", None, _PRE_VERIFIED_70,
                 {"categories": f"{P23}, annex 1", "benchmarks": f"{P23}, annex 2",
                  "formula": f"{P23}, annexes 3 (coal) and 4 (gas)", "pre_allocation": f"{P23}, section 5(1)",
                  "exemptions": f"{P23}, section 5(3)"}),
    2024: _power("power-2024-p23", False, "generated", ("0.7910", "0.8049", "0.8244", "0.3288"), ("0.1033", "0.0533"),
                 "p23", "coal", None, _PRE_VERIFIED_70,
                 {"categories": f"{P23}, annex 1", "benchmarks": f"{P23}, annex 2",
                  "formula": f"{P23}, annexes 3 (coal) and 4 (gas)", "pre_allocation": f"{P23}, section 5(1)",
                  "exemptions": f"{P23}, section 5(3)"}),
    2025: _power("power-2025-p25d-draft", True, "generated", ("0.7902", "0.8017", "0.8162", "0.3288"),
                 ("0.1027", "0.0533"), "p25d", "coal", None, _PRE_VERIFIED_50,
                 {"benchmarks": f"{P25D} (draft)", "formula": f"{P25D}: the new peak-load curve (draft)",
                  "pre_allocation": f"{P25D}: at most 50% (draft)", "exemptions": f"{P25D}: as P23 5(3) (draft)"}),
    2026: _power("power-2026-p25d-draft", True, "generated", ("0.7894", "0.7985", "0.8080", "0.3288"),
                 ("0.1021", "0.0533"), "p25d", "coal", None, _PRE_VERIFIED_50,
                 {"benchmarks": f"{P25D} (draft)", "formula": f"{P25D}: the new peak-load curve (draft)",
                  "pre_allocation": f"{P25D}: at most 50% (draft)", "exemptions": f"{P25D}: as P23 5(3) (draft)"}),
}
POWER_PLANS[2020] = POWER_PLANS[2019]  # one plan for the 2019-2020 cycle

# New sectors, per facility kind. "verified": A = E (2024, the first year). "balance": A = E x (1 + a), with
# X = (BP - I) / BP, a = slope x X inside (-bound_x, bound_x), +cap at or above bound_x, -cap at or below -bound_x.
# The balance values BP are in the final 2025-2026 plan (18 November 2025), which we have not found: null here,
# and allocation refuses until a regulator publishes them.
NEW_SECTOR_PLANS: dict[int, dict[str, Any]] = {
    2024: {"version": "new-sectors-2024", "draft": False, "formula": "verified",
           "sources": {"formula": f"{MEE25}: 2024 allocation equals verified 2024 emissions, no pre-allocation"}},
    2025: {"version": "new-sectors-2025-p25d-draft", "draft": True, "formula": "balance",
           "slope": "0.15", "bound_x": "0.20", "cap": "0.03",
           "balance_values": {"steel": None, "clinker": None, "aluminium": None},
           "pre_allocation": None,
           "sources": {"formula": f"{P25D}: A = E x (1 + a) per facility (draft)",
                       "balance_values": "the final 2025-2026 plan of 18 Nov 2025: not public here (null)"}},
}
NEW_SECTOR_PLANS[2026] = copy.deepcopy(NEW_SECTOR_PLANS[2025]) | {"version": "new-sectors-2026-p25d-draft"}

PLAN_PARTS = {"power": POWER_PLANS, "new_sectors": NEW_SECTOR_PLANS}


def _latest(table: dict[int, dict[str, Any]], year: int) -> dict[str, Any] | None:
    keys = [k for k in table if k <= year]
    return table[max(keys)] if keys else None


def _overlay(base: Any, top: Any) -> Any:
    """`top` laid over `base`: dicts merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(top, dict):
        out = dict(base)
        for k, v in top.items():
            out[k] = _overlay(base.get(k), v)
        return out
    return copy.deepcopy(top)


def plan_for(part: str, year: int, published: dict[tuple[str, int], list[dict[str, Any]]] | None = None,
             ) -> dict[str, Any] | None:
    """The plan in force for `part` ("power" or "new_sectors") in `year`: the shipped one (the latest not after
    the year), with every published plan for that year laid over it in the order published."""
    base = _latest(PLAN_PARTS[part], year)
    plan = copy.deepcopy(base) if base is not None else None
    for entry in (published or {}).get((part, year), ()):
        plan = _overlay(plan or {}, entry)
    return plan


def decimal(plan: dict[str, Any], *path: str) -> Decimal | None:
    v: Any = plan
    for p in path:
        v = v.get(p) if isinstance(v, dict) else None
    return None if v is None else D(str(v))


# ---- a plan file a regulator publishes (`rules publish PLAN.json`): its keys checked one by one --------------
def _dec(v: Any, what: str, upper: str | None = None) -> str:
    out = units.parse_positive_decimal(v, what)
    if upper is not None and units.Decimal(out) > units.Decimal(upper):
        raise BadInput(f"{what} must be at most {upper}, not {v!r}")
    return out


def _keys(d: Any, allowed: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise BadInput(f"{what} must be an object")
    extra = sorted(set(d) - set(allowed))
    if extra:
        raise BadInput(f"{what} has an unknown key {extra[0]!r}; known: {', '.join(allowed)}")
    return d


def _sources(v: Any, what: str) -> dict[str, str]:
    if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(x, str) and x.strip()
                                          for k, x in v.items()):
        raise BadInput(f"{what}.sources must map names to texts")
    return {k: x.strip() for k, x in v.items()}


POWER_PLAN_KEYS = ("draft", "output_basis", "category_i_min_mw", "electricity_t_per_mwh", "heat_t_per_gj",
                   "peak_load_formula", "peak_load_scope", "heat_share_factor", "pre_allocation",
                   "gas_unit_exemption", "gap_cap_share", "sources")
NEW_SECTOR_PLAN_KEYS = ("draft", "formula", "slope", "bound_x", "cap", "balance_values", "pre_allocation",
                        "sources")


def _pre(v: Any, what: str) -> dict[str, str] | None:
    if v is None:
        return None
    d = _keys(v, ("basis", "share"), f"{what}.pre_allocation")
    if d.get("basis") not in ("verified", "output"):
        raise BadInput(f"{what}.pre_allocation.basis must be verified or output")
    return {"basis": d["basis"], "share": _dec(d.get("share"), f"{what}.pre_allocation.share", "1")}


def parse_power_plan(v: Any) -> dict[str, Any]:
    d = _keys(v, POWER_PLAN_KEYS, "power")
    out: dict[str, Any] = {}
    for k, x in d.items():
        if k in ("draft", "gas_unit_exemption"):
            if not isinstance(x, bool):
                raise BadInput(f"power.{k} must be true or false")
            out[k] = x
        elif k == "output_basis":
            out[k] = units.parse_choice(x, ("supplied", "generated"), "power.output_basis")
        elif k == "category_i_min_mw":
            out[k] = _dec(x, "power.category_i_min_mw")
        elif k == "electricity_t_per_mwh":
            out[k] = {c: _dec(b, f"power.electricity_t_per_mwh.{c}", "10")
                      for c, b in _keys(x, ("I", "II", "III", "IV"), "power.electricity_t_per_mwh").items()}
        elif k in ("heat_t_per_gj", "heat_share_factor"):
            if x is None and k == "heat_share_factor":
                out[k] = None
                continue
            out[k] = {c: _dec(b, f"power.{k}.{c}", "10") for c, b in _keys(x, ("coal", "gas"), f"power.{k}").items()}
        elif k == "peak_load_formula":
            out[k] = None if x is None else units.parse_choice(x, PEAK_LOAD_FORMULAS, "power.peak_load_formula")
        elif k == "peak_load_scope":
            out[k] = units.parse_choice(x, ("coal", "coal-condensing"), "power.peak_load_scope")
        elif k == "pre_allocation":
            out[k] = _pre(x, "power")
        elif k == "gap_cap_share":
            out[k] = None if x is None else _dec(x, "power.gap_cap_share", "1")
        else:
            out[k] = _sources(x, "power")
    return out


def parse_new_sector_plan(v: Any) -> dict[str, Any]:
    d = _keys(v, NEW_SECTOR_PLAN_KEYS, "new_sectors")
    out: dict[str, Any] = {}
    for k, x in d.items():
        if k == "draft":
            if not isinstance(x, bool):
                raise BadInput("new_sectors.draft must be true or false")
            out[k] = x
        elif k == "formula":
            out[k] = units.parse_choice(x, ("verified", "balance"), "new_sectors.formula")
        elif k in ("slope", "bound_x", "cap"):
            out[k] = _dec(x, f"new_sectors.{k}", "1")
        elif k == "balance_values":
            out[k] = {c: None if b is None else _dec(b, f"new_sectors.balance_values.{c}", "1000")
                      for c, b in _keys(x, ("steel", "clinker", "aluminium"), "new_sectors.balance_values").items()}
        elif k == "pre_allocation":
            out[k] = _pre(x, "new_sectors")
        else:
            out[k] = _sources(x, "new_sectors")
    return out


def parse_plan_years(value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise BadInput("years must be a non-empty list of years")
    return sorted({units.parse_year(y) for y in value})
