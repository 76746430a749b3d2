"""`carbon-ledger audit ...`: head, verify (chain, signatures, checkpoint), replay, export, checkpoint."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import orjson

from commands.context import Ctx, pass_ctx
from ledger.errors import BadInput, IntegrityFailure, Refused


def run_checkpoint(c: Any) -> None:
    from ledger import signing

    if not c.key:
        raise BadInput("audit checkpoint needs the regulator's private key: --key FILE")
    key = signing.load_private(c.key)
    pub = signing.public_hex(key)
    actor = c.actor
    if c.remote is not None:  # the server checks the key (a signed request) and names the actor's role
        if not actor:
            raise BadInput("audit checkpoint on a server needs the regulator actor: --as ACTOR")
        if c.remote.whoami()["role"] != "regulator":
            raise Refused(f"actor {actor} (not a regulator) lacks the right to sign a checkpoint",
                          code="not_permitted")
        pos, h = c.remote.head()
        _emit_checkpoint(key, pub, pos, h, actor)
        return
    reg = c.registry
    st = reg.state
    if st.enforced:
        a = st.actors.get(actor or "")
        if a is None or a.role != "regulator":
            raise Refused(f"actor {actor} (not a regulator) lacks the right to sign a checkpoint",
                          code="not_permitted")
        if a.public_key and a.public_key != pub:
            raise Refused(f"the key given is not the registered key of {actor}", code="bad_signature")
    pos, h = reg.head()
    _emit_checkpoint(key, pub, pos, h, actor)


def _emit_checkpoint(key: Any, pub: str, pos: int, h: str, actor: str | None) -> None:
    from commands.output import emit_json
    from ledger import signing
    from ledger.verify import checkpoint_payload

    cp = {"position": pos, "hash": h, "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
          "actor": actor or "operator"}
    cp["public_key"] = pub
    cp["signature"] = signing.sign(key, checkpoint_payload(cp))
    emit_json(cp)


def run_verify(c: Any, checkpoint: str | None, as_json: bool) -> None:
    """Re-execute the whole log (ledger.verify): exit 3 naming the first position that does not follow."""
    from commands.output import emit_json, progress_bar
    from ledger.verify import checkpoint_payload, verify_log

    c.need_local()  # re-execution reads the whole store: verify an export or a copy locally
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
    with progress_bar("verifying") as progress:
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
def _writable_copy_if_read_only(c: Any) -> Iterator[Any]:
    """A read-only store is replayed on a copy in a temporary directory (SQLite's backup reads the store and
    writes nothing to it): the replay first brings the stored read models to the head, which writes."""
    from ledger.store import parse_store, read_only

    cfg = parse_store(c.store)
    if not read_only(cfg):
        yield None
        return
    import sqlite3
    import tempfile

    from commands.context import Ctx

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "replay.db")
        src = sqlite3.connect(f"file:{cfg.path}?mode=ro", uri=True)
        try:
            with sqlite3.connect(path) as dst:
                src.backup(dst)
        finally:
            src.close()
        copy = Ctx(path, None, None)
        try:
            yield copy
        finally:
            copy.close()


def run_replay(c: Any, as_json: bool) -> None:
    """Rebuild every derived table from position 0 and compare: read models, history, as-of checkpoints and
    the write-side snapshot."""
    from commands.output import emit_json, progress_bar
    from ledger.verify import SnapshotFold
    from projections.audit import replay_compare

    c.need_local()
    rec = c.existing_recorder()
    with _writable_copy_if_read_only(c) as copy, progress_bar("replaying") as progress:
        target = copy.existing_recorder() if copy is not None else rec
        snapshot = SnapshotFold(target)
        res = replay_compare(target, progress, on_event=snapshot)
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


# ---- the commands ------------------------------------------------------------------------------

@click.group()
def audit() -> None:
    """Verify, replay, export; head and checkpoints."""


@audit.command("head")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def audit_head(c: Ctx, as_json: bool) -> None:
    """The last position and its hash (publish it; pin it)."""
    from commands.output import emit_json

    pos, h = c.remote.head() if c.remote is not None else c.existing_recorder().head()
    if as_json:
        emit_json({"position": pos, "hash": h})
    else:
        click.echo(f"{pos} {h}")


@audit.command("verify")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), help="A signed checkpoint this log must extend.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def audit_verify(c: Ctx, checkpoint: str | None, as_json: bool) -> None:
    """Re-execute the log: the hash chain, and every command decided again against the state before it, its
    events compared byte for byte; signatures, command ids, the snapshot. Exit 3 at the first bad position."""
    run_verify(c, checkpoint, as_json)


@audit.command("replay")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def audit_replay(c: Ctx, as_json: bool) -> None:
    """Rebuild every read model (states, account history, as-of checkpoints) and the write-side snapshot from
    position 0 and compare them with the stored ones."""
    run_replay(c, as_json)


@audit.command("export")
@click.option("--as-of", "as_of", type=click.IntRange(0))
@pass_ctx
def audit_export(c: Ctx, as_of: int | None) -> None:
    """Write the event catalogue as JSON lines to stdout (from a server: whole lines to a regulator's signed
    request, positions, types, times and hashes to anyone else)."""
    import sys

    out = sys.stdout.buffer
    if c.remote is not None:
        lines = c.remote.export(as_of)
    else:
        from projections.audit import export

        lines = export(c.existing_recorder(), as_of)
    for line in lines:
        out.write(line + b"\n")


@audit.command("checkpoint")
@pass_ctx
def audit_checkpoint(c: Ctx) -> None:
    """Sign (position, head hash, time) with the regulator's key (--key) and print it."""
    run_checkpoint(c)
