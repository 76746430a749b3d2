"""`carbon-ledger import FILE`: JSON lines of commands, validated whole before anything is appended,
then applied in order in atomic batches. Rerunning a file appends only what is missing (command ids)."""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import click
import orjson

from ledger.errors import BadInput, LedgerError, Refused

MAX_LINE_BYTES = 64 * 1024
MAX_REPORTED = 20  # bad lines printed one by one; the count says how many there were in all


def _keys(value: Any) -> int:
    """How many object keys a parsed JSON value holds, nested ones included."""
    if isinstance(value, dict):
        return len(value) + sum(_keys(v) for v in value.values() if isinstance(v, (dict, list)))
    if isinstance(value, list):
        return sum(_keys(v) for v in value if isinstance(v, (dict, list)))
    return 0


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for k, v in pairs:
        if k in seen:
            raise BadInput(f"the key {k!r} appears twice")
        seen[k] = v
    return seen


_KEY_END = re.compile(r'"\s*:')  # a key's closing quote and its colon (or, rarely, a string that starts with ':')
_PAIRS = json.JSONDecoder(object_pairs_hook=_refuse_duplicate_keys)


def _has_no_duplicate_keys(line: str, obj: Any) -> None:
    """orjson keeps the last of two equal keys; a line must not say two things. Every key ends with a quote and a
    colon, so a line with no more such ends than parsed keys has no duplicate (the common case, checked at
    once: a timestamp's colons are not counted); otherwise (a string value that starts with a colon, or a
    duplicate) the line is parsed again, pair by pair."""
    if len(_KEY_END.findall(line)) == _keys(obj):
        return
    _PAIRS.decode(line)


def _parse_line(n: int, line: str) -> Any:
    """One line as a Command, or BadInput naming the line (and its command id when it has one)."""
    from ledger.inputs import parse_command
    from ledger.registry import Command
    from ledger.units import parse_command_id

    if len(line) > MAX_LINE_BYTES:
        raise BadInput(f"line {n}: longer than {MAX_LINE_BYTES} bytes")
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise BadInput(f"line {n}: not JSON ({e})") from None
    if not isinstance(obj, dict):
        raise BadInput(f"line {n}: not a JSON object")
    try:
        _has_no_duplicate_keys(line, obj)
    except BadInput as e:
        raise BadInput(f"line {n}: {e.message}") from None
    name = obj.pop("command", None)
    cid = obj.pop("command_id", None)
    actor = obj.pop("actor", None)
    signature = obj.pop("signature", None)
    expires = obj.pop("signature_expires", None)
    if not isinstance(name, str):
        raise BadInput(f"line {n}: no \"command\"")
    if not isinstance(cid, str) or not cid:
        raise BadInput(f"line {n}: no \"command_id\" (every imported command needs one, so a rerun is safe)")
    try:
        parse_command_id(cid)
    except BadInput as e:
        raise BadInput(f"line {n}: {e.message}") from None
    try:
        args = parse_command(name, obj)
    except BadInput as e:
        raise BadInput(f"line {n} ({cid}): {e.message}") from None
    if signature is not None and not isinstance(signature, str):
        raise BadInput(f"line {n} ({cid}): \"signature\" must be a hex string")
    if (signature is None) != (expires is None) or (expires is not None and not isinstance(expires, str)):
        raise BadInput(f"line {n} ({cid}): \"signature\" and \"signature_expires\" (YYYY-MM-DDTHH:MM:SSZ)"
                       " go together")
    if actor is not None:
        from ledger.units import parse_id

        try:
            parse_id(actor, "actor")
        except BadInput as e:
            raise BadInput(f"line {n} ({cid}): {e.message}") from None
    return Command(name, args, cid, actor, signature, checked=True, expires=expires)


def parse_lines(file: TextIO) -> list[tuple[int, Any]]:
    """Every line as (line number, Command). Any bad line refuses the whole file: each is reported on
    stderr (the first MAX_REPORTED of them), then one line with their count, and nothing is appended."""
    cmds = []
    bad: list[str] = []
    count = 0
    try:
        for n, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                cmds.append((n, _parse_line(n, line)))
            except BadInput as e:
                count += 1
                if len(bad) < MAX_REPORTED:
                    bad.append(e.message)
    except UnicodeDecodeError as e:
        raise BadInput(f"{getattr(file, 'name', 'the file')}: not UTF-8 text ({e.reason})") from None
    if count == 1:
        raise BadInput(bad[0])
    if count:
        for message in bad:
            click.echo(message, err=True)
        more = f", the first {MAX_REPORTED} shown" if count > MAX_REPORTED else ""
        raise BadInput(f"{count} bad lines{more}; nothing was appended")
    return cmds


@contextmanager
def _parsed_commands_kept_out_of_gc() -> Iterator[None]:
    """The cyclic GC rescans every live object as the heap grows; the parsed commands of a big file
    are millions of them, live until the end and never cyclic garbage. So: no collections while
    they are parsed, then freeze them (collections still run for everything made afterwards).
    Memory and results are the same; a 200k-line import spends ~20% less CPU."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.freeze()


def run_import(c: Any, file: TextIO, on_refusal: str, batch_size: int, as_json: bool) -> None:
    try:
        _run_import(c, file, on_refusal, batch_size, as_json)
    finally:
        gc.unfreeze()


def _run_import(c: Any, file: TextIO, on_refusal: str, batch_size: int, as_json: bool) -> None:
    from commands.output import progress_bar

    with _parsed_commands_kept_out_of_gc():
        cmds = parse_lines(file)
    if c.actor:
        for _n, cmd in cmds:
            cmd.actor = cmd.actor or c.actor
    if getattr(c, "remote", None) is not None:
        _import_remote(c.remote, cmds, on_refusal, batch_size, as_json)
        return
    if getattr(c, "key", None):  # the registry signs every unsigned line as the --as actor, as the CLI does
        from ledger import signing

        key = signing.load_private(c.key)
        for _n, cmd in cmds:
            if cmd.signature is None:
                cmd.sign_with = key
    reg = c.registry
    applied = replayed = 0
    refusals: list[dict[str, Any]] = []
    stopped = False
    with progress_bar("importing") as progress:
        for i in range(0, len(cmds), batch_size):
            chunk = cmds[i : i + batch_size]
            results = reg.execute_batch([cmd for _n, cmd in chunk], on_refusal=on_refusal)
            for (n, cmd), r in zip(chunk, results):
                if isinstance(r, LedgerError):
                    refusals.append({"line": n, "command_id": cmd.command_id, "error": r.message,
                                     "code": r.code, "exit_code": r.exit_code})
                elif r.replayed:
                    replayed += 1
                else:
                    applied += 1
            if progress is not None:
                progress(i + len(chunk), len(cmds))
            if refusals and on_refusal == "stop":
                stopped = True
                break
    pos, h = reg.head()
    _finish(len(cmds), applied, replayed, refusals, stopped, pos, h, as_json)


def _import_remote(client: Any, cmds: list[tuple[int, Any]], on_refusal: str, batch_size: int,
                   as_json: bool) -> None:
    """The same import against a registry server: every line is checked here first (as locally), signed for
    the server's store with --key when it is not signed already, then sent in batches (each one transaction,
    POST /v1/commands/batch). A refusal stops the rest with --on-refusal stop, as locally."""
    from commands.limits import MAX_BATCH_BYTES, MAX_BATCH_LINES
    from commands.output import progress_bar
    from commands.remote import error_for_code

    lines = []
    for n, cmd in cmds:
        if cmd.signature is None and not client.key_path:
            raise Refused(f"line {n} ({cmd.command_id}): every command sent to a server is signed: pass --key"
                          " (or sign the line)", code="unsigned")
        line = client.signed_line(cmd.name, cmd.args, cmd.command_id, cmd.actor, cmd.signature, cmd.expires)
        lines.append((n, cmd, line, len(orjson.dumps(line)) + 1))
    size = min(batch_size, MAX_BATCH_LINES)
    applied = replayed = 0
    refusals: list[dict[str, Any]] = []
    stopped = False
    pos, h = None, None
    with progress_bar("importing") as progress:
        i = 0
        while i < len(lines):
            chunk, nbytes = [], 0
            while i < len(lines) and len(chunk) < size and (not chunk or nbytes + lines[i][3] <= MAX_BATCH_BYTES):
                chunk.append(lines[i])
                nbytes += lines[i][3]
                i += 1
            answer = client.execute_batch([line for _n, _c, line, _b in chunk], on_refusal)
            applied += answer["applied"]
            replayed += answer["already_applied"]
            pos, h = answer["position"], answer["hash"]
            for r in answer["refused"]:
                n, cmd = chunk[r["line"] - 1][:2]
                e = error_for_code(r["error"]["code"], r["error"]["message"])
                refusals.append({"line": n, "command_id": cmd.command_id, "error": e.message, "code": e.code,
                                 "exit_code": e.exit_code})
            if progress is not None:
                progress(i, len(lines))
            if answer["stopped"]:
                stopped = True
                break
    if pos is None:
        pos, h = client.head()
    _finish(len(cmds), applied, replayed, refusals, stopped, pos, h, as_json)


def _finish(lines: int, applied: int, replayed: int, refusals: list[dict[str, Any]], stopped: bool, pos: int,
            h: str, as_json: bool) -> None:
    from commands.output import emit_json

    summary = {"lines": lines, "applied": applied, "already_applied": replayed, "refused": refusals,
               "stopped": stopped, "position": pos, "hash": h}
    if as_json:
        emit_json(summary)
    else:
        click.echo(f"applied {applied}, already applied {replayed}, refused {len(refusals)}; head {pos}")
    for r in refusals:
        click.echo(f"line {r['line']} ({r['command_id']}): {r['error']}", err=True)
    if refusals:
        first = refusals[0]
        raise_code = max(r["exit_code"] for r in refusals)
        if stopped:
            raise Refused(f"import stopped at line {first['line']} ({first['command_id']}); "
                          f"{applied} commands before it were applied", code=first["code"])
        raise SystemExit(raise_code)
parse_line = _parse_line  # one line of the import format as a Command (also what the server takes)
