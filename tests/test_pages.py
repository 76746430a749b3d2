"""The public pages in a real browser: a real `carbon-ledger serve --read-only` process on a simulated store
(china-2021-2024 at scale 0.01), driven by Playwright with the system Chromium (/usr/bin/chromium, Debian's
`chromium`; never a downloaded browser). Each page shows the figures the CLI's `--json` gives for the same
position; filters, sorting and paging work; `?lang=zh` shows the Chinese labels; every page has a title,
headings, table headers and alt text on its chart; the open-data files parse and match; `?as_of` works;
nothing private (holdings, counterparties) appears on any page or in any file.

Screenshots of /, /market and /compliance/2024 are taken on every run (into tmp); with
CARBON_LEDGER_SCREENSHOTS=1 they are written to docs/img/ (the README shows them)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ledgerkit import EXE, invoke_json
from test_server import Server

from commands.pages import opendata
from commands.pages.i18n import LABELS
from ledger import signing

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.skipif(EXE is None, reason="needs the installed carbon-ledger executable"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"needs the system Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"),
]
playwright_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the test extra)")
YEAR = 2024
DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("pages")
    store = str(d / "china.db")
    subprocess.run([EXE, "--store", store, "simulate", "china-2021-2024", "--scale", "0.01"], check=True,
                   capture_output=True, timeout=300)
    key = str(d / "operator.key")
    signing.generate(key)
    cp = subprocess.run([EXE, "--store", store, "--key", key, "audit", "checkpoint"], check=True,
                        capture_output=True, text=True, timeout=60).stdout
    (d / "cp.json").write_text(cp)
    return {"store": store, "dir": d, "checkpoint": json.loads(cp), "checkpoint_file": str(d / "cp.json")}


@pytest.fixture(scope="module")
def server(sim: dict[str, Any]) -> Iterator[Server]:
    srv = Server(sim["store"], "--read-only", "--checkpoint", sim["checkpoint_file"])
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=True)
    pg = ctx.new_page()
    try:
        yield pg
    finally:
        ctx.close()


def cli(sim: dict[str, Any], *args: str) -> Any:
    return invoke_json(sim["store"], *args)


def go(page: Any, server: Server, path: str) -> Any:
    resp = page.goto(server.url + path)
    assert resp is not None
    return resp


def value(text: str) -> str | None:
    """A cell as shown, back to the JSON's text: thousands separators out, the dash for a missing value."""
    text = text.strip()
    return None if text == "–" else text.replace(",", "")


def expected(v: Any) -> str | None:
    return None if v is None else str(v)


def table(page: Any, selector: str) -> list[dict[str, str | None]]:
    cells = page.locator(f"{selector} tbody tr").evaluate_all(
        "rows => rows.filter(r => r.cells.length > 1).map(r => Object.fromEntries("
        "[...r.cells].map(c => [c.dataset.col, c.innerText])))")
    return [{k: value(v) for k, v in r.items()} for r in cells]


def as_shown(rows: list[dict[str, Any]], columns: list[str]) -> list[dict[str, str | None]]:
    return [{c: expected(r.get(c)) for c in columns} for r in rows]


def screenshot(page: Any, name: str, tmp_path: Path) -> None:
    target = DOCS_IMG if os.environ.get("CARBON_LEDGER_SCREENSHOTS") == "1" else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / f"{name}.png"), full_page=True)
    assert (target / f"{name}.png").stat().st_size > 10_000


def footer_position(page: Any) -> tuple[int, str]:
    return int(page.locator("[data-position]").inner_text()), page.locator("[data-hash]").inner_text()


# ---- the figures ----------------------------------------------------------------------------------------
def test_home_shows_the_head_checkpoint_market_and_coverage_as_the_cli_does(page: Any, server: Server,
                                                                             sim: dict[str, Any],
                                                                             tmp_path: Path) -> None:
    go(page, server, "/")
    head = httpx.get(server.url + "/v1/head").json()
    assert footer_position(page) == (head["position"], head["hash"])
    assert page.locator("[data-head-position]").inner_text() == str(head["position"])
    assert page.locator("[data-head-hash]").inner_text() == head["hash"]
    cp = sim["checkpoint"]
    assert page.locator("[data-checkpoint-position]").inner_text() == str(cp["position"])
    assert page.locator("[data-checkpoint-valid]").get_attribute("data-checkpoint-valid") == "true"
    m = cli(sim, "market")
    for f in ("volume", "value", "trades"):
        assert value(page.locator(f"#cumulative-CEA [data-field={f}]").inner_text()) == str(m["cumulative"][f])
    periods = cli(sim, "compliance")["rows"]
    for year in sorted({r["year"] for r in periods}):
        cov = cli(sim, "coverage", "--year", str(year))
        row = page.locator(f"#years tr[data-year='{year}']")
        for f in ("total_firms", "total_verified_firms", "total_verified"):
            assert value(row.locator(f"[data-col={f}]").inner_text()) == str(cov[f])
    page.get_by_role("link", name=f"{YEAR}", exact=True).click()
    assert page.url.endswith(f"/compliance/{YEAR}")
    go(page, server, "/")
    screenshot(page, "home", tmp_path)


def test_market_chart_and_yearly_table_are_the_clis(page: Any, server: Server, sim: dict[str, Any],
                                                   tmp_path: Path) -> None:
    go(page, server, "/market")
    m = cli(sim, "market")
    assert table(page, "#yearly") == as_shown(m["years"], opendata.MARKET_YEARLY)
    assert table(page, "#modes") == as_shown(m["modes"], ["mode", "volume", "value", "trades", "average_price"])
    svg = page.locator("#chart svg")
    assert svg.get_attribute("role") == "img"
    title, desc = svg.locator("title").text_content(), svg.locator("desc").text_content()
    assert "CEA" in title and f"cumulative volume {m['cumulative']['volume']:,} t" in desc
    assert page.locator("#chart figcaption").inner_text()
    products = sorted({d["vintage"] for d in m["days"]})
    assert svg.locator("polyline").count() == len(products)  # one close line per product
    screenshot(page, "market", tmp_path)
    page.get_by_role("link", name="CCER", exact=True).click()
    assert "unit=CCER" in page.url
    assert value(page.locator("#cumulative [data-field=volume]").inner_text()) == str(
        cli(sim, "market", "--unit", "CCER")["cumulative"]["volume"])


def test_compliance_table_sorts_filters_and_pages_as_the_cli_rows(page: Any, server: Server, sim: dict[str, Any],
                                                                 tmp_path: Path) -> None:
    rows = cli(sim, "compliance", "--year", str(YEAR))["rows"]
    cols = opendata.COMPLIANCE
    go(page, server, f"/compliance/{YEAR}?per_page=10")
    assert table(page, "#compliance") == as_shown(rows[:10], cols)
    assert page.locator("[data-total]").inner_text() == str(len(rows))
    screenshot(page, "compliance", tmp_path)
    # paging: next, then previous
    page.locator("#pager a[rel=next]").click()
    assert "page=2" in page.url and table(page, "#compliance") == as_shown(rows[10:20], cols)
    page.locator("#pager a[rel=prev]").click()
    assert table(page, "#compliance") == as_shown(rows[:10], cols)
    # sorting by a header: ascending, then descending (firms without a value last)
    page.locator("th[data-col=verified] a").click()
    assert page.locator("th[data-col=verified]").get_attribute("aria-sort") == "ascending"
    ranked = sorted((r for r in rows if r["verified"] is not None), key=lambda r: r["firm_id"])
    asc = sorted(ranked, key=lambda r: r["verified"])
    assert table(page, "#compliance") == as_shown(asc[:10], cols)
    page.locator("th[data-col=verified] a").click()
    desc = sorted(ranked, key=lambda r: r["verified"], reverse=True)
    assert "order=desc" in page.url and table(page, "#compliance") == as_shown(desc[:10], cols)
    # filtering with the form (no JavaScript needed: a GET form), sort kept
    page.select_option("select[name=sector]", "power")
    page.locator("#filters button[type=submit]").click()
    power = [r for r in desc if r["sector"] == "power"]
    assert page.locator("[data-total]").inner_text() == str(len([r for r in rows if r["sector"] == "power"]))
    assert table(page, "#compliance") == as_shown(power[:10], cols)
    for status in sorted({r["status"] for r in rows}):
        go(page, server, f"/compliance/{YEAR}?status={status}&per_page=500")
        assert table(page, "#compliance") == as_shown([r for r in rows if r["status"] == status], cols)
    region = rows[0]["region"]
    go(page, server, f"/compliance/{YEAR}?region={region}&per_page=500")
    assert table(page, "#compliance") == as_shown([r for r in rows if r["region"] == region], cols)
    # a firm's link leads to its record
    go(page, server, f"/compliance/{YEAR}")
    first = rows[0]["firm_id"]
    page.get_by_role("link", name=first, exact=True).click()
    assert page.url.endswith(f"/firms/{first}")


def test_a_firms_record_is_its_cli_rows_and_an_unknown_firm_is_a_404_page(page: Any, server: Server,
                                                                          sim: dict[str, Any]) -> None:
    rows = cli(sim, "compliance")["rows"]
    firm = next(r["firm_id"] for r in rows if r["status"].startswith("B")) if any(
        r["status"].startswith("B") for r in rows) else rows[0]["firm_id"]
    go(page, server, f"/firms/{firm}")
    mine = cli(sim, "compliance", "--firm", firm)["rows"]
    assert table(page, "#record") == as_shown(mine, opendata.FIRM)
    assert firm in page.title() and mine[0]["name"] in page.locator("h1").inner_text()
    resp = go(page, server, "/firms/NO-SUCH-FIRM")
    assert resp.status == 404 and page.title() and page.locator("h1").inner_text()


def test_coverage_is_the_clis_with_the_covered_share(page: Any, server: Server, sim: dict[str, Any]) -> None:
    go(page, server, f"/coverage/{YEAR}")
    cov = cli(sim, "coverage", "--year", str(YEAR))
    assert table(page, "#coverage") == as_shown(cov["sectors"], opendata.COVERAGE)
    page.fill("input[name=national_total]", "100000000")
    page.locator("form:has(input[name=national_total]) button").click()
    share = cli(sim, "coverage", "--year", str(YEAR), "--national-total", "100000000")["covered_share"]
    assert page.locator("[data-field=covered_share]").inner_text() == share


def test_audit_page_describes_the_export_the_commands_and_every_column(page: Any, server: Server) -> None:
    go(page, server, "/audit")
    text = page.locator("main").inner_text()
    for needle in ("audit export", "audit verify", "--json", "/v1/audit/export", "schema_version"):
        assert needle in text
    described = page.locator("#columns tbody tr td:first-child").all_inner_texts()
    assert described == list(opendata.COLUMNS)
    for _url, cols, _what in opendata.FILES:
        assert set(cols) <= set(described)
    href = page.locator("a[href^='/v1/audit/export']").get_attribute("href")  # a download: fetched here
    lines = httpx.get(server.url + href).text.splitlines()
    assert json.loads(lines[-1])["position"] == int(page.locator("[data-position]").inner_text()) == len(lines)


# ---- as_of, languages, structure -------------------------------------------------------------------------
def test_as_of_shows_every_page_as_the_ledger_stood_then(page: Any, server: Server, sim: dict[str, Any]) -> None:
    pos = 1500
    export = httpx.get(server.url + f"/v1/audit/export?upto={pos}").text.splitlines()
    h = json.loads(export[-1])["hash"]
    go(page, server, f"/?as_of={pos}")
    assert footer_position(page) == (pos, h)
    m = cli(sim, "market", "--as-of", str(pos))
    assert value(page.locator("#cumulative-CEA [data-field=volume]").inner_text()) == str(m["cumulative"]["volume"])
    # links keep the position
    page.get_by_role("link", name="Market", exact=True).click()
    assert f"as_of={pos}" in page.url and footer_position(page) == (pos, h)
    assert table(page, "#yearly") == as_shown(m["years"], opendata.MARKET_YEARLY)
    year = cli(sim, "compliance", "--as-of", str(pos))["rows"][-1]["year"]
    go(page, server, f"/compliance/{year}?as_of={pos}&per_page=500")
    assert table(page, "#compliance") == as_shown(cli(sim, "compliance", "--year", str(year), "--as-of",
                                                      str(pos))["rows"], opendata.COMPLIANCE)
    # the footer's form asks for another position
    page.fill("footer input[name=as_of]", "1000")
    page.locator("footer button").click()
    assert footer_position(page)[0] == 1000


PAGES = ["/", "/market", f"/compliance/{YEAR}", "/firms/P00001", f"/coverage/{YEAR}", "/audit"]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_page_has_a_title_headings_table_headers_and_chart_alt_text(page: Any, server: Server,
                                                                          lang: str) -> None:
    i = 0 if lang == "en" else 1
    for path in PAGES:
        resp = go(page, server, path + ("?lang=zh" if lang == "zh" else ""))
        assert resp.status == 200, path
        assert page.title().endswith(LABELS["site"][i]), path
        assert page.locator("html").get_attribute("lang") == ("zh-Hans" if lang == "zh" else "en")
        assert page.locator("h1").count() == 1 and page.locator("h1").inner_text()
        for t in page.locator("table").all():
            assert t.locator("thead th").count() > 0, path
        for svg in page.locator("svg").all():
            assert svg.locator("title").text_content() and svg.locator("desc").text_content(), path
        assert page.locator("header nav a").first.inner_text() == LABELS["nav_home"][i]
        if lang == "zh":
            links = [a.get_attribute("href") for a in page.locator("header nav a").all()]
            assert all("lang=zh" in h for h in links), path  # the language is kept from page to page


def test_zh_shows_the_chinese_labels_of_the_one_table(page: Any, server: Server) -> None:
    go(page, server, f"/compliance/{YEAR}?lang=zh")
    headers = page.locator("#compliance thead th").all_inner_texts()
    assert [h.rstrip(" ▲▼") for h in headers] == [LABELS[f"col_{c}"][1] for c in opendata.COMPLIANCE]
    assert LABELS["status_legend"][1] in page.locator("main").inner_text()
    page.get_by_role("link", name="English").click()
    assert [h.rstrip(" ▲▼") for h in page.locator("#compliance thead th").all_inner_texts()] == [
        LABELS[f"col_{c}"][0] for c in opendata.COMPLIANCE]
    go(page, server, "/market?lang=zh")
    assert LABELS["chart_caption"][1] == page.locator("figcaption").inner_text()
    assert LABELS["chart_title"][1] in page.locator("#chart svg title").text_content()


def test_the_pages_need_no_javascript(browser: Any, server: Server) -> None:
    ctx = browser.new_context(java_script_enabled=False)
    try:
        pg = ctx.new_page()
        pg.goto(server.url + f"/compliance/{YEAR}?per_page=5")
        assert pg.locator("#compliance tbody tr").count() == 5
        pg.locator("th[data-col=fine] a").click()
        assert "sort=fine" in pg.url
        pg.select_option("select[name=status]", "A")
        pg.locator("#filters button[type=submit]").click()
        assert "status=A" in pg.url and pg.locator("#compliance tbody tr").count() == 5
        pg.goto(server.url + "/market")
        assert pg.locator("#chart svg polyline").count() > 0
    finally:
        ctx.close()


# ---- open data ---------------------------------------------------------------------------------------------
def fetch(server: Server, path: str) -> tuple[dict[str, Any], list[dict[str, str]], dict[str, str]]:
    base, _, query = path.partition("?")
    j = httpx.get(f"{server.url}{base}.json" + (f"?{query}" if query else ""))
    c = httpx.get(f"{server.url}{base}.csv" + (f"?{query}" if query else ""))
    assert j.status_code == c.status_code == 200, path
    assert c.headers["content-type"].startswith("text/csv")
    first, _, body = c.text.partition("\n")
    meta = dict(kv.split("=", 1) for kv in first.removeprefix("# ").split(" "))
    return j.json(), list(csv.DictReader(io.StringIO(body))), meta


def test_open_data_files_parse_and_match_the_cli(server: Server, sim: dict[str, Any]) -> None:
    head = httpx.get(server.url + "/v1/head").json()
    m = cli(sim, "market")
    cases = [
        (f"/data/v1/compliance/{YEAR}", cli(sim, "compliance", "--year", str(YEAR))["rows"], opendata.COMPLIANCE),
        ("/data/v1/market/daily", m["days"], opendata.MARKET_DAILY),
        ("/data/v1/market/yearly", m["years"], opendata.MARKET_YEARLY),
        ("/data/v1/market/daily?unit=CCER", cli(sim, "market", "--unit", "CCER")["days"], opendata.MARKET_DAILY),
        (f"/data/v1/coverage/{YEAR}", cli(sim, "coverage", "--year", str(YEAR))["sectors"], opendata.COVERAGE),
        ("/data/v1/firms/P00001", cli(sim, "compliance", "--firm", "P00001")["rows"], opendata.FIRM),
    ]
    for path, rows, cols in cases:
        j, c, meta = fetch(server, path)
        assert j["schema_version"] == opendata.SCHEMA_VERSION == int(meta["schema_version"]), path
        assert (j["position"], j["hash"]) == (head["position"], head["hash"]) == (int(meta["position"]), meta["hash"])
        assert j["columns"] == cols and (not c or list(c[0]) == cols), path
        assert j["rows"] == [{k: r.get(k) for k in cols} for r in rows], path  # integers and decimal strings
        assert c == [{k: "" if r.get(k) is None else str(r.get(k)) for k in cols} for r in rows], path
        for r in j["rows"]:
            for k, v in r.items():
                assert v is None or isinstance(v, int | str), (path, k, v)
                if k in ("value", "fine", "close", "open", "high", "low", "average_price") and v is not None:
                    assert isinstance(v, str) and re.fullmatch(r"-?\d+\.\d{2}", v), (path, k, v)
    # as_of on a file
    j, _c, meta = fetch(server, f"/data/v1/compliance/{YEAR}?as_of=2000")
    assert j["position"] == 2000 == int(meta["position"])
    assert j["rows"] == [{k: r.get(k) for k in opendata.COMPLIANCE}
                         for r in cli(sim, "compliance", "--year", str(YEAR), "--as-of", "2000")["rows"]]


def test_nothing_private_appears_on_any_page_or_file(page: Any, server: Server, sim: dict[str, Any]) -> None:
    """No holdings, no transfers, no counterparties: the market pages and files name no account; a firm's
    pages show no holding of it that is not also one of its public figures; no private column anywhere."""
    bal = cli(sim, "balances")
    firms = {r["firm_id"] for r in cli(sim, "compliance")["rows"]}
    accounts = {a["account_id"] for a in bal["accounts"]}
    years = sorted({r["year"] for r in cli(sim, "compliance")["rows"]})
    texts: dict[str, str] = {}
    for path in ["/", "/market", "/market?unit=CCER", "/audit"] + [f"/compliance/{y}?per_page=500" for y in years] \
            + [f"/coverage/{y}" for y in years] + [f"/firms/{f}" for f in sorted(firms)]:
        go(page, server, path)
        texts[path] = page.content()
    for f in ("market/daily", "market/yearly", "market/daily?unit=CCER") + tuple(
            f"{t}/{y}" for t in ("compliance", "coverage") for y in years) + tuple(f"firms/{f}" for f in firms):
        base, _, q = f.partition("?")
        for ext in ("csv", "json"):
            texts[f"/data/v1/{base}.{ext}"] = httpx.get(f"{server.url}/data/v1/{base}.{ext}" + (f"?{q}" if q else "")).text
    private = ("counterparty", "from_account", "to_account", "balance", "holding", "account_id", "pending")
    for path, text in texts.items():
        for word in private:
            assert word not in text.lower(), (path, word)
        for acc in accounts - firms:  # an account that is not a firm's own compliance account
            assert acc not in text, (path, acc)
    for path, text in texts.items():
        if "market" in path:
            for acc in accounts:
                assert not re.search(rf"\b{re.escape(acc)}\b", text), (path, acc)  # no trade names an account
    for firm in sorted(firms):
        public = {str(v) for r in cli(sim, "compliance", "--firm", firm)["rows"] for v in r.values()}
        held = {b["quantity"] for b in bal["balances"] if b["account_id"] == firm}
        for q in held:
            if str(q) in public or q < 1000:
                continue
            for path in (f"/firms/{firm}", f"/data/v1/firms/{firm}.csv", f"/data/v1/firms/{firm}.json"):
                assert not re.search(rf"(?<![\d,]){q:,}(?![\d,])|(?<![\d,.]){q}(?![\d,.])", texts[path]), (
                    path, firm, q)


def test_the_chromium_is_the_systems(browser: Any) -> None:
    assert shutil.which("chromium") == CHROMIUM or os.path.exists(CHROMIUM)
    assert browser.version  # launched from executable_path, not a downloaded browser
