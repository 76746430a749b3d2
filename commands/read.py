"""The reads: balances, history, market, compliance, coverage and the rules in force, as tables for people,
JSON for scripts or CSV for spreadsheets. Reads never create a store."""

from __future__ import annotations

import functools
from typing import Any

import click

from commands.context import Ctx, pass_ctx
from ledger.errors import BadInput

AS_OF_DATE_HELP = ("Answer as the ledger stood at the end of this day (UTC), by the time each event was recorded,"
                   " not by its business date: a trade recorded today with --date 2024-06-03 is not in"
                   " --as-of-date 2024-06-03. Ask by business date with market --by day --from/--to"
                   " (trade dates) or compliance --year.")


def read_options(f):
    """--json, --csv, --as-of and --as-of-date, which a read takes one of each pair of."""

    @functools.wraps(f)
    def checked(*args: Any, **kw: Any) -> Any:
        if kw.get("as_json") and kw.get("as_csv"):
            raise click.UsageError("--json and --csv conflict: choose one")
        if kw.get("as_of") is not None and kw.get("as_of_date") is not None:
            raise click.UsageError("--as-of and --as-of-date conflict: choose one")
        return f(*args, **kw)

    g = click.option("--as-of-date", help=AS_OF_DATE_HELP)(checked)
    g = click.option("--as-of", "as_of", type=click.IntRange(0), help="Answer as the ledger stood at this position.")(g)
    g = click.option("--csv", "as_csv", is_flag=True, help="CSV for spreadsheets.")(g)
    return click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")(g)


def _states(c: Ctx, names: list[str], as_of: int | None, as_of_date: str | None) -> tuple[dict[str, Any], int]:
    from projections import runner

    rec = c.existing_recorder()
    if as_of_date is not None:
        from ledger.units import parse_date

        as_of = runner.position_at_date(rec, parse_date(as_of_date, "--as-of-date").isoformat())
    if as_of is not None:
        head = rec.head()[0]
        if as_of > head:
            raise BadInput(f"--as-of {as_of} is beyond the head position {head}")
        return runner.as_of(rec, as_of, names), as_of
    states, pos = c.catch_up()
    return {n: states[n] for n in names}, pos


def _remote(c: Ctx, path: str, as_of: int | None, as_of_date: str | None, **params: Any) -> dict[str, Any] | None:
    """The server's answer to a read (commands/remote.py), or None for a local store."""
    if c.remote is None:
        return None
    if as_of_date is not None:
        from ledger.units import parse_date

        as_of_date = parse_date(as_of_date, "--as-of-date").isoformat()
    return c.remote.get(path, {**params, "as_of": as_of, "as_of_date": as_of_date})


def _answer(c: Ctx, path: str, model: str, compute: Any, as_of: int | None, as_of_date: str | None,
            **params: Any) -> tuple[dict[str, Any], int]:
    """A read's report and position: the server's (at `path`), or `compute` over the local read model."""
    remote = _remote(c, path, as_of, as_of_date, **params)
    if remote is not None:
        return remote, remote.pop("position")
    states, pos = _states(c, [model], as_of, as_of_date)
    return compute(states[model]), pos


def _check_account(balances_state: dict[str, Any], account_id: str, pos: int) -> None:
    if account_id not in balances_state["accounts"]:
        raise BadInput(f"account {account_id} does not exist (at position {pos})")


def _print(payload: dict[str, Any], rows: list[dict[str, Any]], title: str, as_json: bool, as_csv: bool,
           columns: list[str] | None = None) -> None:
    from commands import output

    if as_json:
        output.emit_json(payload)
    elif as_csv:
        output.emit_csv(rows)
    else:
        output.emit_table(title, rows, columns)


@click.command()
@click.argument("account_id", required=False)
@click.option("--totals", is_flag=True, help="Totals per unit and vintage: issued, held, surrendered, cancelled, withdrawn.")
@read_options
@pass_ctx
def balances(c: Ctx, **kw: Any) -> None:
    """Holdings per account, unit and vintage."""
    show_balances(c, **kw)


def show_balances(c: Ctx, account_id: str | None = None, totals: bool = False, *, as_json: bool = False,
                  as_csv: bool = False, as_of: int | None = None, as_of_date: str | None = None) -> None:
    remote = _remote(c, "/v1/balances", as_of, as_of_date, account=account_id)
    if remote is not None:  # a firm's actor sees its own accounts only
        pos, rows, tot = remote["position"], remote["balances"], remote["totals"]
        accounts, pending = remote["accounts"], remote["pending"]
    else:
        from projections.balances import account_rows, balance_rows, pending_rows, total_rows

        states, pos = _states(c, ["balances"], as_of, as_of_date)
        st = states["balances"]
        if account_id is not None:
            _check_account(st, account_id, pos)
        rows = balance_rows(st, account_id)
        tot = total_rows(st)
        accounts, pending = account_rows(st, account_id), pending_rows(st, account_id)
    _print({"position": pos, "balances": rows, "totals": tot, "accounts": accounts, "pending": pending},
           tot if totals else rows, f"Totals at position {pos}" if totals else f"Balances at position {pos}",
           as_json, as_csv)
    if not (as_json or as_csv or totals):  # for people: the accounts not simply open, and the pending transfers
        from commands import output

        unusual = [a for a in accounts if a["state"] != "open" or a["approvals"] > 1 or a["reserved"]]
        if unusual:
            output.emit_table("Account states", unusual)
        if pending:
            output.emit_table("Pending transfers", pending)


@click.command()
@click.argument("account_id")
@read_options
@pass_ctx
def history(c: Ctx, **kw: Any) -> None:
    """Every movement of one account, in order, with its running balance."""
    show_history(c, **kw)


def show_history(c: Ctx, account_id: str, *, as_json: bool = False,
                 as_csv: bool = False, as_of: int | None = None, as_of_date: str | None = None) -> None:
    from commands.remote import quoted

    remote = _remote(c, f"/v1/history/{quoted(account_id)}", as_of, as_of_date)
    if remote is not None:
        pos, account, rows = remote["position"], remote["account"], remote["rows"]
    else:
        pos, account, rows = _local_history(c, account_id, as_of, as_of_date)
    state = account["state"] + (f" ({account['reason']}{', until ' + account['until'] if account['until'] else ''})"
                                if account["reason"] else "")
    title = f"History of {account_id} at position {pos}" + ("" if state == "open" else f": {state}")
    _print({"position": pos, "account_id": account_id, "state": account["state"], "account": account, "rows": rows},
           rows, title, as_json, as_csv,
           ["position", "recorded_at", "type", "unit", "vintage", "quantity", "balance", "counterparty"])


def _local_history(c: Ctx, account_id: str, as_of: int | None,
                   as_of_date: str | None) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    from projections import runner
    from projections.balances import account_rows

    rec = c.existing_recorder()
    unsaved: list = []
    states, pos = c.catch_up(unsaved)  # the history rows are stored as the read models catch up
    if as_of is not None or as_of_date is not None:
        states, pos = _states(c, ["balances"], as_of, as_of_date)
    _check_account(states["balances"], account_id, pos)
    (account,) = account_rows(states["balances"], account_id)
    return pos, account, [{"account_id": account_id, **r} for r in runner.history(rec, account_id, pos, unsaved)]


@click.command()
@click.option("--by", type=click.Choice(["day", "year", "mode"]), default="year", show_default=True)
@click.option("--unit", default="CEA", show_default=True)
@click.option("--vintage", type=int, help="Only this vintage's daily rows (each vintage is its own product).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Draw the daily close and cumulative volume to a PNG.")
@click.option("--from", "from_date", help="Only trade dates on or after this one (YYYY-MM-DD): the business date.")
@click.option("--to", "to_date", help="Only trade dates on or before this one (YYYY-MM-DD).")
@read_options
@pass_ctx
def market(c: Ctx, **kw: Any) -> None:
    """Market statistics: cumulative volume and value; by day, year or trade mode."""
    show_market(c, **kw)


def show_market(c: Ctx, by: str = "year", unit: str = "CEA", plot: str | None = None, vintage: int | None = None, *,
                as_json: bool = False, as_csv: bool = False, as_of: int | None = None, as_of_date: str | None = None,
                from_date: str | None = None, to_date: str | None = None) -> None:
    from ledger.units import parse_date
    from projections.market import report

    first = parse_date(from_date, "--from").isoformat() if from_date else None
    last = parse_date(to_date, "--to").isoformat() if to_date else None
    if (first or last) and by != "day":
        raise click.UsageError("--from and --to select trading days: use them with --by day")
    if plot:
        from commands.plots import check_target

        check_target(plot)
    rep, pos = _answer(c, "/v1/market", "market", lambda st: report(st, unit, vintage), as_of, as_of_date,
                       unit=unit, vintage=vintage)
    if plot:
        from commands.plots import plot_market

        plot_market(rep, plot)
    if first or last:  # by trade date, the business date (not the time the trades were recorded)
        rep["days"] = [d for d in rep["days"] if (first or "") <= d["date"] <= (last or "9999-12-31")]
    rows = {"day": rep["days"], "year": rep["years"], "mode": rep["modes"]}[by]
    cum = rep["cumulative"]
    if not as_json and not as_csv:
        from decimal import Decimal

        click.echo(f"{unit} cumulative at position {pos}: {cum['volume']:,} t, {Decimal(cum['value']):,.2f} yuan,"
                   f" {cum['trades']:,} trades")
    _print({"position": pos, **rep}, rows, f"{unit} market by {by}", as_json, as_csv)


@click.command()
@click.option("--year", type=int)
@click.option("--firm")
@click.option("--plot", type=click.Path(dir_okay=False), help="Draw status counts per year and sector to a PNG.")
@read_options
@pass_ctx
def compliance(c: Ctx, **kw: Any) -> None:
    """Compliance per firm and period: obligation, surrendered, status (A, B, C, -), fine and deduction."""
    show_compliance(c, **kw)


def show_compliance(c: Ctx, year: int | None = None, firm: str | None = None, plot: str | None = None, *,
                    as_json: bool = False, as_csv: bool = False, as_of: int | None = None,
                    as_of_date: str | None = None) -> None:
    from projections.compliance import rows as compliance_rows

    if plot:
        from commands.plots import check_target

        check_target(plot)
    remote = _remote(c, "/v1/compliance", as_of, as_of_date, year=year, firm=firm)
    if remote is not None:
        pos, rows = remote["position"], remote["rows"]
        every = (lambda: c.remote.get("/v1/compliance", {"as_of": pos})["rows"])
    else:
        states, pos = _states(c, ["compliance"], as_of, as_of_date)
        st = states["compliance"]
        if firm is not None and firm not in st["firms"]:
            raise BadInput(f"firm {firm} does not exist (at position {pos})")
        if year is not None and year not in st["year_period"]:
            raise BadInput(f"no compliance year {year} has been opened (at position {pos})")
        rows = compliance_rows(st, year, firm)
        every = (lambda: compliance_rows(st))
    if plot:
        from commands.plots import plot_compliance

        plot_compliance(every(), plot)
    _print({"position": pos, "rows": rows}, rows, f"Compliance at position {pos}", as_json, as_csv,
           ["firm_id", "period", "sector", "verified", "obligation", "surrendered_cea", "surrendered_ccer",
            "shortfall", "status", "fine", "deduction"])


@click.command()
@click.option("--year", type=int, required=True)
@click.option("--national-total", type=click.IntRange(1), help="National emissions (t), for the covered share.")
@read_options
@pass_ctx
def coverage(c: Ctx, **kw: Any) -> None:
    """Firms and verified emissions per sector for a year; with --national-total, the covered share (%)."""
    show_coverage(c, **kw)


def show_coverage(c: Ctx, year: int, national_total: int | None = None, *, as_json: bool = False,
                  as_csv: bool = False, as_of: int | None = None, as_of_date: str | None = None) -> None:
    from projections.compliance import coverage as cov

    out, pos = _answer(c, "/v1/coverage", "compliance", lambda st: cov(st, year, national_total), as_of, as_of_date,
                       year=year, national_total=national_total)
    if not as_json and not as_csv and "covered_share" in out:
        click.echo(f"covered share of {national_total:,} t: {out['covered_share']}%")
    _print({"position": pos, **out}, out["sectors"], f"Coverage {year} at position {pos}", as_json, as_csv)


@click.group()
def rules() -> None:
    """The market rules in force (versioned reference data)."""


@rules.command("show")
@click.option("--year", type=int, default=2024, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def rules_show(c: Ctx, year: int, as_json: bool) -> None:
    """Print the rules in force for a compliance year, with their sources (and the plans published in the
    store, when it exists)."""
    from commands.output import emit_json
    from ledger import rules as r
    from ledger.store import parse_store, store_exists

    if c.remote is not None:  # the server's store, with the plans published in it
        data = c.remote.get("/v1/rules", {"year": year})
    else:
        lookup = c.registry.state.plan if store_exists(parse_store(c.store)) else None
        data = r.describe(year, lookup)
    if as_json:
        emit_json(data)
        return
    from commands.rulesview import print_rules

    print_rules(data)


@rules.command("publish")
@click.argument("plan_file", type=click.File("r"))
@click.option("--command-id", help="Idempotency key: repeating it appends nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def rules_publish(c: Ctx, plan_file: Any, command_id: str | None, as_json: bool) -> None:
    """Record an allocation plan the code does not ship (a regulator): PLAN.json gives version, years,
    source and the power and/or new-sector figures; used for those years from then on."""
    import orjson

    from commands.append import _append
    from ledger.errors import BadInput

    try:
        plan = orjson.loads(plan_file.read())
    except orjson.JSONDecodeError as e:
        raise BadInput(f"{plan_file.name}: not JSON ({e})") from None
    if not isinstance(plan, dict):
        raise BadInput(f"{plan_file.name}: a plan is a JSON object")
    _append(c, "rules publish", plan, command_id, as_json)


@click.command()
@click.option("--follow", is_flag=True, help="Keep running: apply new events as they arrive (stop with SIGTERM).")
@click.option("--interval", type=click.FloatRange(0.05, 3600), default=1.0, show_default=True,
              help="Longest wait between checks for new events, in seconds.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def project(c: Ctx, follow: bool, interval: float, as_json: bool) -> None:
    """Bring every read model up to the head; with --follow, keep them current."""
    from commands.follow import run_follow

    c.need_local()
    run_follow(c, follow, interval, as_json)


COMMANDS = [balances, history, market, compliance, coverage, rules, project]
