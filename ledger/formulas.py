"""The allocation and compliance rules, computed once: per-facility allocation by the plan of the year,
pre-allocation, the exemptions issued as allowances, a firm-year's obligation and status.

The write side (ledger.decisions), the compliance read model (projections.compliance) and the simulator all
call these functions, so that a number means the same everywhere. Each function takes a plan (ledger.plans) and
plain data, and returns whole tonnes with the inputs that produced them, as recorded in the events.
"""

from __future__ import annotations

import functools
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from ledger.errors import Refused

D = Decimal
EXEMPTION_BASES = ("gas-unit exemption", "gap-cap exemption")  # P23 5(3): issued, each its own event
ALLOCATION_BASES = ("pre-allocation", "true-up", *EXEMPTION_BASES)  # what counts as a firm's free allocation
FACTOR_PLACES = Decimal("0.000001")  # factors are rounded to 6 places (P25d's rule; P23 states none)
MWH_TO_GJ = D("3.6")


def floor_t(x: Decimal) -> int:
    return int(x.to_integral_value(rounding=ROUND_FLOOR))


def _round6(x: Decimal) -> Decimal:
    return x.quantize(FACTOR_PLACES, rounding=ROUND_HALF_UP)


def _n(x: Decimal) -> str:
    return format(x.normalize(), "f")


def _s(x: Decimal) -> str:
    return format(x.normalize(), "f") if x == x.to_integral_value() else format(x, "f")


# ---- obligation and status --------------------------------------------------------------------
def obligation(verified: int | None) -> int | None:
    """What a firm owes for a period: all of its verified emissions (IR art. 30; P23 section 6). The
    exemptions change what is issued, never what is owed."""
    return verified


def status(covered: bool, obligation_t: int | None, surrendered: int) -> str:
    """A surrendered at least the obligation, B less, C no verified emissions, `-` no obligation."""
    if not covered:
        return "-"
    if obligation_t is None:
        return "C"
    return "A" if surrendered >= obligation_t else "B"


# ---- power units ------------------------------------------------------------------------------
def category(plan: dict[str, Any], kind: str, rated_mw: str | None) -> str:
    """P23 annex 1: I conventional coal rated at the plan's threshold (400 MW) or more, II below it,
    III unconventional coal (gangue, slime, coal-water slurry, CFB), IV gas."""
    if kind == "coal":
        return "I" if D(rated_mw or "0") >= D(plan["category_i_min_mw"]) else "II"
    return {"coal-unconventional": "III", "gas": "IV"}[kind]


@functools.lru_cache(maxsize=65536)
def peak_load_factor(formula: str, load_factor: Decimal) -> Decimal:
    """The plan's load (output) factor correction for a conventional coal unit at load factor F (a fraction).
    Pure, so cached: a replay or a simulation asks for the same few thousand factors again and again."""
    f = load_factor
    if formula == "p23":
        return _round6(D("1.015") ** (16 - 20 * f)) if f < D("0.65") else D(1)
    if formula == "p19":
        if f >= D("0.85"):
            return D(1)
        if f >= D("0.80"):
            return _round6(1 + D("0.0014") * (85 - 100 * f))
        if f >= D("0.75"):
            return _round6(D("1.007") + D("0.0016") * (80 - 100 * f))
        return _round6(D("1.015") ** (16 - 20 * f))
    if formula == "p25d":
        pct = 100 * f
        if pct >= 50:
            return D(1)
        return _round6(D("7.254") - D("0.633") * (1 - (-pct / D("29.822")).exp())
                       - D("5.643") * (1 - (-pct / D("6.871")).exp()))
    raise Refused(f"the plan's peak-load formula {formula!r} is unknown to this registry", code="plan_formula")


def power_unit(plan: dict[str, Any], year: int, fac: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """One generating unit's allocation for a year by the plan: A = Qe x Be x factors + Qh x Bh, floored.

    `fac` is the facility (facility_id, kind, rated_mw); `data` its verified data for the year. Returns the
    inputs and `allocation`, as the allocation event records them."""
    fid, kind = fac["facility_id"], fac["kind"]
    cat = category(plan, kind, fac.get("rated_mw"))
    basis = plan["output_basis"]
    qe = data.get(f"{basis}_mwh")
    if qe is None:
        raise Refused(f"unit {fid} has no verified electricity {basis} for {year} (--{basis}-mwh); the"
                      f" {plan['version']} plan allocates on electricity {basis}", code="no_activity_data")
    qh = data.get("heat_gj") or 0
    be = D(plan["electricity_t_per_mwh"][cat])
    bh = D(plan["heat_t_per_gj"]["gas" if kind == "gas" else "coal"])
    factors: dict[str, str] = {}
    factor = D(1)
    scope = plan.get("peak_load_scope", "coal")
    if kind == "coal" and plan.get("peak_load_formula") and (scope == "coal" or qh == 0):
        lf = data.get("load_factor")
        if lf is None:
            raise Refused(f"coal unit {fid} has no verified load factor for {year} (--load-factor); the"
                          f" {plan['version']} plan corrects by it", code="no_activity_data")
        ff = peak_load_factor(plan["peak_load_formula"], D(lf))
        factors["peak_load"] = _n(ff)
        factor *= ff
    share_k = (plan.get("heat_share_factor") or {}).get("gas" if kind == "gas" else "coal")
    if share_k is not None and qh:
        # heat share: heat supplied over the unit's useful output (heat plus electricity, 3.6 GJ per MWh)
        heat_share = D(qh) / (D(qh) + MWH_TO_GJ * D(qe)) if qe or qh else D(0)
        fr = _round6(1 - D(share_k) * heat_share)
        factors["heat_share"] = _n(fr)
        factor *= fr
    exact = D(qe) * be * factor + D(qh) * bh
    out: dict[str, Any] = {
        "facility_id": fid, "kind": kind, "category": cat, f"{basis}_mwh": qe, "heat_gj": qh,
        "benchmark_electricity": _s(be), "benchmark_heat": _s(bh),
        "formula": formula_version(plan, kind),
        "allocation": floor_t(exact),
    }
    if data.get("load_factor") is not None:
        out["load_factor"] = data["load_factor"]
    if factors:
        out["factors"] = factors
    return out


def formula_version(plan: dict[str, Any], kind: str) -> str:
    draft = " (draft)" if plan.get("draft") else ""
    factors = []
    if kind == "coal" and plan.get("peak_load_formula"):
        factors.append(f"Ff[{plan['peak_load_formula']}]")
    if plan.get("heat_share_factor"):
        factors.append("Fr")
    fx = "".join(f" x {f}" for f in factors)
    return f"{plan['version']}: A = Qe[{plan['output_basis']}] x Be{fx} + Qh x Bh, floored per unit{draft}"


# ---- new sectors ------------------------------------------------------------------------------
def new_sector_facility(plan: dict[str, Any], year: int, fac: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """A steel, clinker or aluminium facility: A = E (first year), or A = E x (1 + a) by the balance value."""
    fid, kind, e = fac["facility_id"], fac["kind"], data["tonnes"]
    draft = " (draft)" if plan.get("draft") else ""
    if plan["formula"] == "verified":
        return {"facility_id": fid, "kind": kind, "verified_emissions": e, "allocation": e,
                "formula": f"{plan['version']}: A = E{draft}"}
    bp_raw = (plan.get("balance_values") or {}).get(kind)
    if bp_raw is None:
        raise Refused(f"the {year} balance value for {kind} is not public (the final 2025-2026 plan); a regulator"
                      f" must publish it (rules publish PLAN.json) before {fid} can be allocated",
                      code="plan_figure_missing")
    if data.get("intensity") is None:
        raise Refused(f"facility {fid} has no verified intensity for {year} (--intensity)", code="no_activity_data")
    bp, i = D(str(bp_raw)), D(data["intensity"])
    x = _round6((bp - i) / bp)
    bound, cap, slope = D(plan["bound_x"]), D(plan["cap"]), D(plan["slope"])
    a = cap if x >= bound else -cap if x <= -bound else _round6(slope * x)
    return {"facility_id": fid, "kind": kind, "verified_emissions": e, "intensity": data["intensity"],
            "balance_value": _s(bp), "x": _s(x), "a": _s(a), "allocation": floor_t(D(e) * (1 + a)),
            "formula": f"{plan['version']}: A = E x (1 + a), X = (BP - I) / BP{draft}"}


# ---- pre-allocation ---------------------------------------------------------------------------
def pre_allocation_unit(plan: dict[str, Any], year: int, fac: dict[str, Any], base: dict[str, Any] | None
                        ) -> dict[str, Any]:
    """One unit's pre-allocation from its previous-year data: a share of its verified emissions (P23 5(1),
    P25d), or of its output x this year's benchmark (P19)."""
    fid = fac["facility_id"]
    pre = plan.get("pre_allocation")
    if not pre:
        raise Refused(f"the {year} plan ({plan['version']}) has no pre-allocation", code="no_pre_allocation")
    if base is None:
        raise Refused(f"unit {fid} has no verified data for base year {year - 1}", code="no_base_year")
    share = D(pre["share"])
    if pre["basis"] == "verified":
        return {"facility_id": fid, "base_year": year - 1, "verified_emissions": base["tonnes"],
                "share": _s(share), "allocation": floor_t(share * base["tonnes"]),
                "formula": f"{plan['version']}: {_s(share)} x previous-year verified emissions, floored per unit"}
    unit = power_unit(plan, year, fac, base)
    return {"facility_id": fid, "base_year": year - 1, "share": _s(share), "final_basis": unit,
            "allocation": floor_t(share * unit["allocation"]),
            "formula": f"{plan['version']}: {_s(share)} x base-year output x benchmark, floored per unit"}


# ---- exemptions -------------------------------------------------------------------------------
def gas_exemption(units: list[dict[str, Any]], verified: dict[str, int]) -> list[dict[str, Any]]:
    """P23 5(3): a gas unit whose allocation is below its verified emissions is topped up to them."""
    out = []
    for u in units:
        e = verified.get(u["facility_id"])
        if u["kind"] == "gas" and e is not None and u["allocation"] < e:
            out.append({"facility_id": u["facility_id"], "verified_emissions": e, "allocation": u["allocation"],
                        "top_up": e - u["allocation"]})
    return out


def gap_cap_target(plan: dict[str, Any], verified: int) -> int:
    """P23 5(3): a firm is topped up to (1 - gap cap) of its verified emissions (80%), floored."""
    return floor_t((1 - D(plan["gap_cap_share"])) * verified)
