"""Compliance per firm and period: verified emissions, surrendered CEA and CCER, obligation, shortfall, status,
fine and deduction (ordered by `year enforce` after the time limit to correct); and coverage per sector. Status codes (docs/domain.md): A surrendered at least the obligation,
B less, C no verified emissions, `-` no obligation; `*` marks a status that changed after the period closed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ledger import formulas, rules
from ledger.formulas import ALLOCATION_BASES, EXEMPTION_BASES
from ledger.units import fmt_money, period_label

IGNORED = frozenset({"AllowancesTransferred", "TradeExecuted", "AllowancesCancelled", "AllowancesCarriedOver"})  # no effect on compliance


class Compliance:
    name = "compliance"

    def initial(self) -> dict[str, Any]:
        return {"firms": {}, "periods": {}, "year_period": {}, "verified": {}, "allocated": {}, "surrendered": {},
                "penalties": {}, "deducted": {}, "at_close": {},
                "facility_verified": {}, "exempted": {}}

    def apply(self, s: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        t, d = event["type"], event["data"]
        if t in IGNORED:
            return s
        if t == "FirmRegistered":
            # The periods already closed when a firm registers are none of its business (status `-`).
            closed = sorted(label for label, p in s["periods"].items() if p[3])
            s["firms"][d["firm_id"]] = [d["sector"], d.get("unit_type"), d["name"], d["region"], closed]
        elif t == "ComplianceYearOpened":
            first, last = d["year"], d.get("last_year") or d["year"]
            label = period_label(first, last)
            s["periods"][label] = [first, last, d.get("surrender_deadline"), False, None, False]
            for y in range(first, last + 1):
                s["year_period"][y] = label
        elif t == "EmissionsVerified":
            key = (d["firm_id"], d["year"])
            fac = d.get("facility_id")
            if fac is None:
                s["verified"][key] = d["tonnes"]
            else:  # a firm's verified emissions are the sum over its facilities
                per = s["facility_verified"].setdefault(key, {})
                per[fac] = d["tonnes"]
                s["verified"][key] = sum(per.values())
        elif t == "AllowancesIssued":
            firm = d.get("firm_id") or d["account_id"]  # to the province's account for the firm
            if d["basis"] in ALLOCATION_BASES and firm in s["firms"]:
                k = (firm, d.get("year") or d["vintage"])
                s["allocated"][k] = s["allocated"].get(k, 0) + d["quantity"]
                if d["basis"] in EXEMPTION_BASES:  # part of the free allocation, published on its own
                    s["exempted"][k] = s["exempted"].get(k, 0) + d["quantity"]
        elif t == "AllowancesWithdrawn":
            firm = d.get("firm_id") or d["account_id"]
            k = (firm, d.get("year") or d["vintage"])
            if d["reason"] == "true-up clawback":
                s["allocated"][k] = s["allocated"].get(k, 0) - d["quantity"]
                if d.get("basis") in EXEMPTION_BASES:
                    s["exempted"][k] = s["exempted"].get(k, 0) - d["quantity"]
            elif d["reason"] == "penalty deduction":
                s["deducted"][k] = s["deducted"].get(k, 0) + d["quantity"]
        elif t == "AllowancesSurrendered":
            k = (d["firm_id"], s["year_period"][d["year"]], d["unit"])
            s["surrendered"][k] = s["surrendered"].get(k, 0) + d["quantity"]
        elif t == "EntryReversed":
            _reversal(s, d)
        elif t == "PenaltyAssessed":
            s["penalties"][(d["firm_id"], s["year_period"][d["year"]])] = [d["fine"], d["deduction"], d["shortfall"]]
        elif t == "DeductionOrdered":
            k = (d["firm_id"], s["year_period"][d["year"]])
            pen = s["penalties"].setdefault(k, [None, 0, d["shortfall"]])
            pen[1] += d["deduction"]
        elif t == "ComplianceYearEnforced":
            s["periods"][s["year_period"][d["year"]]][5] = True
        elif t == "ComplianceYearClosed":
            label = s["year_period"][d["year"]]
            s["periods"][label][3] = True
            s["periods"][label][4] = d.get("correct_by")
            for fid in s["firms"]:
                s["at_close"][(fid, label)] = _row(s, fid, label)["status"]
        return s

    def dump(self, s: dict[str, Any]) -> Any:
        return {
            "firms": s["firms"], "periods": s["periods"],
            "verified": [[*k, v] for k, v in s["verified"].items()],
            "allocated": [[*k, v] for k, v in s["allocated"].items()],
            "surrendered": [[*k, v] for k, v in s["surrendered"].items()],
            "penalties": [[*k, *v] for k, v in s["penalties"].items()],
            "deducted": [[*k, v] for k, v in s["deducted"].items()],
            "at_close": [[*k, v] for k, v in s["at_close"].items()],
            "facility_verified": [[*k, v] for k, v in s["facility_verified"].items()],
            "exempted": [[*k, v] for k, v in s["exempted"].items()],
        }

    def load(self, data: Any) -> dict[str, Any]:
        s = self.initial()
        s["firms"] = data["firms"]
        s["periods"] = data["periods"]
        for label, (first, last, *_rest) in data["periods"].items():
            for y in range(first, last + 1):
                s["year_period"][y] = label
        s["verified"] = {(f, y): v for f, y, v in data["verified"]}
        s["allocated"] = {(f, y): v for f, y, v in data["allocated"]}
        s["surrendered"] = {(f, p, u): v for f, p, u, v in data["surrendered"]}
        s["penalties"] = {(f, p): [fine, ded, sh] for f, p, fine, ded, sh in data["penalties"]}
        s["deducted"] = {(f, y): v for f, y, v in data["deducted"]}
        s["at_close"] = {(f, p): v for f, p, v in data["at_close"]}
        s["facility_verified"] = {(f, y): v for f, y, v in data["facility_verified"]}
        s["exempted"] = {(f, y): v for f, y, v in data["exempted"]}
        return s


def _reversal(s: dict[str, Any], d: dict[str, Any]) -> None:
    """A reversed allocation, surrender or verification counts no more (the original stays in the log)."""
    t = d["reversed_type"]
    firm = d.get("firm_id") or d.get("account_id")
    if t == "AllowancesIssued" and d.get("basis") in ALLOCATION_BASES and firm in s["firms"]:
        k = (firm, d.get("year") or d["vintage"])
        s["allocated"][k] = s["allocated"].get(k, 0) - d["quantity"]
        if d.get("basis") in EXEMPTION_BASES:
            s["exempted"][k] = s["exempted"].get(k, 0) - d["quantity"]
    elif t == "AllowancesSurrendered":
        k = (d["firm_id"], s["year_period"][d["year"]], d["unit"])
        s["surrendered"][k] = s["surrendered"].get(k, 0) - d["quantity"]
    elif t == "EmissionsVerified" and d.get("facility_id") is not None:
        key = (d["firm_id"], d["year"])
        per = s["facility_verified"].setdefault(key, {})
        if d.get("tonnes") is None:
            per.pop(d["facility_id"], None)
        else:
            per[d["facility_id"]] = d["tonnes"]
        if per:
            s["verified"][key] = sum(per.values())
        else:
            s["verified"].pop(key, None)
    elif t == "EmissionsVerified":
        if d.get("tonnes") is None:
            s["verified"].pop((d["firm_id"], d["year"]), None)
        else:
            s["verified"][(d["firm_id"], d["year"])] = d["tonnes"]


def _row(s: dict[str, Any], fid: str, label: str) -> dict[str, Any]:
    first, last, deadline, closed, correct_by, enforced = s["periods"][label]
    sector, _unit_type, name, region, *_closed = s["firms"][fid]
    years = range(first, last + 1)
    vs = [s["verified"][(fid, y)] for y in years if (fid, y) in s["verified"]]
    verified = sum(vs) if vs else None
    free = sum(s["allocated"].get((fid, y), 0) for y in years)
    exempted = sum(s["exempted"].get((fid, y), 0) for y in years)
    cea = s["surrendered"].get((fid, label, "CEA"), 0)
    ccer = s["surrendered"].get((fid, label, "CCER"), 0)
    registered_late = label in (s["firms"][fid][4] if len(s["firms"][fid]) > 4 else ())
    covered = not registered_late and (
        any(rules.is_covered(sector, y) for y in years) or verified is not None or free > 0)
    obligation = formulas.obligation(verified)
    status = formulas.status(covered, obligation, cea + ccer)
    fine, deduction, _ = s["penalties"].get((fid, label), [None, 0, 0])
    return {"firm_id": fid, "year": first, "period": label, "sector": sector, "name": name, "region": region,
            "verified": verified, "free_allocation": free, "exemptions": exempted, "surrendered_cea": cea, "surrendered_ccer": ccer, "obligation": obligation,
            "shortfall": max(obligation - cea - ccer, 0) if obligation is not None else None, "status": status,
            "fine": fine, "deduction": deduction, "closed": closed, "deadline": deadline, "correct_by": correct_by,
            "enforced": enforced}


def rows(s: dict[str, Any], year: int | None = None, firm: str | None = None) -> list[dict[str, Any]]:
    out = []
    labels = sorted(s["periods"], key=lambda lb: s["periods"][lb][0])
    if year is not None:
        label = s["year_period"].get(year)
        labels = [label] if label else []
    for label in labels:
        for fid in sorted(s["firms"]):
            if firm is not None and fid != firm:
                continue
            r = _row(s, fid, label)
            closed_status = s["at_close"].get((fid, label))
            if closed_status is not None and closed_status != r["status"]:
                r["status"] += "*"
            out.append(r)
    return out


def coverage(s: dict[str, Any], year: int, national_total: int | None = None) -> dict[str, Any]:
    sectors: dict[str, dict[str, Any]] = {}
    for fid, (sector, *_rest) in s["firms"].items():
        e = sectors.setdefault(sector, {"sector": sector, "firms": 0, "verified_firms": 0, "verified": 0})
        e["firms"] += 1
        v = s["verified"].get((fid, year))
        if v is not None:
            e["verified_firms"] += 1
            e["verified"] += v
    total = sum(e["verified"] for e in sectors.values())
    for e in sectors.values():  # each sector's share of the verified emissions of the year, percent, 2 places
        e["share"] = fmt_money(Decimal(e["verified"]) * 100 / Decimal(total)) if total else None
    out: dict[str, Any] = {"year": year, "sectors": sorted(sectors.values(), key=lambda e: e["sector"]),
                           "total_firms": sum(e["firms"] for e in sectors.values()),
                           "total_verified_firms": sum(e["verified_firms"] for e in sectors.values()),
                           "total_verified": total}
    if national_total:
        out["national_total"] = national_total
        out["covered_share"] = fmt_money(Decimal(total) * 100 / Decimal(national_total))  # percent, 2 places
    return out
