"""The public transparency pages of `carbon-ledger serve`: what a regulator publishes, as web pages (server-
rendered with Jinja2, no JavaScript) in English and Simplified Chinese (`?lang=zh`), and as open data (CSV and
JSON under /data/v1/, commands/pages/opendata.py).

Every figure comes from the read functions the CLI's `--json` uses, on the read models (compliance, market),
at the head or `?as_of=N`; a page says the position and hash it was computed at. The states read at one
position are kept (a few positions), so a page costs a head lookup and the rendering. Pages are public: they
show nothing of an account's holdings, transfers or trades. Bad input answers a 400 page, an unknown year or
firm a 404 page, never a 500."""


import threading
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from ledger.errors import BadInput, LedgerError
from ledger.units import UNIT_KINDS

from . import opendata
from .i18n import LANGS, translator

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500
CACHED_POSITIONS = 8  # states kept: the head and a few as-of positions
NAMES = ["market", "compliance"]  # the read models the pages read (no balances: nothing private)


class NotFound(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Source:
    """The read side the pages read: the server's reader registry (under the server's lock), with the states
    of the last few positions kept."""

    def __init__(self, registry: Callable[[], Any], read_only: bool, checkpoint: str | None) -> None:
        self.registry = registry
        self.read_only = read_only
        self.checkpoint_file = checkpoint
        self.cache: OrderedDict[int, tuple[dict[str, Any], int, str]] = OrderedDict()
        self.lock = threading.Lock()

    def at(self, as_of: int | None) -> tuple[dict[str, Any], int, str]:
        """(states, position, hash) at the head or at `as_of`."""
        from projections import runner

        rec = self.registry().recorder
        head_pos, head_hash = rec.head()
        if as_of is not None and not 0 <= as_of <= head_pos:
            raise BadInput(f"as_of {as_of} is outside 0..{head_pos}")
        key = head_pos if as_of is None else as_of
        with self.lock:
            hit = self.cache.get(key)
            if hit is not None:
                self.cache.move_to_end(key)
                return hit
        if as_of is None:
            sts, pos = runner.catch_up(rec, unsaved=[]) if self.read_only else runner.catch_up(rec)
        else:
            sts, pos = runner.as_of(rec, as_of, NAMES), as_of
        out = ({n: sts[n] for n in NAMES}, pos, head_hash if pos == head_pos else (rec.hash_at(pos) or ""))
        with self.lock:
            self.cache[pos] = out
            while len(self.cache) > CACHED_POSITIONS:
                self.cache.popitem(last=False)
        return out

    def checkpoint(self) -> dict[str, Any] | None:
        """The signed checkpoint the server was given (`serve --checkpoint FILE`, read again on each request so
        that a new one is published by replacing the file), with whether it holds: its signature by the key it
        names, and the log's hash at its position. None without one."""
        if not self.checkpoint_file:
            return None
        import orjson

        from ledger import signing
        from ledger.verify import checkpoint_payload

        fields = ("position", "hash", "time", "actor", "public_key", "signature")
        try:
            with open(self.checkpoint_file, "rb") as f:
                cp = orjson.loads(f.read())
        except FileNotFoundError:
            return None  # none published yet
        except (OSError, orjson.JSONDecodeError) as e:
            cp = {"problem": f"not a checkpoint file: {type(e).__name__}"}
        try:
            payload = checkpoint_payload(cp)
            position = int(cp["position"])
            signed = signing.verify(cp["public_key"], cp["signature"], payload)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            return {**dict.fromkeys(fields), "valid": False, "signature_valid": False, "matches_log": False,
                    "signed_by_regulator": False,
                    "problem": cp.get("problem") if isinstance(cp, dict) and "problem" in cp
                    else f"not a checkpoint file: {type(e).__name__}"}
        reg = self.registry()
        actor = reg.state.actors.get(cp.get("actor") or "")
        regulator = not reg.state.enforced or (actor is not None and actor.role == "regulator")
        matches = reg.recorder.hash_at(position) == cp["hash"]
        return {**{k: cp.get(k) for k in fields}, "problem": None, "valid": bool(signed and matches and regulator), "signature_valid": bool(signed),
                "matches_log": bool(matches), "signed_by_regulator": bool(regulator)}


# ---- query parameters: each checked here, a bad one is a 400 --------------------------------------------
def _int(q: Any, name: str, low: int, high: int | None = None) -> int | None:
    v = q.get(name)
    if v is None or v == "":
        return None
    try:
        n = int(v)
    except ValueError:
        raise BadInput(f"{name} is a whole number, not {v!r}") from None
    if n < low or (high is not None and n > high):
        raise BadInput(f"{name} is between {low} and {high}" if high is not None else f"{name} is at least {low}")
    return n


def _lang(q: Any) -> str:
    lang = q.get("lang") or "en"
    if lang not in LANGS:
        raise BadInput(f"lang is one of {', '.join(LANGS)}")
    return lang


def _year(text: str) -> int:
    try:
        y = int(text)
    except ValueError:
        raise BadInput(f"a year is a whole number, not {text!r}") from None
    if not 1900 <= y <= 9999:
        raise BadInput(f"year {y} is out of range")
    return y


def _file(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or ext not in ("csv", "json"):
        raise NotFound(f"{name}: the open-data files end in .csv or .json")
    return stem, ext


# ---- display: figures as the CLI's table shows them (thousands separators); never recomputed -----------
def shown(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, str):
        try:
            if "." in v:
                d = Decimal(v)
                return f"{d:,.{len(v.split('.')[1])}f}"
        except InvalidOperation:
            pass
    return str(v)


YEAR_LIKE = {"year", "vintage", "position"}


def cell(col: str, v: Any) -> str:
    return str(v) if col in YEAR_LIKE and v is not None else shown(v)


def _sort_key(col: str) -> Callable[[dict[str, Any]], Any]:
    def key(r: dict[str, Any]) -> Any:
        v = r.get(col)
        if isinstance(v, str) and col in ("fine",):
            return Decimal(v)
        return v

    return key


def sort_rows(rows: list[dict[str, Any]], col: str, order: str) -> list[dict[str, Any]]:
    """Sorted by `col` (ties by firm id), rows without a value last in either order."""
    have = [r for r in rows if r.get(col) is not None]
    without = [r for r in rows if r.get(col) is None]
    have.sort(key=lambda r: r["firm_id"])
    have.sort(key=_sort_key(col), reverse=order == "desc")
    return have + sorted(without, key=lambda r: r["firm_id"])


def router(source: Source, reading: Callable[..., Any]) -> Any:
    """The pages and the open-data files, on `reading` (the server's: one reader at a time, in a thread)."""
    from fastapi import APIRouter, Request
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    from projections.compliance import coverage as coverage_of
    from projections.compliance import rows as compliance_rows
    from projections.market import report

    from .chart import svg

    env = Environment(loader=PackageLoader("commands.pages", "templates"), autoescape=select_autoescape(),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["shown"] = shown
    api = APIRouter()  # the pages are left out of the OpenAPI document; the checkpoint and open data are in it

    def page(request: Request, template: str, title: str, lang: str, at: tuple[Any, int, str] | None,
             status: int = 200, **ctx: Any) -> HTMLResponse:
        t = translator(lang)
        q = request.query_params
        as_of = q.get("as_of") if at is not None else None

        def link(path: str, **params: Any) -> str:
            base = {"lang": "zh" if lang == "zh" else None, "as_of": as_of}
            merged = {k: v for k, v in {**base, **params}.items() if v not in (None, "")}
            return path + ("?" + urlencode(merged) if merged else "")

        other = {**dict(q), "lang": "en" if lang == "zh" else "zh"}
        html = env.get_template(template).render(
            t=t, lang=lang, title=title, link=link, cell=cell, request_path=request.url.path,
            other_lang=request.url.path + "?" + urlencode(other),
            position=at[1] if at else None, hash=at[2] if at else None, as_of=as_of, **ctx)
        return HTMLResponse(html, status_code=status)

    def error_page(request: Request, status: int, message: str) -> HTMLResponse:
        try:
            lang = _lang(request.query_params)
        except BadInput:
            lang = "en"
        t = translator(lang)
        title = t("not_found") if status == 404 else t("bad_request") if status == 400 else t("error")
        return page(request, "error.html", title, lang, None, status=status, message=message)

    async def html(request: Request, build: Callable[[Any, str, tuple[Any, int, str]], HTMLResponse]) -> Any:
        """Parse lang and as_of, read the states (in the reader's thread), build the page; errors as pages."""
        try:
            lang = _lang(request.query_params)
            as_of = _int(request.query_params, "as_of", 0)
            at = await reading(source.at, as_of)
            return build(lang, at)
        except NotFound as e:
            return error_page(request, 404, e.message)
        except BadInput as e:
            return error_page(request, 400, e.message)
        except LedgerError as e:
            return error_page(request, 503, e.message)

    async def data(request: Request, name: str, build: Callable[[str, tuple[Any, int, str]], Any]) -> Any:
        """An open-data file: build(stem, at) gives (table, columns, rows, params)."""
        try:
            stem, ext = _file(name)
            as_of = _int(request.query_params, "as_of", 0)
            at = await reading(source.at, as_of)
            table, columns, rows, params = build(stem, at)
        except NotFound as e:
            return JSONResponse({"error": {"code": "not_found", "message": e.message}}, status_code=404)
        except BadInput as e:
            return JSONResponse({"error": {"code": e.code, "message": e.message}}, status_code=400)
        except LedgerError as e:
            return JSONResponse({"error": {"code": e.code, "message": e.message}}, status_code=503)
        _sts, pos, h = at
        if ext == "json":
            return Response(opendata.as_json(table, pos, h, columns, rows, **params), media_type="application/json")
        return Response(opendata.as_csv(table, pos, h, columns, rows, **params), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'inline; filename="{table}-{stem}.csv"'})

    # ---- the reads, shared by the pages and the files --------------------------------------------------
    def period_of(st: dict[str, Any], year: int, pos: int) -> None:
        if year not in st["year_period"]:
            raise NotFound(f"no compliance year {year} has been opened (at position {pos})")

    def unit_of(q: Any) -> str:
        unit = q.get("unit") or "CEA"
        if unit not in UNIT_KINDS:
            raise BadInput(f"unit is one of {', '.join(UNIT_KINDS)}")
        return unit

    def years(st: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for label, (first, *_rest) in sorted(st["periods"].items(), key=lambda kv: kv[1][0]):
            out.append({"period": label, "year": first, **coverage_of(st, first)})
        return out

    # ---- pages ---------------------------------------------------------------------------------------
    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home(request: Request) -> Any:
        cp = await reading(source.checkpoint)

        def build(lang: str, at: tuple[Any, int, str]) -> HTMLResponse:
            sts, pos, _h = at
            t = translator(lang)
            markets = {u: report(sts["market"], u) for u in UNIT_KINDS}
            return page(request, "home.html", t("home_title"), lang, at, markets=markets,
                        years=years(sts["compliance"]), checkpoint=cp)

        return await html(request, build)

    @api.get("/market", response_class=HTMLResponse, include_in_schema=False)
    async def market(request: Request) -> Any:
        def build(lang: str, at: tuple[Any, int, str]) -> HTMLResponse:
            unit = unit_of(request.query_params)
            rep = report(at[0]["market"], unit)
            t = translator(lang)
            return page(request, "market.html", f"{t('market_title')}: {unit}", lang, at, unit=unit, rep=rep,
                        chart=svg(rep["days"], t, unit), units=UNIT_KINDS, yearly=opendata.MARKET_YEARLY)

        return await html(request, build)

    @api.get("/compliance", response_class=HTMLResponse, include_in_schema=False)
    async def compliance_latest(request: Request) -> Any:
        def build(lang: str, at: tuple[Any, int, str]) -> HTMLResponse:
            ys = years(at[0]["compliance"])
            if not ys:
                raise NotFound(f"no compliance year has been opened (at position {at[1]})")
            return compliance_page(request, lang, at, ys[-1]["year"])

        return await html(request, build)

    def compliance_page(request: Request, lang: str, at: tuple[Any, int, str], year: int) -> HTMLResponse:
        q = request.query_params
        st, pos = at[0]["compliance"], at[1]
        period_of(st, year, pos)
        sort = q.get("sort") or "firm_id"
        if sort not in opendata.COMPLIANCE:
            raise BadInput(f"sort is one of {', '.join(opendata.COMPLIANCE)}")
        order = q.get("order") or "asc"
        if order not in ("asc", "desc"):
            raise BadInput("order is asc or desc")
        per_page = _int(q, "per_page", 1, MAX_PER_PAGE) or DEFAULT_PER_PAGE
        number = _int(q, "page", 1) or 1
        every = compliance_rows(st, year)
        filters = {k: q.get(k) or None for k in ("sector", "region", "status")}
        choices = {k: sorted({r[k] for r in every}) for k in filters}
        chosen = [r for r in every if all(v is None or r[k] == v for k, v in filters.items())]
        chosen = sort_rows(chosen, sort, order)
        pages = max(1, -(-len(chosen) // per_page))
        if number > pages:
            raise NotFound(f"page {number} is beyond the last page ({pages})")
        shown_rows = chosen[(number - 1) * per_page:number * per_page]
        t = translator(lang)
        state = {**filters, "sort": sort if sort != "firm_id" else None, "order": order if order != "asc" else None,
                 "per_page": per_page if per_page != DEFAULT_PER_PAGE else None}
        return page(request, "compliance.html", f"{t('compliance_title')} {st['year_period'][year]}", lang, at,
                    year=year, period=st["year_period"][year], rows=shown_rows, columns=opendata.COMPLIANCE,
                    total=len(chosen), number=number, pages=pages, per_page=per_page, sort=sort, order=order,
                    filters=filters, choices=choices, state=state, all_years=years(st))

    @api.get("/compliance/{year}", response_class=HTMLResponse, include_in_schema=False)
    async def compliance(request: Request, year: str) -> Any:
        return await html(request, lambda lang, at: compliance_page(request, lang, at, _year(year)))

    @api.get("/firms/{firm_id}", response_class=HTMLResponse, include_in_schema=False)
    async def firm(request: Request, firm_id: str) -> Any:
        def build(lang: str, at: tuple[Any, int, str]) -> HTMLResponse:
            st = at[0]["compliance"]
            if firm_id not in st["firms"]:
                raise NotFound(translator(lang)("unknown_firm") + f" ({firm_id}, position {at[1]})")
            sector, _ut, name, region, *_ = st["firms"][firm_id]
            t = translator(lang)
            return page(request, "firm.html", f"{t('firm_title')} {name} ({firm_id})", lang, at, firm_id=firm_id,
                        name=name, sector=sector, region=region, rows=compliance_rows(st, None, firm_id),
                        columns=opendata.FIRM)

        return await html(request, build)

    @api.get("/coverage/{year}", response_class=HTMLResponse, include_in_schema=False)
    async def coverage(request: Request, year: str) -> Any:
        def build(lang: str, at: tuple[Any, int, str]) -> HTMLResponse:
            y = _year(year)
            st = at[0]["compliance"]
            period_of(st, y, at[1])
            national = _int(request.query_params, "national_total", 1)
            t = translator(lang)
            return page(request, "coverage.html", f"{t('coverage_title')} {y}", lang, at, year=y,
                        cov=coverage_of(st, y, national), columns=opendata.COVERAGE, national=national,
                        all_years=years(st))

        return await html(request, build)

    @api.get("/audit", response_class=HTMLResponse, include_in_schema=False)
    async def audit(request: Request) -> Any:
        cp = await reading(source.checkpoint)

        def build(lang: str, at: tuple[Any, int, str]) -> HTMLResponse:
            t = translator(lang)
            ys = years(at[0]["compliance"])
            return page(request, "audit.html", t("audit_title"), lang, at, checkpoint=cp, files=opendata.FILES,
                        described=opendata.COLUMNS, schema_version=opendata.SCHEMA_VERSION,
                        year=ys[-1]["year"] if ys else 2024, firm=next(iter(sorted(at[0]["compliance"]["firms"])), "FIRM_ID"))

        return await html(request, build)

    @api.get("/v1/audit/checkpoint")
    async def checkpoint() -> Any:
        """The latest signed checkpoint this server publishes (`serve --checkpoint FILE`), with whether it holds."""
        cp = await reading(source.checkpoint)
        if cp is None:
            return JSONResponse({"error": {"code": "no_checkpoint", "message": "this server publishes no checkpoint"}},
                                status_code=404)
        return cp

    # ---- open data -----------------------------------------------------------------------------------
    @api.get("/data/v1/compliance/{name}")
    async def compliance_file(request: Request, name: str) -> Any:
        def build(stem: str, at: tuple[Any, int, str]) -> Any:
            y = _year(stem)
            st = at[0]["compliance"]
            period_of(st, y, at[1])
            return "compliance", opendata.COMPLIANCE, compliance_rows(st, y), {"year": y}

        return await data(request, name, build)

    @api.get("/data/v1/market/{name}")
    async def market_file(request: Request, name: str) -> Any:
        def build(stem: str, at: tuple[Any, int, str]) -> Any:
            unit = unit_of(request.query_params)
            rep = report(at[0]["market"], unit)
            if stem == "daily":
                return "market_daily", opendata.MARKET_DAILY, rep["days"], {"unit": unit}
            if stem == "yearly":
                return "market_yearly", opendata.MARKET_YEARLY, rep["years"], {"unit": unit}
            raise NotFound(f"{name}: the market files are daily and yearly")

        return await data(request, name, build)

    @api.get("/data/v1/coverage/{name}")
    async def coverage_file(request: Request, name: str) -> Any:
        def build(stem: str, at: tuple[Any, int, str]) -> Any:
            y = _year(stem)
            st = at[0]["compliance"]
            period_of(st, y, at[1])
            return "coverage", opendata.COVERAGE, coverage_of(st, y)["sectors"], {"year": y}

        return await data(request, name, build)

    @api.get("/data/v1/firms/{name}")
    async def firm_file(request: Request, name: str) -> Any:
        def build(stem: str, at: tuple[Any, int, str]) -> Any:
            st = at[0]["compliance"]
            if stem not in st["firms"]:
                raise NotFound(f"firm {stem} does not exist (at position {at[1]})")
            return "firm", opendata.FIRM, compliance_rows(st, None, stem), {"firm_id": stem}

        return await data(request, name, build)

    return api
