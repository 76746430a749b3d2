"""The `carbon-ledger` command group: global options, the context, and the mapping of errors to exit codes.

The commands live by what users do: commands/append.py (what records), commands/read.py (what reads),
commands/audit.py (audits), commands/scenario.py (simulate, demo). Exit codes (docs/cli.md): 0 done;
1 refused by a ledger rule; 2 bad input or usage; 3 store or integrity failure. Errors are one line on stderr,
never a traceback.
Heavy imports happen inside the commands, so a single append starts fast.
"""

from __future__ import annotations

import sys

import click

from commands import append, audit, read, scenario, server
from commands.context import Ctx
from ledger.errors import LedgerError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", envvar="CARBON_LEDGER_STORE", help="SQLite file (default ./carbon-ledger.db), postgresql://USER@HOST:PORT/DB[?schema=NAME],"
              " or a registry server https://HOST:PORT (http:// to a loopback address).")
@click.option("--as", "actor", envvar="CARBON_LEDGER_ACTOR", help="The actor the command runs as.")
@click.option("--key", envvar="CARBON_LEDGER_KEY", type=click.Path(dir_okay=False), help="Private key file to sign commands with.")
@click.option("--cacert", envvar="CARBON_LEDGER_CACERT", type=click.Path(dir_okay=False),
              help="CA certificate (PEM) to verify an https:// server with (default: the system's).")
@click.version_option(package_name="carbon-ledger", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, store: str | None, actor: str | None, key: str | None, cacert: str | None) -> None:
    """carbon-ledger: an event-sourced, hash-chained registry and trading ledger for carbon markets."""
    ctx.obj = Ctx(store, actor, key, cacert)
    ctx.call_on_close(ctx.obj.close)  # in-process callers (tests, embedding code) must not leak connections


# click 8.2+ raises this for a group named without its command (older versions print the help themselves)
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def one_line(message: str) -> str:
    """A message of several lines (a database driver's, say) as one line."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def _fail(code: str, message: str, exit_code: int) -> None:
    """One line on stderr: `error: MESSAGE`, or with --json {"error": {"code": CODE, "message": MESSAGE}}."""
    if "--json" in sys.argv[1:]:
        import orjson

        click.echo(orjson.dumps({"error": {"code": code, "message": message}}).decode(), err=True)
    else:
        click.echo(f"error: {message}", err=True)
    sys.exit(exit_code)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except _NO_ARGS_IS_HELP as e:  # `carbon-ledger` or `carbon-ledger actor` alone: the help, as git and gh do
        click.echo(e.ctx.get_help() if e.ctx is not None else cli.get_help(click.Context(cli)))
        sys.exit(0)
    except click.ClickException as e:  # one line, as every other error (click's own show() prints three)
        hint = ""
        if isinstance(e, click.UsageError) and e.ctx is not None:
            hint = f" (see {e.ctx.command_path} --help)"
        _fail("usage", f"{e.format_message()}{hint}".replace("\n", " "), 2 if e.exit_code == 2 else e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except LedgerError as e:
        for line in getattr(e, "lines", None) or ():  # a server's batch: its bad lines, as a local import prints them
            click.echo(line, err=True)
        _fail(e.code, one_line(e.message), e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as e:  # noqa: BLE001 - the promise: one line, never a traceback
        from eventsourcing.persistence import PersistenceError

        if isinstance(e, (PersistenceError, OSError)):
            _fail("store_error", f"store failure: {type(e).__name__}: {e}".splitlines()[0], 3)
        _fail("internal", f"internal: {type(e).__name__}: {e}".splitlines()[0], 3)


for _command in (*append.COMMANDS, *read.COMMANDS, audit.audit, scenario.simulate, scenario.demo,
                 server.serve_command):
    cli.add_command(_command)

# One example per command, shown at the end of its --help.
EXAMPLES = {
    "init": "carbon-ledger --key mee.pem init --regulator MEE --require-signatures",
    "actor add": "carbon-ledger --as MEE actor add SEEE --role exchange --public-key HEX",
    "actor key": "carbon-ledger --as MEE actor key SEEE --public-key HEX",
    "actor keygen": "carbon-ledger actor keygen --out seee.pem",
    "firm register": "carbon-ledger firm register F0001 --name 'Huaneng Unit 1' --sector power --region Hubei",
    "facility register": "carbon-ledger facility register F0001-U1 --firm F0001 --kind coal --rated-mw 600",
    "account open": "carbon-ledger account open T0001 --holder F0001 --kind trading",
    "account freeze": "carbon-ledger --as MEE account freeze F0001 --reason judicial --until 2025-06-30",
    "account unfreeze": "carbon-ledger --as MEE account unfreeze F0001",
    "account close": "carbon-ledger --as MEE account close T0001 --sweep-to GOV-HUBEI",
    "account policy": "carbon-ledger --as F0001-desk account policy F0001 --approvals 2",
    "transfer approve": "carbon-ledger --as F0001-cfo transfer approve P-000042",
    "transfer cancel": "carbon-ledger --as F0001-desk transfer cancel P-000042",
    "year open": "carbon-ledger year open 2024 --deadline 2025-12-31",
    "year close": "carbon-ledger year close 2024 --fine-multiple 5 --correct-by 2026-01-31",
    "year enforce": "carbon-ledger year enforce 2024",
    "penalty record": "carbon-ledger penalty record F0001 --article 21 --fine 50000 --year 2024 --reason 'late report'",
    "penalty cut": "carbon-ledger penalty cut F0001 --year 2025 --share 0.5",
    "issue": "carbon-ledger issue F0001 --unit CEA --vintage 2024 --quantity 1000 --basis pre-allocation",
    "carry-over show": "carbon-ledger carry-over show F0001 --json",
    "carry-over apply": "carbon-ledger --as F0001-desk carry-over apply F0001 --vintage 2024 --quantity 5000",
    "allocate": "carbon-ledger allocate --all --year 2024 --step pre",
    "transfer": "carbon-ledger transfer F0001 T0001 --unit CEA --vintage 2024 --quantity 100",
    "trade": ("carbon-ledger trade --buyer F0002 --seller F0001 --unit CEA --vintage 2024 --quantity 100"
              " --price 88.50 --mode listed --date 2024-06-03"),
    "emissions verify": "carbon-ledger emissions verify F0001 --year 2024 --tonnes 950 --output 1200 --output-unit MWh",
    "surrender": "carbon-ledger surrender F0001 --year 2024 --unit CEA --vintage 2024 --quantity 950",
    "cancel": "carbon-ledger cancel T0001 --unit CEA --vintage 2024 --quantity 10 --reason voluntary",
    "reverse": "carbon-ledger --as MEE reverse 42 --reason 'issued to the wrong account'",
    "import": "carbon-ledger import commands.jsonl --on-refusal continue",
    "balances": "carbon-ledger balances F0001 --as-of 120",
    "history": "carbon-ledger history F0001 --csv > f0001.csv",
    "market": "carbon-ledger market --by day --unit CEA --plot market.png",
    "compliance": "carbon-ledger compliance --year 2024 --firm F0001",
    "coverage": "carbon-ledger coverage --year 2024 --national-total 11000000000",
    "rules show": "carbon-ledger rules show --year 2024 --json",
    "rules publish": "carbon-ledger --as MEE rules publish plan-2027.json",
    "project": "carbon-ledger project --follow --interval 0.5",
    "audit head": "carbon-ledger audit head --json",
    "audit verify": "carbon-ledger audit verify --checkpoint checkpoint.json",
    "audit replay": "carbon-ledger audit replay",
    "audit export": "carbon-ledger audit export --as-of 1000 > events.jsonl",
    "audit checkpoint": "carbon-ledger --as MEE --key mee.pem audit checkpoint > checkpoint.json",
    "simulate": "carbon-ledger --store china.db simulate china-2021-2024 --scale 0.1 --seed 1",
    "demo": "carbon-ledger demo",
    "serve": "carbon-ledger --store registry.db serve --port 8080",
}


def _with_example(command: click.Command, path: str) -> None:
    if isinstance(command, click.Group):
        if path in EXAMPLES:  # a group that is also a command (transfer FROM TO)
            command.epilog = f"\b\nExample:\n  {EXAMPLES[path]}"
        for name, sub in command.commands.items():
            _with_example(sub, path if sub.hidden else f"{path} {name}".strip())
    elif path in EXAMPLES:
        command.epilog = f"\b\nExample:\n  {EXAMPLES[path]}"


_with_example(cli, "")


if __name__ == "__main__":
    main()
