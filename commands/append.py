"""The commands that append: each parses its options, builds one Command and runs it (or, for `import`, a file
of them), then prints what was recorded."""

from __future__ import annotations

from typing import Any

import click

from commands.context import Ctx, pass_ctx
from ledger import rules, units
from ledger.errors import BadInput


def _one_of(values: Any, end: str = ".") -> str:
    """The allowed values of an option, as its help says them (from ledger.units or ledger.rules)."""
    values = list(values)
    return (", ".join(values[:-1]) + " or " + values[-1] if len(values) > 1 else values[0]) + end


def _command(c: Ctx, name: str, args: dict[str, Any], command_id: str | None) -> Any:
    """The Command to run as the context's actor; with --key, the registry signs it for this store."""
    from ledger.registry import Command

    key = None
    if c.key:
        from ledger import signing

        key = signing.load_private(c.key)
    return Command(name, {k: v for k, v in args.items() if v is not None}, command_id, c.actor, sign_with=key)


def _execute(c: Ctx, name: str, args: dict[str, Any], command_id: str | None) -> Any:
    """Run one command on the store: locally, or on the registry server (commands/remote.py), signed there
    as the registry would sign it here."""
    if c.remote is not None:
        return c.remote.execute(name, {k: v for k, v in args.items() if v is not None}, command_id)
    return c.registry.execute(_command(c, name, args, command_id))


def _append(c: Ctx, name: str, args: dict[str, Any], command_id: str | None, as_json: bool) -> None:
    _report(_execute(c, name, args, command_id), as_json)


def _report(out: Any, as_json: bool) -> None:
    from commands.output import emit_json

    if as_json:
        emit_json({**out.result, "replayed": out.replayed})
        return
    r = out.result
    if out.replayed:
        click.echo(f"already recorded: command {r['command_id']} at position {r['position']}; nothing appended")
        return
    extra = "".join(f" {k}={r[k]}" for k in ("trade_id", "transfer_id", "expires_at", "reversed_position", "issued",
                                             "swept", "penalties", "fines", "correct_by", "deductions", "deducted",
                                             "cut", "withdrawn", "late", "remaining") if r.get(k) is not None)
    span = str(r["position"]) if r["first_position"] == r["position"] else f"{r['first_position']}-{r['position']}"
    click.echo(f"recorded {', '.join(r['events'])} at position {span}{extra}")


def command_id_option(f):
    f = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(f)
    return click.option("--command-id", help="Idempotency key: repeating it appends nothing.")(f)


@click.command()
@click.option("--regulator", required=True, help="The first regulator actor.")
@click.option("--require-signatures", is_flag=True, help="Refuse every unsigned command from now on.")
@click.option("--public-key", help="The regulator's Ed25519 public key (hex); taken from --key when omitted.")
@command_id_option
@pass_ctx
def init(c: Ctx, regulator: str, require_signatures: bool, public_key: str | None, command_id: str | None,
         as_json: bool) -> None:
    """Create a store that enforces roles (for ever), with its first regulator."""
    c.need_local()
    if c.key and not public_key:
        from ledger import signing

        public_key = signing.public_hex(signing.load_private(c.key))
    c.actor = regulator
    _append(c, "init", {"regulator": regulator, "require_signatures": require_signatures, "public_key": public_key},
            command_id, as_json)


@click.group()
def actor() -> None:
    """Actors, roles and keys."""


@actor.command("add")
@click.argument("actor_id")
@click.option("--role", required=True, type=click.Choice(units.ROLES))
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


@click.group()
def firm() -> None:
    """Covered firms."""


@firm.command("register")
@click.argument("firm_id")
@click.option("--name", required=True)
@click.option("--sector", required=True, help=_one_of(units.SECTORS))
@click.option("--region", required=True)
@click.option("--unit-type",
              help=f"Power units: {_one_of(rules.UNIT_TYPES, '')} (default {rules.DEFAULT_UNIT_TYPE['power']}).")
@command_id_option
@pass_ctx
def firm_register(c: Ctx, firm_id: str, name: str, sector: str, region: str, unit_type: str | None,
                  command_id: str | None, as_json: bool) -> None:
    """Register a firm and open its compliance account (account id = firm id)."""
    _append(c, "firm register", {"firm_id": firm_id, "name": name, "sector": sector, "region": region,
                                 "unit_type": unit_type}, command_id, as_json)


@click.group()
def facility() -> None:
    """A firm's facilities: generating units, steelmaking, clinker lines, electrolysis."""


@facility.command("register")
@click.argument("facility_id")
@click.option("--firm", required=True, help="The firm that owns it.")
@click.option("--kind", required=True,
              help="coal, coal-unconventional, gas, steel, clinker or aluminium.")
@click.option("--rated-mw", help="Rated power in MW (coal: category I from 400 MW, else II).")
@command_id_option
@pass_ctx
def facility_register(c: Ctx, facility_id: str, firm: str, kind: str, rated_mw: str | None, command_id: str | None,
                      as_json: bool) -> None:
    """Register a facility of a firm (a regulator); allocation is computed per facility."""
    _append(c, "facility register", {"facility_id": facility_id, "firm": firm, "kind": kind, "rated_mw": rated_mw},
            command_id, as_json)


@click.group()
def account() -> None:
    """Holding accounts."""


@account.command("open")
@click.argument("account_id")
@click.option("--holder", required=True)
@click.option("--kind", default="trading", show_default=True, help=_one_of(units.ACCOUNT_KINDS))
@command_id_option
@pass_ctx
def account_open(c: Ctx, account_id: str, holder: str, kind: str, command_id: str | None, as_json: bool) -> None:
    """Open a trading or government account."""
    _append(c, "account open", {"account_id": account_id, "holder": holder, "kind": kind}, command_id, as_json)


@account.command("freeze")
@click.argument("account_id")
@click.option("--reason", required=True, help=_one_of(units.FREEZE_REASONS))
@click.option("--until", help="YYYY-MM-DD: the freeze lapses after this day (default: until unfrozen).")
@command_id_option
@pass_ctx
def account_freeze(c: Ctx, account_id: str, reason: str, until: str | None, command_id: str | None,
                   as_json: bool) -> None:
    """Freeze an account: it can receive units but not send them (a regulator)."""
    _append(c, "account freeze", {"account_id": account_id, "reason": reason, "until": until}, command_id, as_json)


@account.command("unfreeze")
@click.argument("account_id")
@command_id_option
@pass_ctx
def account_unfreeze(c: Ctx, account_id: str, command_id: str | None, as_json: bool) -> None:
    """Lift an account's freeze (a regulator)."""
    _append(c, "account unfreeze", {"account_id": account_id}, command_id, as_json)


@account.command("close")
@click.argument("account_id")
@click.option("--sweep-to", help="A government account that receives whatever the account still holds.")
@command_id_option
@pass_ctx
def account_close(c: Ctx, account_id: str, sweep_to: str | None, command_id: str | None, as_json: bool) -> None:
    """Close an account for good: it must hold nothing (or sweep it) and have no pending transfer (a regulator)."""
    _append(c, "account close", {"account_id": account_id, "sweep_to": sweep_to}, command_id, as_json)


@account.command("policy")
@click.argument("account_id")
@click.option("--approvals", required=True, help="1, or 2: a second actor of the firm approves each outgoing transfer.")
@command_id_option
@pass_ctx
def account_policy(c: Ctx, account_id: str, approvals: str, command_id: str | None, as_json: bool) -> None:
    """How many people an outgoing transfer needs (the firm raises it; only the regulator lowers it)."""
    _append(c, "account policy", {"account_id": account_id, "approvals": approvals}, command_id, as_json)


@click.group()
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
@click.option("--correct-by", help="Time limit to correct, YYYY-MM-DD: late surrenders until then (default: 30 days after the surrender deadline).")
@command_id_option
@pass_ctx
def year_close(c: Ctx, year: str, fine_multiple: str | None, correct_by: str | None, command_id: str | None,
               as_json: bool) -> None:
    """Close a compliance period: fix statuses, fine each short firm and order it to correct by a time limit."""
    _append(c, "year close", {"year": year.split("-")[0], "fine_multiple": fine_multiple, "correct_by": correct_by},
            command_id, as_json)


@year.command("enforce")
@click.argument("year")
@command_id_option
@pass_ctx
def year_enforce(c: Ctx, year: str, command_id: str | None, as_json: bool) -> None:
    """After the time limit to correct: deduct each still-short firm's shortfall from its next allocation."""
    _append(c, "year enforce", {"year": year.split("-")[0]}, command_id, as_json)


@click.group()
def penalty() -> None:
    """Penalties the regulator records (Interim Regulations art. 21 and 22)."""


@penalty.command("record")
@click.argument("firm_id")
@click.option("--article", required=True, type=click.Choice(["21", "22"]),
              help="21: reporting (50,000-500,000 yuan); 22: data fraud (5-10 x gains, or 500,000-2,000,000).")
@click.option("--fine", required=True, help="Yuan.")
@click.option("--year", help="The reporting year concerned.")
@click.option("--illegal-gains", help="Article 22: the illegal gains (yuan); the fine is then 5-10 times them.")
@click.option("--reason", help="What was found.")
@command_id_option
@pass_ctx
def penalty_record(c: Ctx, firm_id: str, article: str, fine: str, year: str | None, illegal_gains: str | None,
                   reason: str | None, command_id: str | None, as_json: bool) -> None:
    """Record a fine under article 21 or 22 (a regulator)."""
    _append(c, "penalty record", {"firm_id": firm_id, "article": article, "fine": fine, "year": year,
                                  "illegal_gains": illegal_gains, "reason": reason}, command_id, as_json)


@penalty.command("cut")
@click.argument("firm_id")
@click.option("--year", required=True, help="The allocation year to cut.")
@click.option("--share", required=True, help="0.5 to 1.0 of that year's allocation.")
@command_id_option
@pass_ctx
def penalty_cut(c: Ctx, firm_id: str, year: str, share: str, command_id: str | None, as_json: bool) -> None:
    """Article 22, refusal to correct: cut a year's allocation by 50-100% (a regulator)."""
    _append(c, "penalty cut", {"firm_id": firm_id, "year": year, "share": share}, command_id, as_json)


def _unit_options(f):
    f = click.option("--quantity", required=True, help="Whole tonnes.")(f)
    f = click.option("--vintage", required=True)(f)
    return click.option("--unit", required=True, help=_one_of(units.UNIT_KINDS))(f)


@click.command()
@click.argument("account_id")
@_unit_options
@click.option("--basis", required=True, help=_one_of(units.ISSUE_BASES))
@click.option("--project-registered", help="CCER: the offset project's registration date, YYYY-MM-DD (from compliance"
              f" year {rules.CCER_NEW_FROM_YEAR} only projects registered from {rules.CCER_NEW_REGISTERED_FROM} count).")
@command_id_option
@pass_ctx
def issue(c: Ctx, account_id: str, unit: str, vintage: str, quantity: str, basis: str, project_registered: str | None,
          command_id: str | None, as_json: bool) -> None:
    """Issue units into an account (a regulator)."""
    _append(c, "issue", {"account_id": account_id, "unit": unit, "vintage": vintage, "quantity": quantity,
                         "basis": basis, "project_registered": project_registered}, command_id, as_json)


@click.group("carry-over")
def carry_over() -> None:
    """Carry-over of the 2019-2024 vintages into 2025 allowances, by application (P23 annex 5)."""


@carry_over.command("show")
@click.argument("firm_id")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@pass_ctx
def carry_over_show(c: Ctx, firm_id: str, as_json: bool) -> None:
    """Whether a firm may apply, its net sales, its limit, what it carried over and what remains."""
    from commands.output import emit_json
    from ledger.decisions.carryover import standing
    from ledger.registry import timestamp

    c.existing_recorder()  # reads never create a store
    reg = c.registry
    st = reg.state
    if firm_id not in st.firms:
        raise BadInput(f"firm {firm_id} does not exist (at position {st.position})")
    out = standing(st, firm_id, timestamp(reg.clock()))
    if as_json:
        emit_json(out)
        return
    click.echo(f"{firm_id}: " + ("eligible" if out["eligible"] else f"not eligible: {out['reason']}"))
    click.echo(f"net sales {out['net_sales']:,} t, limit {out['limit']:,} t, carried over {out['converted']:,} t,"
               f" remaining {out['remaining']:,} t")


@carry_over.command("apply")
@click.argument("firm_id")
@click.option("--vintage", required=True, help="2019 to 2024.")
@click.option("--quantity", required=True, help="Whole tonnes.")
@command_id_option
@pass_ctx
def carry_over_apply(c: Ctx, firm_id: str, vintage: str, quantity: str, command_id: str | None,
                     as_json: bool) -> None:
    """Convert CEA of a 2019-2024 vintage into 2025 allowances, within the firm's limit (the firm, or a regulator)."""
    _append(c, "carry-over apply", {"firm_id": firm_id, "vintage": vintage, "quantity": quantity}, command_id,
            as_json)


@click.command()
@click.argument("firm_id", required=False)
@click.option("--year", required=True)
@click.option("--step", required=True, type=click.Choice(units.ALLOCATION_STEPS))
@click.option("--all", "all_firms", is_flag=True, help="Every covered firm, atomically per firm.")
@click.option("--factor", "factors", multiple=True,
              help=f"Correction factor NAME=VALUE, NAME one of {_one_of(rules.FACTOR_BOUNDS, '')}")
@click.option("--to-authority", is_flag=True, help="Issue into the province's government account (forced compliance).")
@command_id_option
@pass_ctx
def allocate(c: Ctx, firm_id: str | None, year: str, step: str, all_firms: bool, factors: tuple[str, ...],
             to_authority: bool, command_id: str | None, as_json: bool) -> None:
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
        _append(c, "allocate", {"firm_id": firm_id, "year": year, "step": step, "factors": fs or None,
                                "to_authority": to_authority or None}, command_id, as_json)
        return
    from commands.output import emit_json
    from ledger.errors import Refused
    from ledger.units import parse_year

    y = parse_year(year)
    if c.remote is not None:
        sectors = {f["firm_id"]: f["sector"] for f in c.remote.firms()}
    else:
        sectors = {fid: f.sector for fid, f in c.registry.state.firms.items()}
    done, skipped = [], []
    covered = [fid for fid, sector in sorted(sectors.items()) if rules.is_covered(sector, y)]

    def args(fid: str) -> dict[str, Any]:
        return {"firm_id": fid, "year": year, "step": step, "factors": fs or None,
                "to_authority": to_authority or None}

    def cid(fid: str) -> str | None:
        return f"{command_id}:{fid}" if command_id else None

    if c.remote is None and covered:
        from ledger.errors import LedgerError
        from ledger.inputs import parse_command

        parse_command("allocate", {k: v for k, v in args(covered[0]).items() if v is not None})  # bad input: none run
        # one transaction for the year: each firm's allocation is its own command, a refused one skipped
        results = c.registry.execute_batch([_command(c, "allocate", args(f), cid(f)) for f in covered],
                                           on_refusal="continue")
        for fid, out in zip(covered, results, strict=True):
            if isinstance(out, Refused):
                skipped.append({"firm_id": fid, "reason": out.message})
            elif isinstance(out, LedgerError):
                raise out
            else:
                done.append({"firm_id": fid, "issued": out.result.get("issued", 0), "position": out.position})
        covered = []
    for fid in covered:  # on a registry server: one request per firm
        try:
            out = _execute(c, "allocate", args(fid), cid(fid))
            done.append({"firm_id": fid, "issued": out.result.get("issued", 0), "position": out.position})
        except Refused as e:
            skipped.append({"firm_id": fid, "reason": e.message})
    if as_json:
        emit_json({"allocated": done, "skipped": skipped})
    else:
        click.echo(f"allocated {len(done)} firms ({sum(d['issued'] for d in done):,} t issued); skipped {len(skipped)}")
        for s in skipped:
            click.echo(f"  skipped {s['firm_id']}: {s['reason']}")


class _TransferGroup(click.Group):
    """`transfer FROM TO ...` sends units; `transfer approve ID` and `transfer cancel ID` act on a pending one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["send", *args]  # the plain form: transfer FROM TO --unit ... (the hidden `send`)
        return super().parse_args(ctx, args)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.commands["send"].format_options(ctx, formatter)  # the plain form's options, then approve and cancel
        self.format_commands(ctx, formatter)


@click.group(cls=_TransferGroup, subcommand_metavar="FROM TO | approve ID | cancel ID")
def transfer() -> None:
    """Move units between two accounts: transfer FROM TO --unit U --vintage V --quantity Q [--expires-after 7d].

    From an account that needs two approvals (account policy --approvals 2) the transfer is recorded as
    pending and reserves its units until another actor of the firm runs `transfer approve ID`, someone
    runs `transfer cancel ID`, or it expires (default 7 days of the registry's clock)."""


@transfer.command("send", hidden=True)
@click.argument("from_account")
@click.argument("to_account")
@_unit_options
@click.option("--expires-after", help="Four-eyes accounts: how long the pending transfer waits (7d, 36h, 90m).")
@command_id_option
@pass_ctx
def transfer_send(c: Ctx, from_account: str, to_account: str, unit: str, vintage: str, quantity: str,
                  expires_after: str | None, command_id: str | None, as_json: bool) -> None:
    """Move units between two accounts (pending, if the sending account needs two approvals)."""
    _append(c, "transfer", {"from_account": from_account, "to_account": to_account, "unit": unit,
                            "vintage": vintage, "quantity": quantity, "expires_after": expires_after},
            command_id, as_json)


@transfer.command("approve")
@click.argument("transfer_id")
@command_id_option
@pass_ctx
def transfer_approve(c: Ctx, transfer_id: str, command_id: str | None, as_json: bool) -> None:
    """Approve a pending transfer (another actor of the sending firm than the one who made it)."""
    _append(c, "transfer approve", {"transfer_id": transfer_id}, command_id, as_json)


@transfer.command("cancel")
@click.argument("transfer_id")
@command_id_option
@pass_ctx
def transfer_cancel(c: Ctx, transfer_id: str, command_id: str | None, as_json: bool) -> None:
    """Cancel a pending transfer: its reserved units are free again."""
    _append(c, "transfer cancel", {"transfer_id": transfer_id}, command_id, as_json)


@click.command()
@click.option("--buyer", required=True)
@click.option("--seller", required=True)
@_unit_options
@click.option("--price", required=True, help="Yuan per tonne, at most 2 decimals.")
@click.option("--mode", required=True, help=_one_of(units.TRADE_MODES))
@click.option("--date", "date", required=True, help="Trade date YYYY-MM-DD.")
@command_id_option
@pass_ctx
def trade(c: Ctx, buyer: str, seller: str, unit: str, vintage: str, quantity: str, price: str, mode: str, date: str,
          command_id: str | None, as_json: bool) -> None:
    """Record a trade matched by the exchange (an exchange actor)."""
    _append(c, "trade", {"buyer": buyer, "seller": seller, "unit": unit, "vintage": vintage, "quantity": quantity,
                         "price": price, "mode": mode, "date": date}, command_id, as_json)


@click.group()
def emissions() -> None:
    """Verified emissions (MRV)."""


@emissions.command("verify")
@click.argument("firm_id")
@click.option("--year", required=True)
@click.option("--tonnes", required=True)
@click.option("--output", help="Verified output of a firm without facilities (e.g. supplied MWh).")
@click.option("--output-unit", help=_one_of(units.OUTPUT_UNITS))
@click.option("--facility", help="The facility verified (a firm with facilities verifies each one).")
@click.option("--generated-mwh", help="A unit's electricity generated (MWh).")
@click.option("--supplied-mwh", help="A unit's electricity supplied (MWh).")
@click.option("--heat-gj", help="A unit's heat supplied (GJ).")
@click.option("--load-factor", help="A unit's load (output) factor, a fraction: 0.50 for 50%.")
@click.option("--intensity", help="A new-sector facility's emission intensity (t per tonne of product).")
@command_id_option
@pass_ctx
def emissions_verify(c: Ctx, firm_id: str, year: str, tonnes: str, output: str | None, output_unit: str | None,
                     facility: str | None, generated_mwh: str | None, supplied_mwh: str | None,
                     heat_gj: str | None, load_factor: str | None, intensity: str | None,
                     command_id: str | None, as_json: bool) -> None:
    """Record a firm's (or one of its facilities') verified emissions for a year."""
    _append(c, "emissions verify", {"firm_id": firm_id, "year": year, "tonnes": tonnes, "output": output,
                                    "output_unit": output_unit, "facility": facility,
                                    "generated_mwh": generated_mwh, "supplied_mwh": supplied_mwh,
                                    "heat_gj": heat_gj, "load_factor": load_factor, "intensity": intensity},
            command_id, as_json)


@click.command()
@click.argument("firm_id")
@click.option("--year", required=True)
@_unit_options
@click.option("--from", "from_account", help="Forced compliance: surrender from this government account (or the"
              " frozen firm's own) on the firm's behalf (a regulator).")
@command_id_option
@pass_ctx
def surrender(c: Ctx, firm_id: str, year: str, unit: str, vintage: str, quantity: str, from_account: str | None,
              command_id: str | None, as_json: bool) -> None:
    """Surrender units against a firm's obligation (--from: forced compliance, by the regulator)."""
    _append(c, "surrender", {"firm_id": firm_id, "year": year, "unit": unit, "vintage": vintage,
                             "quantity": quantity, "from_account": from_account}, command_id, as_json)


@click.command()
@click.argument("account_id")
@_unit_options
@click.option("--reason", default="voluntary", show_default=True, help=_one_of(units.CANCEL_REASONS))
@command_id_option
@pass_ctx
def cancel(c: Ctx, account_id: str, unit: str, vintage: str, quantity: str, reason: str, command_id: str | None,
           as_json: bool) -> None:
    """Cancel (retire) units without counting them toward an obligation."""
    _append(c, "cancel", {"account_id": account_id, "unit": unit, "vintage": vintage, "quantity": quantity,
                          "reason": reason}, command_id, as_json)


@click.command()
@click.argument("position")
@click.option("--reason", required=True, help="Why: recorded with the reversal.")
@command_id_option
@pass_ctx
def reverse(c: Ctx, position: str, reason: str, command_id: str | None, as_json: bool) -> None:
    """Undo the issuance, transfer, surrender or verification at POSITION by a linked reversal (a regulator)."""
    _append(c, "reverse", {"position": position, "reason": reason}, command_id, as_json)


@click.command("import")
@click.argument("file", type=click.File("r"), required=False)
@click.option("--on-refusal", type=click.Choice(["stop", "continue"]), default="stop", show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=2000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--schema", is_flag=True, help="Print the JSON Schema of a line (from the input models) and exit.")
@pass_ctx
def import_(c: Ctx, file: Any, on_refusal: str, batch_size: int, as_json: bool, schema: bool) -> None:
    """Append commands from JSON lines (- for stdin), in atomic batches."""
    if schema:
        from commands.output import emit_json
        from ledger.inputs import import_schema

        emit_json(import_schema())
        return
    if file is None:
        raise click.UsageError("Missing argument 'FILE'.")
    from commands.importer import run_import

    run_import(c, file, on_refusal, batch_size, as_json)


COMMANDS = [init, actor, firm, facility, account, year, penalty, issue, allocate, transfer, trade, emissions, surrender,
            cancel, reverse, carry_over, import_]
