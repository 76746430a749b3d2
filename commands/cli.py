"""The `carbon-ledger` command: thin click functions that parse, call one registry method, and print.

Exit codes (docs/cli.md): 0 done; 1 refused by a ledger rule; 2 bad input or usage;
3 store or integrity failure. Errors are one line on stderr, never a traceback.
Heavy imports happen inside the commands, so a single append starts fast.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ledger.errors import BadInput, LedgerError, StoreError


class Ctx:
    def __init__(self, store: str | None, actor: str | None, key: str | None):
        self.store = store
        self.actor = actor
        self.key = key
        self._registry = None

    @property
    def registry(self):
        if self._registry is None:
            from ledger.registry import Registry

            self._registry = Registry(self.store)
        return self._registry

    def existing_recorder(self):
        """The recorder of a store that must exist already (reads never create a store)."""
        from ledger.store import parse_store, store_exists

        cfg = parse_store(self.store)
        if not store_exists(cfg):
            raise StoreError(f"no store at {cfg.path or cfg.url}: record something first, or pass --store")
        return self.registry.recorder

    def close(self) -> None:
        """Close the registry a command opened (its connection pool on PostgreSQL, its file on SQLite)."""
        if self._registry is not None:
            self._registry.close()
            self._registry = None


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", envvar="CARBON_LEDGER_STORE", help="SQLite file (default ./carbon-ledger.db) or postgresql://USER@HOST:PORT/DB[?schema=NAME].")
@click.option("--as", "actor", envvar="CARBON_LEDGER_ACTOR", help="The actor the command runs as.")
@click.option("--key", envvar="CARBON_LEDGER_KEY", type=click.Path(dir_okay=False), help="Private key file to sign commands with.")
@click.pass_context
def cli(ctx: click.Context, store: str | None, actor: str | None, key: str | None) -> None:
    """carbon-ledger: an event-sourced, hash-chained registry and trading ledger for carbon markets."""
    ctx.obj = Ctx(store, actor, key)
    ctx.call_on_close(ctx.obj.close)  # in-process callers (tests, embedding code) must not leak connections


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as e:  # one line, as every other error (click's own show() prints three)
        hint = ""
        if isinstance(e, click.UsageError) and e.ctx is not None:
            hint = f" (see {e.ctx.command_path} --help)"
        click.echo(f"error: {e.format_message()}{hint}".replace("\n", " "), err=True)
        sys.exit(2 if e.exit_code == 2 else e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except LedgerError as e:
        click.echo(f"error: {e.message}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as e:  # noqa: BLE001 - the promise: one line, never a traceback
        from eventsourcing.persistence import PersistenceError

        if isinstance(e, (PersistenceError, OSError)):
            click.echo(f"error: store failure: {type(e).__name__}: {e}".splitlines()[0], err=True)
            sys.exit(3)
        click.echo(f"error: internal: {type(e).__name__}: {e}".splitlines()[0], err=True)
        sys.exit(3)


# ---- appends ----------------------------------------------------------------------------------

def _command(c: Ctx, name: str, args: dict[str, Any], command_id: str | None) -> Any:
    """The Command to run as the context's actor, signed with --key when one is given."""
    import uuid

    from ledger.registry import Command

    args = {k: v for k, v in args.items() if v is not None}
    signature = None
    if c.key:
        from ledger import signing
        from ledger.inputs import parse_command

        command_id = command_id or uuid.uuid4().hex
        key = signing.load_private(c.key)
        signature = signing.sign(key, signing.command_payload(name, command_id, parse_command(name, args)))
    return Command(name, args, command_id, c.actor, signature)


def _append(c: Ctx, name: str, args: dict[str, Any], command_id: str | None, as_json: bool) -> None:
    out = c.registry.execute(_command(c, name, args, command_id))
    _report(out, as_json)


def _report(out: Any, as_json: bool) -> None:
    from commands.output import emit_json

    if as_json:
        emit_json({**out.result, "replayed": out.replayed})
        return
    r = out.result
    if out.replayed:
        click.echo(f"already recorded: command {r['command_id']} at position {r['position']}; nothing appended")
        return
    extra = "".join(f" {k}={r[k]}" for k in ("trade_id", "issued", "penalties", "fines") if k in r)
    span = str(r["position"]) if r["first_position"] == r["position"] else f"{r['first_position']}-{r['position']}"
    click.echo(f"recorded {', '.join(r['events'])} at position {span}{extra}")


def command_id_option(f):
    f = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(f)
    return click.option("--command-id", help="Idempotency key: repeating it appends nothing.")(f)


@cli.command()
@click.option("--regulator", required=True, help="The first regulator actor.")
@click.option("--require-signatures", is_flag=True, help="Refuse every unsigned command from now on.")
@click.option("--public-key", help="The regulator's Ed25519 public key (hex); taken from --key when omitted.")
@command_id_option
@pass_ctx
def init(c: Ctx, regulator: str, require_signatures: bool, public_key: str | None, command_id: str | None,
         as_json: bool) -> None:
    """Create a store that enforces roles (for ever), with its first regulator."""
    if c.key and not public_key:
        from ledger import signing

        public_key = signing.public_hex(signing.load_private(c.key))
    if require_signatures and not public_key:
        raise BadInput("--require-signatures needs the regulator's key: pass --key FILE or --public-key HEX")
    c.actor = regulator
    _append(c, "init", {"regulator": regulator, "require_signatures": require_signatures, "public_key": public_key},
            command_id, as_json)


@cli.group()
def actor() -> None:
    """Actors, roles and keys."""


@actor.command("add")
@click.argument("actor_id")
@click.option("--role", required=True, type=click.Choice(["regulator", "exchange", "verifier", "firm"]))
@click.option("--firm", help="The firm a firm actor acts for.")
@click.option("--public-key", help="Ed25519 public key (hex), to check this actor's signatures.")
@command_id_option
@pass_ctx
def actor_add(c: Ctx, actor_id: str, role: str, firm: str | None, public_key: str | None, command_id: str | None,
              as_json: bool) -> None:
    """Add an actor (a regulator only)."""
    _append(c, "actor add", {"actor_id": actor_id, "role": role, "firm": firm, "public_key": public_key},
            command_id, as_json)


@actor.command("key")
@click.argument("actor_id")
@click.option("--public-key", required=True, help="Ed25519 public key (hex).")
@command_id_option
@pass_ctx
def actor_key(c: Ctx, actor_id: str, public_key: str, command_id: str | None, as_json: bool) -> None:
    """Register an actor's public key (a regulator only)."""
    _append(c, "actor key", {"actor_id": actor_id, "public_key": public_key}, command_id, as_json)


@actor.command("keygen")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Private key file (0600).")
def actor_keygen(out: str) -> None:
    """Make an Ed25519 key pair: the private key goes to --out, the public key (hex) is printed."""
    from ledger import signing

    click.echo(signing.generate(out))


@cli.group()
def firm() -> None:
    """Covered firms."""


@firm.command("register")
@click.argument("firm_id")
@click.option("--name", required=True)
@click.option("--sector", required=True)
@click.option("--region", required=True)
@click.option("--unit-type", help="Power units: coal-above-300mw (default), coal-300mw-or-less, coal-unconventional, gas.")
@command_id_option
@pass_ctx
def firm_register(c: Ctx, firm_id: str, name: str, sector: str, region: str, unit_type: str | None,
                  command_id: str | None, as_json: bool) -> None:
    """Register a firm and open its compliance account (account id = firm id)."""
    _append(c, "firm register", {"firm_id": firm_id, "name": name, "sector": sector, "region": region,
                                 "unit_type": unit_type}, command_id, as_json)


@cli.group()
def account() -> None:
    """Holding accounts."""


@account.command("open")
@click.argument("account_id")
@click.option("--holder", required=True)
@click.option("--kind", default="trading", show_default=True)
@command_id_option
@pass_ctx
def account_open(c: Ctx, account_id: str, holder: str, kind: str, command_id: str | None, as_json: bool) -> None:
    """Open a trading or government account."""
    _append(c, "account open", {"account_id": account_id, "holder": holder, "kind": kind}, command_id, as_json)


@cli.group()
def year() -> None:
    """Compliance years and cycles."""


@year.command("open")
@click.argument("year")
@click.option("--deadline", help="Surrender deadline YYYY-MM-DD (default: 31 Dec of the following year).")
@command_id_option
@pass_ctx
def year_open(c: Ctx, year: str, deadline: str | None, command_id: str | None, as_json: bool) -> None:
    """Open a compliance year (2024) or a multi-year cycle (2021-2022)."""
    _append(c, "year open", {"year": year, "deadline": deadline}, command_id, as_json)


@year.command("close")
@click.argument("year")
@click.option("--fine-multiple", help="Multiple of the shortfall's market value (5 to 10; default 5).")
@command_id_option
@pass_ctx
def year_close(c: Ctx, year: str, fine_multiple: str | None, command_id: str | None, as_json: bool) -> None:
    """Close a compliance period: fix statuses, assess penalties and deductions."""
    _append(c, "year close", {"year": year.split("-")[0], "fine_multiple": fine_multiple}, command_id, as_json)


def _unit_options(f):
    f = click.option("--quantity", required=True, help="Whole tonnes.")(f)
    f = click.option("--vintage", required=True)(f)
    return click.option("--unit", required=True, help="CEA or CCER.")(f)


@cli.command()
@click.argument("account_id")
@_unit_options
@click.option("--basis", required=True, help="pre-allocation, true-up, auction, offset or reserve.")
@command_id_option
@pass_ctx
def issue(c: Ctx, account_id: str, unit: str, vintage: str, quantity: str, basis: str, command_id: str | None,
          as_json: bool) -> None:
    """Issue units into an account (a regulator)."""
    _append(c, "issue", {"account_id": account_id, "unit": unit, "vintage": vintage, "quantity": quantity,
                         "basis": basis}, command_id, as_json)


@cli.command()
@click.argument("firm_id", required=False)
@click.option("--year", required=True)
@click.option("--step", required=True, type=click.Choice(["pre", "true-up"]))
@click.option("--all", "all_firms", is_flag=True, help="Every covered firm, atomically per firm.")
@click.option("--factor", "factors", multiple=True, help="Correction factor NAME=VALUE (cooling, heat_supply, load).")
@command_id_option
@pass_ctx
def allocate(c: Ctx, firm_id: str | None, year: str, step: str, all_firms: bool, factors: tuple[str, ...],
             command_id: str | None, as_json: bool) -> None:
    """Free allocation by the benchmark rules: pre-allocation or true-up (a regulator)."""
    fs = {}
    for f in factors:
        if "=" not in f:
            raise BadInput(f"--factor {f!r} must be NAME=VALUE")
        k, v = f.split("=", 1)
        fs[k] = v
    if all_firms == bool(firm_id):
        raise BadInput("name one FIRM_ID or pass --all")
    if not all_firms:
        _append(c, "allocate", {"firm_id": firm_id, "year": year, "step": step, "factors": fs or None}, command_id,
                as_json)
        return
    from commands.output import emit_json
    from ledger import rules
    from ledger.errors import Refused

    reg = c.registry
    y = int(year)
    done, skipped = [], []
    for fid, f in sorted(reg.state.firms.items()):
        if not rules.is_covered(f.sector, y):
            continue
        cid = f"{command_id}:{fid}" if command_id else None
        try:
            out = reg.execute(_command(c, "allocate", {"firm_id": fid, "year": year, "step": step,
                                                       "factors": fs or None}, cid))
            done.append({"firm_id": fid, "issued": out.result.get("issued", 0), "position": out.position})
        except Refused as e:
            skipped.append({"firm_id": fid, "reason": e.message})
    if as_json:
        emit_json({"allocated": done, "skipped": skipped})
    else:
        click.echo(f"allocated {len(done)} firms ({sum(d['issued'] for d in done):,} t issued); skipped {len(skipped)}")
        for s in skipped:
            click.echo(f"  skipped {s['firm_id']}: {s['reason']}")


@cli.command()
@click.argument("from_account")
@click.argument("to_account")
@_unit_options
@command_id_option
@pass_ctx
def transfer(c: Ctx, from_account: str, to_account: str, unit: str, vintage: str, quantity: str,
             command_id: str | None, as_json: bool) -> None:
    """Move units between two accounts."""
    _append(c, "transfer", {"from_account": from_account, "to_account": to_account, "unit": unit,
                            "vintage": vintage, "quantity": quantity}, command_id, as_json)


@cli.command()
@click.option("--buyer", required=True)
@click.option("--seller", required=True)
@_unit_options
@click.option("--price", required=True, help="Yuan per tonne, at most 2 decimals.")
@click.option("--mode", required=True, help="listed, block or auction.")
@click.option("--date", "date", required=True, help="Trade date YYYY-MM-DD.")
@command_id_option
@pass_ctx
def trade(c: Ctx, buyer: str, seller: str, unit: str, vintage: str, quantity: str, price: str, mode: str, date: str,
          command_id: str | None, as_json: bool) -> None:
    """Record a trade matched by the exchange (an exchange actor)."""
    _append(c, "trade", {"buyer": buyer, "seller": seller, "unit": unit, "vintage": vintage, "quantity": quantity,
                         "price": price, "mode": mode, "date": date}, command_id, as_json)


@cli.group()
def emissions() -> None:
    """Verified emissions (MRV)."""


@emissions.command("verify")
@click.argument("firm_id")
@click.option("--year", required=True)
@click.option("--tonnes", required=True)
@click.option("--output", help="Verified output (e.g. supplied MWh).")
@click.option("--output-unit", help="MWh, GJ or t.")
@command_id_option
@pass_ctx
def emissions_verify(c: Ctx, firm_id: str, year: str, tonnes: str, output: str | None, output_unit: str | None,
                     command_id: str | None, as_json: bool) -> None:
    """Record a firm's verified emissions for a year."""
    _append(c, "emissions verify", {"firm_id": firm_id, "year": year, "tonnes": tonnes, "output": output,
                                    "output_unit": output_unit}, command_id, as_json)


@cli.command()
@click.argument("firm_id")
@click.option("--year", required=True)
@_unit_options
@command_id_option
@pass_ctx
def surrender(c: Ctx, firm_id: str, year: str, unit: str, vintage: str, quantity: str, command_id: str | None,
              as_json: bool) -> None:
    """Surrender units against a firm's obligation."""
    _append(c, "surrender", {"firm_id": firm_id, "year": year, "unit": unit, "vintage": vintage,
                             "quantity": quantity}, command_id, as_json)


@cli.command()
@click.argument("account_id")
@_unit_options
@click.option("--reason", default="voluntary", show_default=True, help="voluntary, correction or expiry.")
@command_id_option
@pass_ctx
def cancel(c: Ctx, account_id: str, unit: str, vintage: str, quantity: str, reason: str, command_id: str | None,
           as_json: bool) -> None:
    """Cancel (retire) units without counting them toward an obligation."""
    _append(c, "cancel", {"account_id": account_id, "unit": unit, "vintage": vintage, "quantity": quantity,
                          "reason": reason}, command_id, as_json)


@cli.command("import")
@click.argument("file", type=click.File("r"))
@click.option("--on-refusal", type=click.Choice(["stop", "continue"]), default="stop", show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=2000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def import_(c: Ctx, file: Any, on_refusal: str, batch_size: int, as_json: bool) -> None:
    """Append commands from JSON lines (- for stdin), in atomic batches."""
    from commands.importer import run_import

    run_import(c, file, on_refusal, batch_size, as_json)


# ---- reads ------------------------------------------------------------------------------------

def read_options(f):
    f = click.option("--as-of-date", help="Answer as the ledger stood at the end of this date (YYYY-MM-DD).")(f)
    f = click.option("--as-of", "as_of", type=click.IntRange(0), help="Answer as the ledger stood at this position.")(f)
    f = click.option("--csv", "as_csv", is_flag=True, help="CSV for spreadsheets.")(f)
    return click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")(f)


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
    states, pos = runner.catch_up(rec)
    return {n: states[n] for n in names}, pos


def _print(payload: dict[str, Any], rows: list[dict[str, Any]], title: str, as_json: bool, as_csv: bool,
           columns: list[str] | None = None) -> None:
    from commands import output

    if as_json:
        output.emit_json(payload)
    elif as_csv:
        output.emit_csv(rows)
    else:
        output.emit_table(title, rows, columns)


@cli.command()
@click.argument("account_id", required=False)
@click.option("--totals", is_flag=True, help="Totals per unit and vintage: issued, held, surrendered, cancelled, withdrawn.")
@read_options
@pass_ctx
def balances(c: Ctx, account_id: str | None, totals: bool, as_json: bool, as_csv: bool, as_of: int | None,
             as_of_date: str | None) -> None:
    """Holdings per account, unit and vintage."""
    from projections.balances import balance_rows, total_rows

    states, pos = _states(c, ["balances"], as_of, as_of_date)
    st = states["balances"]
    rows = balance_rows(st, account_id)
    tot = total_rows(st)
    _print({"position": pos, "balances": rows, "totals": tot}, tot if totals else rows,
           f"Totals at position {pos}" if totals else f"Balances at position {pos}", as_json, as_csv)


@cli.command()
@click.argument("account_id")
@read_options
@pass_ctx
def history(c: Ctx, account_id: str, as_json: bool, as_csv: bool, as_of: int | None, as_of_date: str | None) -> None:
    """Every movement of one account, in order, with its running balance."""
    from projections import runner

    rec = c.existing_recorder()
    if as_of_date is not None:
        from ledger.units import parse_date

        as_of = runner.position_at_date(rec, parse_date(as_of_date, "--as-of-date").isoformat())
    _, pos = runner.catch_up(rec)
    if as_of is not None:
        pos = min(as_of, pos)
    rows = [{"account_id": account_id, **r} for r in runner.history(rec, account_id, pos)]
    _print({"position": pos, "account_id": account_id, "rows": rows}, rows, f"History of {account_id} at position {pos}",
           as_json, as_csv, ["position", "recorded_at", "type", "unit", "vintage", "quantity", "balance", "counterparty"])


@cli.command()
@click.option("--by", type=click.Choice(["day", "year", "mode"]), default="year", show_default=True)
@click.option("--unit", default="CEA", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), help="Draw the daily close and cumulative volume to a PNG.")
@read_options
@pass_ctx
def market(c: Ctx, by: str, unit: str, plot: str | None, as_json: bool, as_csv: bool, as_of: int | None,
           as_of_date: str | None) -> None:
    """Market statistics: cumulative volume and value; by day, year or trade mode."""
    from projections.market import report

    states, pos = _states(c, ["market"], as_of, as_of_date)
    rep = report(states["market"], unit)
    if plot:
        from commands.plots import plot_market

        plot_market(rep, plot)
    rows = {"day": rep["days"], "year": rep["years"], "mode": rep["modes"]}[by]
    cum = rep["cumulative"]
    if not as_json and not as_csv:
        from decimal import Decimal

        click.echo(f"{unit} cumulative at position {pos}: {cum['volume']:,} t, {Decimal(cum['value']):,.2f} yuan,"
                   f" {cum['trades']:,} trades")
    _print({"position": pos, **rep}, rows, f"{unit} market by {by}", as_json, as_csv)


@cli.command()
@click.option("--year", type=int)
@click.option("--firm")
@click.option("--plot", type=click.Path(dir_okay=False), help="Draw status counts per year and sector to a PNG.")
@read_options
@pass_ctx
def compliance(c: Ctx, year: int | None, firm: str | None, plot: str | None, as_json: bool, as_csv: bool,
               as_of: int | None, as_of_date: str | None) -> None:
    """Compliance per firm and period: obligation, surrendered, status (A, B, C, -), fine and deduction."""
    from projections.compliance import rows as compliance_rows

    states, pos = _states(c, ["compliance"], as_of, as_of_date)
    rows = compliance_rows(states["compliance"], year, firm)
    if plot:
        from commands.plots import plot_compliance

        plot_compliance(compliance_rows(states["compliance"]), plot)
    _print({"position": pos, "rows": rows}, rows, f"Compliance at position {pos}", as_json, as_csv,
           ["firm_id", "period", "sector", "verified", "obligation", "surrendered_cea", "surrendered_ccer",
            "shortfall", "status", "fine", "deduction"])


@cli.command()
@click.option("--year", type=int, required=True)
@click.option("--national-total", type=click.IntRange(1), help="National emissions (t), for the covered share.")
@read_options
@pass_ctx
def coverage(c: Ctx, year: int, national_total: int | None, as_json: bool, as_csv: bool, as_of: int | None,
             as_of_date: str | None) -> None:
    """Firms and verified emissions per sector for a year; with --national-total, the covered share (%)."""
    from projections.compliance import coverage as cov

    states, pos = _states(c, ["compliance"], as_of, as_of_date)
    out = cov(states["compliance"], year, national_total)
    if not as_json and not as_csv and "covered_share" in out:
        click.echo(f"covered share of {national_total:,} t: {out['covered_share']}%")
    _print({"position": pos, **out}, out["sectors"], f"Coverage {year} at position {pos}", as_json, as_csv)


@cli.group()
def rules() -> None:
    """The market rules in force (versioned reference data)."""


@rules.command("show")
@click.option("--year", type=int, default=2024, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def rules_show(year: int, as_json: bool) -> None:
    """Print the rules in force for a compliance year."""
    from commands.output import emit_json
    from ledger import rules as r

    data = r.describe(year)
    if as_json:
        emit_json(data)
        return
    from commands.rulesview import print_rules

    print_rules(data)


# ---- audit ------------------------------------------------------------------------------------

@cli.group()
def audit() -> None:
    """Verify, replay, export; head and checkpoints."""


@audit.command("head")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def audit_head(c: Ctx, as_json: bool) -> None:
    """The last position and its hash (publish it; pin it)."""
    from commands.output import emit_json
    from ledger.events import GENESIS_HASH
    from ledger.store import parse_store, store_exists

    cfg = parse_store(c.store)
    pos, h = c.registry.head() if store_exists(cfg) else (0, GENESIS_HASH)
    if as_json:
        emit_json({"position": pos, "hash": h})
    else:
        click.echo(f"{pos} {h}")


@audit.command("verify")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), help="A signed checkpoint this log must extend.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def audit_verify(c: Ctx, checkpoint: str | None, as_json: bool) -> None:
    """Recompute the hash chain from the stored rows; exit 3 at the first bad position."""
    from commands.auditcmd import run_verify

    run_verify(c, checkpoint, as_json)


@audit.command("replay")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def audit_replay(c: Ctx, as_json: bool) -> None:
    """Rebuild every projection from position 0 and compare with the stored read models."""
    from commands.auditcmd import run_replay

    run_replay(c, as_json)


@audit.command("export")
@click.option("--as-of", "as_of", type=click.IntRange(0))
@pass_ctx
def audit_export(c: Ctx, as_of: int | None) -> None:
    """Write the event catalogue as JSON lines to stdout."""
    from projections.audit import export

    out = sys.stdout.buffer
    for line in export(c.existing_recorder(), as_of):
        out.write(line + b"\n")


@audit.command("checkpoint")
@pass_ctx
def audit_checkpoint(c: Ctx) -> None:
    """Sign (position, head hash, time) with the regulator's key (--key) and print it."""
    from commands.auditcmd import run_checkpoint

    run_checkpoint(c)


@cli.command()
@click.option("--follow", is_flag=True, help="Keep running: apply new events as they arrive (stop with SIGTERM).")
@click.option("--interval", type=click.FloatRange(0.05, 3600), default=1.0, show_default=True,
              help="Longest wait between checks for new events, in seconds.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def project(c: Ctx, follow: bool, interval: float, as_json: bool) -> None:
    """Bring every read model up to the head; with --follow, keep them current."""
    from commands.follow import run_follow

    run_follow(c, follow, interval, as_json)


@cli.command()
@click.argument("scenario", type=click.Choice(["china-2021-2024"]))
@click.option("--scale", type=click.FloatRange(0.0001, 2.0), default=1.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--enforce", is_flag=True, help="Run on an enforced store, as named actors.")
@pass_ctx
def simulate(c: Ctx, scenario: str, scale: float, seed: int, enforce: bool) -> None:
    """Replay a market scenario through the registry's commands."""
    from commands.scenario import run_simulate

    run_simulate(c, scenario, scale, seed, enforce)


@cli.command()
@click.option("--enforce", is_flag=True, help="Run on an enforced store, as named actors.")
@pass_ctx
def demo(c: Ctx, enforce: bool) -> None:
    """A small, fast market into a fresh store here; then the market, compliance and audit verify."""
    from commands.scenario import run_demo

    run_demo(c, enforce)


if __name__ == "__main__":
    main()
