"""Schemathesis against the live API's own OpenAPI schema: every operation gets a bounded,
seeded batch of generated requests (valid and invalid), and none may answer with a 5xx.
SQLite only (the store contract is tested on both stores elsewhere); a few seconds per operation."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from schemathesis.checks import not_a_server_error

from api.app import create_app
from services import cases as cs
from tests.fixtures.api import serve_in_thread
from tests.fixtures.cases_world import build_world

MAX_EXAMPLES = 15
BUDGET_S = 110.0


@pytest.fixture
def base(sqlite_store: Any) -> Any:
    build_world(sqlite_store)
    cs.forget_locator(sqlite_store)
    with serve_in_thread(create_app(sqlite_store, escalate_every_s=None)) as url:
        yield url


def test_no_operation_answers_with_a_server_error(base: str) -> None:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 20, [op.label for op in operations]
    started = time.monotonic()
    with httpx.Client(base_url=base, timeout=30):
        pass  # the server is up (the schema was loaded from it)
    for op in operations:

        @seed(8)
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=op.as_strategy())
        def check(case: Any) -> None:
            response = case.call(base_url=base, timeout=30)
            case.validate_response(response, checks=[not_a_server_error])

        check()
        assert time.monotonic() - started < BUDGET_S, f"over the time budget at {op.label}"
