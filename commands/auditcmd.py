"""Audit commands: verify (chain, signatures, checkpoint), replay, checkpoint."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import orjson

from ledger.errors import BadInput, IntegrityFailure, Refused


def run_checkpoint(c: Any) -> None:
    from commands.output import emit_json
    from ledger import signing
    from ledger.verify import checkpoint_payload

    if not c.key:
        raise BadInput("audit checkpoint needs the regulator's private key: --key FILE")
    reg = c.registry
    key = signing.load_private(c.key)
    pub = signing.public_hex(key)
    st = reg.state
    actor = c.actor
    if st.enforced:
        a = st.actors.get(actor or "")
        if a is None or a.role != "regulator":
            raise Refused(f"actor {actor} (not a regulator) lacks the right to sign a checkpoint")
        if a.public_key and a.public_key != pub:
            raise Refused(f"the key given is not the registered key of {actor}")
    pos, h = reg.head()
    cp = {"position": pos, "hash": h, "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
          "actor": actor or "operator"}
    cp["public_key"] = pub
    cp["signature"] = signing.sign(key, checkpoint_payload(cp))
    emit_json(cp)


def run_verify(c: Any, checkpoint: str | None, as_json: bool) -> None:
    """Re-execute the whole log (ledger.verify): exit 3 naming the first position that does not follow."""
    from commands.output import emit_json
    from ledger.verify import checkpoint_payload, verify_log

    cp = None
    if checkpoint:
        try:
            with open(checkpoint, "rb") as f:
                cp = orjson.loads(f.read())
            checkpoint_payload(cp)
            int(cp["position"])
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise BadInput(f"checkpoint {checkpoint} is not a checkpoint file: {e}") from None
    rec = c.existing_recorder()
    with _progress("verifying") as progress:
        res = verify_log(rec, cp, progress)
    if res["ok"]:
        head = rec.head()
        if head[0] != res["position"]:
            res = {"ok": False, "position": head[0], "reason": f"the head says {head[0]} but the log ends at"
                   f" {res['position']}"}
    if as_json:
        emit_json(res)
    elif res["ok"]:
        roles = "roles enforced" if res["roles_enforced"] else "open store: roles are not enforced"
        extra = f"; extends checkpoint {cp['position']}" if cp else ""
        click.echo(f"chain verified: {res['position']} events, {res['commands']} commands re-executed, head"
                   f" {res['hash']}; {res['signatures_checked']} signatures checked; {roles}{extra}")
    if not res["ok"]:
        raise IntegrityFailure(f"integrity failure at position {res['position']}: {res['reason']}",
                               position=res["position"])


@contextmanager
def _progress(what: str) -> Iterator[Any]:
    """A transient progress bar on a terminal (stderr), nothing otherwise; the cursor is always restored."""
    import sys

    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True)
    task = bar.add_task(what, total=None)

    def progress(done: int, total: int) -> None:
        bar.update(task, completed=done, total=max(total, 1))

    with bar:
        yield progress


def run_replay(c: Any, as_json: bool) -> None:
    """Rebuild every derived table from position 0 and compare: read models, history, as-of checkpoints and
    the write-side snapshot."""
    from commands.output import emit_json
    from ledger.verify import SnapshotFold
    from projections.audit import replay_compare

    rec = c.existing_recorder()
    snapshot = SnapshotFold(rec)
    with _progress("replaying") as progress:
        res = replay_compare(rec, progress, on_event=snapshot)
    res["differences"] += snapshot.differences(res["position"])
    res["ok"] = not res["differences"]
    res["projections"] = [*res["projections"], "ledger snapshot"]
    if as_json:
        emit_json(res)
    elif res["ok"]:
        click.echo(f"replay from 0 to {res['position']} matches the stored read models ({', '.join(res['projections'])})")
    else:
        for d in res["differences"]:
            click.echo(d)
    if not res["ok"]:
        raise IntegrityFailure(f"replay differs from the stored read models: {'; '.join(res['differences'])}")
