"""The public pages and open data over plain HTTP (httpx), on SQLite and PostgreSQL: public on a server that
takes signed writes too, status codes for bad input (a 400 or 404 page, never a 500), the signed checkpoint
the server publishes, and pages that follow the head as commands are recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_server import V, Server, keys, ok, registry_store  # noqa: F401 - fixtures

from commands.pages import opendata
from commands.pages.i18n import LABELS

PAGES = ["/", "/market", "/compliance", f"/compliance/{V}", "/firms/F1", f"/coverage/{V}", "/audit",
         "/?lang=zh", f"/compliance/{V}?lang=zh&sort=verified&order=desc&sector=power&per_page=1"]


@pytest.fixture
def checkpoint_file(tmp_path: Path) -> Path:
    return tmp_path / "cp.json"


@pytest.fixture
def server(registry_store: str, checkpoint_file: Path) -> Iterator[Server]:  # noqa: F811
    srv = Server(registry_store, "--checkpoint", str(checkpoint_file))
    try:
        yield srv
    finally:
        srv.stop()


def get(server: Server, path: str) -> httpx.Response:
    return httpx.get(server.url + path, timeout=30)


def test_the_pages_are_public_on_a_server_that_takes_signed_writes(server: Server) -> None:
    for path in PAGES:
        r = get(server, path)
        assert r.status_code == 200, (path, r.text[:300])
        assert r.headers["content-type"].startswith("text/html")
        assert "<title>" in r.text and "<h1>" in r.text and "<script" not in r.text


BAD_PAGES = [
    (f"/compliance/{V}?page=abc", 400), (f"/compliance/{V}?page=0", 400), (f"/compliance/{V}?per_page=0", 400),
    (f"/compliance/{V}?per_page=501", 400), (f"/compliance/{V}?sort=holdings", 400),
    (f"/compliance/{V}?order=up", 400), ("/?as_of=-1", 400), ("/?as_of=abc", 400), ("/?as_of=99999", 400),
    ("/market?lang=fr", 400), ("/compliance/abc", 400), ("/compliance/99999", 400), ("/compliance/1999", 404),
    (f"/compliance/{V}?page=2", 404), ("/firms/NOPE", 404), ("/coverage/1999", 404), ("/coverage/x", 400),
    ("/market?unit=XYZ", 400), (f"/coverage/{V}?national_total=0", 400), ("/no/such/page", 404),
]
BAD_FILES = [


    (f"/data/v1/compliance/{V}.xml", 404), ("/data/v1/compliance/1999.json", 404), ("/data/v1/compliance/x.csv", 400),
    ("/data/v1/market/weekly.csv", 404), ("/data/v1/firms/NOPE.json", 404), (f"/data/v1/coverage/{V}.csv?as_of=x", 400),
    ("/data/v1/market/daily.json?unit=XYZ", 400), (f"/data/v1/compliance/{V}.json?as_of=99999", 400),
]


def test_bad_input_is_a_400_page_an_unknown_year_or_firm_a_404_page_and_bad_files_json_errors(
        server: Server) -> None:
    for path, status in BAD_PAGES:
        r = get(server, path)
        assert r.status_code == status, (path, r.text[:300])
        if path != "/no/such/page":
            assert r.headers["content-type"].startswith("text/html")
            assert "<title>" in r.text and 'id="message"' in r.text
    for path, status in BAD_FILES:
        r = get(server, path)
        assert r.status_code == status, (path, r.text[:300])
        assert r.json()["error"]["code"]


def test_the_open_data_files_of_a_small_store(server: Server, registry_store: str) -> None:  # noqa: F811
    j = get(server, f"/data/v1/compliance/{V}.json").json()
    assert (j["schema_version"], j["table"], j["year"], j["columns"]) == (1, "compliance", V, opendata.COMPLIANCE)
    assert [r["firm_id"] for r in j["rows"]] == ["F1", "F2"]
    csv_text = get(server, "/data/v1/firms/F1.csv").text
    assert csv_text.startswith("# schema_version=1 table=firm firm_id=F1 position=")
    assert csv_text.splitlines()[1] == ",".join(opendata.FIRM)
    assert get(server, "/data/v1/market/daily.json").json()["rows"] == []  # no trades yet


def test_the_signed_checkpoint_is_published_and_checked(server: Server, registry_store: str, keys: dict[str, str],  # noqa: F811
                                                        checkpoint_file: Path) -> None:
    assert get(server, "/v1/audit/checkpoint").status_code == 404
    assert LABELS["no_checkpoint"][0] in get(server, "/").text
    cp = ok(registry_store, "--as", "MEE", "--key", keys["MEE"], "audit", "checkpoint")
    checkpoint_file.write_text(cp)  # read on each request: replacing the file publishes it
    r = get(server, "/v1/audit/checkpoint").json()
    assert (r["valid"], r["signature_valid"], r["matches_log"], r["signed_by_regulator"]) == (True,) * 4
    assert r["position"] == json.loads(cp)["position"]
    assert 'data-checkpoint-valid="true"' in get(server, "/").text
    forged = {**json.loads(cp), "hash": "0" * 64}
    checkpoint_file.write_text(json.dumps(forged))
    r = get(server, "/v1/audit/checkpoint").json()
    assert (r["valid"], r["signature_valid"], r["matches_log"]) == (False, False, False)
    assert 'data-checkpoint-valid="false"' in get(server, "/").text
    checkpoint_file.write_text("not json")
    assert get(server, "/v1/audit/checkpoint").json()["valid"] is False
    assert get(server, "/").status_code == 200


def test_the_pages_follow_the_head_as_commands_are_recorded(server: Server, registry_store: str,  # noqa: F811
                                                            keys: dict[str, str]) -> None:
    before = get(server, "/v1/head").json()["position"]
    assert f"<span data-position>{before}</span>" in get(server, f"/compliance/{V}").text
    ok(registry_store, "--as", "MEE", "--key", keys["MEE"], "firm", "register", "F3", "--name", "Third",
       "--sector", "steel", "--region", "Hebei")
    after = get(server, "/v1/head").json()["position"]
    assert after > before
    page = get(server, f"/compliance/{V}").text
    assert f"<span data-position>{after}</span>" in page and "/firms/F3" in page
    old = get(server, f"/compliance/{V}?as_of={before}").text
    assert f"<span data-position>{before}</span>" in old and "/firms/F3" not in old
    assert [r["firm_id"] for r in get(server, f"/data/v1/compliance/{V}.json").json()["rows"]] == ["F1", "F2", "F3"]


def test_odd_query_strings_never_answer_500(server: Server) -> None:
    odd = ["?page=1e3", "?page=%00", "?as_of=1.5", "?as_of=", "?lang=", "?sort=&order=", "?per_page=-1",
           "?sector=%3Cscript%3E", "?status=A*", "?page=99999999999999999999"]
    for path in ["/", "/market", f"/compliance/{V}", "/firms/F1", f"/coverage/{V}", "/audit"]:
        for q in odd:
            r = get(server, path + q)
            assert r.status_code in (200, 400, 404), (path, q, r.status_code)
            assert "<script>" not in r.text


def test_docs_open_data_describes_every_file_and_column() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "open-data.md").read_text(encoding="utf-8")
    assert opendata.markdown_columns() in doc  # regenerate the table from commands/pages/opendata.py COLUMNS
    for url, cols, _what in opendata.FILES:
        assert f"`{url}`" in doc and all(f"`{c}`" in doc for c in cols)
    assert f'"schema_version": {opendata.SCHEMA_VERSION}' in doc
    every = {c for _u, cols, _w in opendata.FILES for c in cols}
    assert every <= set(opendata.COLUMNS) and set(LABELS) >= {f"col_{c}" for c in opendata.COLUMNS}
