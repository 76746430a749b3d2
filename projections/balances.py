"""Balances per account, unit and vintage; totals per unit and vintage; and each account's history.

`movements(event)` is the one place that says how an event moves units; the
balances fold and the history fold both use it.
"""

from __future__ import annotations

from typing import Any

Key = tuple[str, str, int]
MOVING = ("AllowancesIssued", "AllowancesTransferred", "TradeExecuted", "AllowancesSurrendered",
          "AllowancesCancelled", "AllowancesWithdrawn", "EntryReversed", "AllowancesCarriedOver")
# per unit and vintage: issued + carried_in = held + surrendered + cancelled + withdrawn + carried_out
TOTAL_FIELDS = ("issued", "held", "surrendered", "cancelled", "withdrawn", "carried_in", "carried_out")
PAIRS = {"AllowancesTransferred": ("from_account", "to_account"), "TradeExecuted": ("seller", "buyer")}


def _add(holdings: dict[Key, int], key: Key, delta: int) -> int:
    """Add `delta` to one holding (dropped at zero); returns the balance after it."""
    bal = holdings.get(key, 0) + delta
    if bal:
        holdings[key] = bal
    else:
        holdings.pop(key, None)
    return bal


def _move(holdings: dict[Key, int], src: str, dst: str, unit: str, vintage: int, q: int) -> tuple[int, int]:
    """`q` t from src to dst, as the two movements of `movements` do (a holding at zero is dropped);
    returns the two balances after them. `_add` twice, inlined: this is the bulk of every replay."""
    key = (src, unit, vintage)
    src_bal = holdings.get(key, 0) - q
    if src_bal:
        holdings[key] = src_bal
    else:
        holdings.pop(key, None)
    key = (dst, unit, vintage)
    dst_bal = holdings.get(key, 0) + q
    if dst_bal:
        holdings[key] = dst_bal
    else:
        holdings.pop(key, None)
    return src_bal, dst_bal


def movements(event: dict[str, Any]) -> list[tuple[str, str, int, int, str | None]]:
    """(account, unit, vintage, signed quantity, counterparty) for each holding an event changes."""
    t, d = event["type"], event["data"]
    if t not in MOVING:
        return []
    if t == "EntryReversed":
        return _reversal_movements(d)
    if t == "AllowancesCarriedOver":  # old vintage out, 2025 in, in the firm's compliance account
        return [(d["firm_id"], d["unit"], d["from_vintage"], -d["quantity"], None),
                (d["firm_id"], d["unit"], d["to_vintage"], d["quantity"], None)]
    u, v, q = d["unit"], d["vintage"], d["quantity"]
    if t == "AllowancesIssued":
        return [(d["account_id"], u, v, q, None)]
    if t == "AllowancesTransferred":
        return [(d["from_account"], u, v, -q, d["to_account"]), (d["to_account"], u, v, q, d["from_account"])]
    if t == "TradeExecuted":
        return [(d["seller"], u, v, -q, d["buyer"]), (d["buyer"], u, v, q, d["seller"])]
    if t == "AllowancesSurrendered":
        return [(d.get("from_account") or d["firm_id"], u, v, -q, None)]
    return [(d["account_id"], u, v, -q, None)]


def _reversal_movements(d: dict[str, Any]) -> list[tuple[str, str, int, int, str | None]]:
    """An EntryReversed moves what the original moved, the other way (a verification's moves nothing)."""
    t = d["reversed_type"]
    if t == "AllowancesIssued":
        return [(d["account_id"], d["unit"], d["vintage"], -d["quantity"], None)]
    if t == "AllowancesTransferred":
        u, v, q = d["unit"], d["vintage"], d["quantity"]
        return [(d["from_account"], u, v, -q, d["to_account"]), (d["to_account"], u, v, q, d["from_account"])]
    if t == "AllowancesSurrendered":
        return [(d["account_id"], d["unit"], d["vintage"], d["quantity"], None)]
    return []


class Balances:
    name = "balances"

    def initial(self) -> dict[str, Any]:
        # accounts: every account opened -> [state, freeze reason, frozen until, approvals];
        # pending: four-eyes transfers awaiting approval -> [from, to, unit, vintage, quantity, expires_at]
        return {"holdings": {}, "totals": {}, "accounts": {}, "pending": {}}

    def apply(self, state: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        t = event["type"]
        if t not in MOVING:
            if t in ACCOUNT_EVENTS:
                _account_event(state, t, event["data"])
            return state
        holdings = state["holdings"]
        pair = PAIRS.get(t)
        if pair is not None:  # the bulk of a log: a move between two accounts; totals are unchanged
            d = event["data"]
            u, v, q = d["unit"], d["vintage"], d["quantity"]
            _move(holdings, d[pair[0]], d[pair[1]], u, v, q)
            if (u, v) not in state["totals"]:
                state["totals"][(u, v)] = dict.fromkeys(TOTAL_FIELDS, 0)
            return state
        moves = movements(event)
        for account, unit, vintage, delta, _ in moves:
            _add(holdings, (account, unit, vintage), delta)
        d = event["data"]
        if t == "AllowancesCarriedOver":
            for vintage, field, sign in ((d["from_vintage"], "carried_out", -1), (d["to_vintage"], "carried_in", 1)):
                tot = state["totals"].get((d["unit"], vintage))
                if tot is None:
                    tot = state["totals"][(d["unit"], vintage)] = dict.fromkeys(TOTAL_FIELDS, 0)
                tot[field] += d["quantity"]
                tot["held"] += sign * d["quantity"]
            return state
        if t == "EntryReversed":
            t = {"AllowancesIssued": "Unissued", "AllowancesSurrendered": "Unsurrendered"}.get(d["reversed_type"], "")
            if not t:
                return state
        tk = (d["unit"], d["vintage"])
        tot = state["totals"].get(tk)
        if tot is None:
            tot = state["totals"][tk] = dict.fromkeys(TOTAL_FIELDS, 0)
        q = d["quantity"]
        if t == "AllowancesIssued":
            tot["issued"] += q
            tot["held"] += q
        elif t == "AllowancesSurrendered":
            tot["surrendered"] += q
            tot["held"] -= q
        elif t == "AllowancesCancelled":
            tot["cancelled"] += q
            tot["held"] -= q
        elif t == "AllowancesWithdrawn":
            tot["withdrawn"] += q
            tot["held"] -= q
        elif t == "Unissued":  # a reversed issuance: as if never issued
            tot["issued"] -= q
            tot["held"] -= q
        elif t == "Unsurrendered":  # a reversed surrender: the units are held again
            tot["surrendered"] -= q
            tot["held"] += q
        return state

    def dump(self, state: dict[str, Any]) -> Any:
        return {"holdings": [[*k, v] for k, v in state["holdings"].items()],
                "totals": [[u, v, t] for (u, v), t in state["totals"].items()],
                "accounts": [[a, *s] for a, s in sorted(state["accounts"].items())],
                "pending": [[i, *p] for i, p in state["pending"].items()]}

    def load(self, data: Any) -> dict[str, Any]:
        return {"holdings": {(a, u, v): q for a, u, v, q in data["holdings"]},
                "totals": {(u, v): t for u, v, t in data["totals"]},
                "accounts": {a[0]: a[1:] for a in data["accounts"]}, "pending": {p[0]: p[1:] for p in data["pending"]}}


ACCOUNT_EVENTS = frozenset({"AccountOpened", "AccountFrozen", "AccountUnfrozen", "AccountClosed", "AccountPolicySet",
                            "TransferPending", "TransferApproved", "TransferCancelled"})


def _account_event(state: dict[str, Any], t: str, d: dict[str, Any]) -> None:
    """An account's state (open, frozen, closed), its approvals, and the pending transfers that reserve units."""
    if t == "AccountOpened":
        state["accounts"][d["account_id"]] = ["open", None, None, 1]
    elif t == "AccountFrozen":
        state["accounts"][d["account_id"]][:3] = ["frozen", d["reason"], d.get("until")]
    elif t == "AccountUnfrozen":
        state["accounts"][d["account_id"]][:3] = ["open", None, None]
    elif t == "AccountClosed":
        state["accounts"][d["account_id"]][0] = "closed"
    elif t == "AccountPolicySet":
        state["accounts"][d["account_id"]][3] = d["approvals"]
    elif t == "TransferPending":
        state["pending"][d["transfer_id"]] = [d["from_account"], d["to_account"], d["unit"], d["vintage"],
                                              d["quantity"], d["expires_at"]]
    else:
        state["pending"].pop(d["transfer_id"], None)


def account_rows(state: dict[str, Any], account_id: str | None = None) -> list[dict[str, Any]]:
    """Each account's state: open, frozen (with its reason and end) or closed; approvals; units reserved."""
    reserved: dict[str, int] = {}
    for p in state["pending"].values():
        reserved[p[0]] = reserved.get(p[0], 0) + p[4]
    return [{"account_id": a, "state": s, "reason": r, "until": u, "approvals": n, "reserved": reserved.get(a, 0)}
            for a, (s, r, u, n) in sorted(state["accounts"].items()) if account_id in (None, a)]


def pending_rows(state: dict[str, Any], account_id: str | None = None) -> list[dict[str, Any]]:
    return [{"transfer_id": i, "from_account": f, "to_account": t, "unit": u, "vintage": v, "quantity": q,
             "expires_at": e} for i, (f, t, u, v, q, e) in sorted(state["pending"].items())
            if account_id in (None, f, t)]


class History:
    """Every movement of each account in order, with the running balance: rows are emitted, not held.

    A row is (account, position, seq, quantity, balance): the seq-th movement of `movements(event)`, its
    signed quantity and the account's balance after it. `history_row` shows it with the event's details."""

    name = "history"
    emits_rows = True

    def initial(self) -> dict[str, Any]:
        return {"holdings": {}}

    def apply(self, state: dict[str, Any], event: dict[str, Any], out: list | None = None) -> dict[str, Any]:
        pair = PAIRS.get(event["type"])
        if pair is not None:  # the bulk of a log: the two movements of `movements`, done directly (same rows)
            d = event["data"]
            src, dst, q = d[pair[0]], d[pair[1]], d["quantity"]
            src_bal, dst_bal = _move(state["holdings"], src, dst, d["unit"], d["vintage"], q)
            if out is not None:
                pos = event["position"]
                out.append((src, pos, 0, -q, src_bal))
                out.append((dst, pos, 1, q, dst_bal))
            return state
        moves = movements(event)
        if not moves:
            return state
        holdings = state["holdings"]
        for seq, (account, unit, vintage, delta, _counterparty) in enumerate(moves):
            bal = _add(holdings, (account, unit, vintage), delta)
            if out is not None:
                out.append((account, event["position"], seq, delta, bal))
        return state

    def dump(self, state: dict[str, Any]) -> Any:
        return {"holdings": [[*k, v] for k, v in state["holdings"].items()]}

    def load(self, data: Any) -> dict[str, Any]:
        return {"holdings": {(a, u, v): q for a, u, v, q in data["holdings"]}}


def history_row(event: dict[str, Any], seq: int, balance: int) -> dict[str, Any]:
    """A stored history row as shown: the seq-th movement of `event`, with the balance after it."""
    _account, unit, vintage, delta, counterparty = movements(event)[seq]
    t, d = event["type"], event["data"]
    row = {"position": event["position"], "recorded_at": event["recorded_at"], "type": t, "unit": unit,
           "vintage": vintage, "quantity": delta, "balance": balance, "counterparty": counterparty}
    if t == "TradeExecuted":
        row.update(trade_id=d["trade_id"], price=d["price"], trade_date=d["trade_date"])
    elif t == "EntryReversed":
        row.update(reverses=d["reversed_position"], reversed_type=d["reversed_type"], reason=d["reason"])
    elif "basis" in d:
        row["basis"] = d["basis"]
    elif "reason" in d:
        row["reason"] = d["reason"]
    elif t == "AllowancesSurrendered":
        row["year"] = d["year"]
    return row


def balance_rows(state: dict[str, Any], account_id: str | None = None) -> list[dict[str, Any]]:
    rows = [
        {"account_id": a, "unit": u, "vintage": v, "quantity": q}
        for (a, u, v), q in state["holdings"].items()
        if q and (account_id is None or a == account_id)
    ]
    rows.sort(key=lambda r: (r["account_id"], r["unit"], r["vintage"]))
    return rows


def total_rows(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"unit": u, "vintage": v, **t} for (u, v), t in sorted(state["totals"].items())]
