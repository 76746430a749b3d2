"""The network API against its own OpenAPI document: schemathesis generates requests for every operation of
`/openapi.json` (bounded, so that CI stays fast) and sends them to a real `carbon-ledger serve` process on a
signed store; no request may get a server error (a 5xx other than the documented 503 store failure), whatever
its parameters or body."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from test_server import Server, keys, registry_store  # noqa: F401 - the shared fixtures


@pytest.fixture
def served(registry_store: str) -> Iterator[Server]:  # noqa: F811
    srv = Server(registry_store)
    try:
        yield srv
    finally:
        srv.stop()


def test_no_generated_request_gets_a_server_error(served: Server) -> None:
    from hypothesis import given

    schema = schemathesis.openapi.from_url(served.url + "/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 10  # every endpoint of the document is exercised
    checked = []
    for operation in operations:
        @given(operation.as_strategy())
        @settings(max_examples=20, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        def no_server_error(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[not_a_server_error], timeout=30)

        no_server_error()
        checked.append(f"{operation.method.upper()} {operation.path}")
    assert "POST /v1/commands" in checked and "GET /v1/balances" in checked
