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

from commands import append, audit, read, scenario
from commands.context import Ctx
from ledger.errors import LedgerError


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


for _command in (*append.COMMANDS, *read.COMMANDS, audit.audit, scenario.simulate, scenario.demo):
    cli.add_command(_command)


if __name__ == "__main__":
    main()
