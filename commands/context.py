"""What every command shares: the store, the actor and the key it runs with, and the registry it opens."""

from __future__ import annotations

import click

from ledger.errors import StoreError


class Ctx:
    def __init__(self, store: str | None, actor: str | None, key: str | None, cacert: str | None = None):
        self.store = store
        self.actor = actor
        self.key = key
        self.cacert = cacert
        self._registry = None
        self._remote = None

    @property
    def remote(self):
        """The client of a registry server (`--store https://HOST:PORT`), or None for a local store."""
        from commands.remote import Client, is_remote

        if not is_remote(self.store):
            return None
        if self._remote is None:
            self._remote = Client(self.store, self.actor, self.key, self.cacert)
        return self._remote

    def need_local(self) -> None:
        """Refuse (exit 2) a command that has no server counterpart when the store is a server."""
        from commands.remote import is_remote, needs_local

        if is_remote(self.store):
            ctx = click.get_current_context(silent=True)
            raise needs_local(ctx.command_path if ctx is not None else "this command", self.store)

    @property
    def registry(self):
        self.need_local()
        if self._registry is None:
            from ledger.registry import Registry
            from ledger.store import check_store_path, parse_store

            cfg = parse_store(self.store)
            check_store_path(cfg, must_exist=False)
            self._registry = Registry(cfg)
        return self._registry

    def existing_recorder(self):
        """The recorder of a store that must exist already (reads never create a store)."""
        from ledger.store import check_store_path, parse_store, store_exists

        self.need_local()
        cfg = parse_store(self.store)
        check_store_path(cfg, must_exist=True)
        if not store_exists(cfg):
            raise StoreError(f"no store at {cfg.path or cfg.url}: record something first, or pass --store")
        return self.registry.recorder

    def catch_up(self, unsaved: list | None = None) -> tuple[dict, int]:
        """The read models at the head: caught up and stored, or on a read-only store, caught up in memory
        (the history rows that could not be stored go to `unsaved`)."""
        from ledger.store import parse_store, read_only
        from projections import runner

        rec = self.existing_recorder()
        if read_only(parse_store(self.store)):
            return runner.catch_up(rec, unsaved=[] if unsaved is None else unsaved)
        return runner.catch_up(rec)

    def close(self) -> None:
        """Close the registry a command opened (its connection pool on PostgreSQL, its file on SQLite)."""
        if self._registry is not None:
            self._registry.close()
            self._registry = None
        if self._remote is not None:
            self._remote.close()
            self._remote = None


pass_ctx = click.make_pass_decorator(Ctx)
