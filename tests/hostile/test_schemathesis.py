"""Schemathesis against the live API's own OpenAPI schema: every operation gets a bounded,
seeded batch of generated requests (valid and invalid), and none may answer with a 5xx.
SQLite only (the store contract is tested on both stores elsewhere); a few seconds per operation.
The requests carry an administrator's token; the same generated requests without it must be
refused with 401 on every route that is not public (api/deps.py ROUTE_ACCESS)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from schemathesis.checks import not_a_server_error

from api.app import create_app
from api.deps import route_access
from services import cases as cs
from tests.fixtures.api import api_token, bearer, serve_in_thread
from tests.fixtures.cases_world import build_world

MAX_EXAMPLES = 15
BUDGET_S = 110.0


@pytest.fixture
def world(sqlite_store: Any) -> Any:
    build_world(sqlite_store)
    cs.forget_locator(sqlite_store)
    return sqlite_store


@pytest.fixture
def base(world: Any) -> Any:
    with serve_in_thread(create_app(world, escalate_every_s=None)) as url:
        yield url


def test_no_operation_answers_with_a_server_error(base: str, world: Any) -> None:
    headers = bearer(api_token(world))  # an administrator of the city: every route is open to it
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 20, [op.label for op in operations]
    started = time.monotonic()
    with httpx.Client(base_url=base, timeout=30):
        pass  # the server is up (the schema was loaded from it)
    for op in operations:
        access = route_access(op.method.upper(), op.path)
        assert access is not None, f"{op.label} has no access rule"
        public = access.via == "public"

        @seed(8)
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=op.as_strategy())
        def check(case: Any) -> None:
            response = case.call(base_url=base, timeout=30, headers=headers)  # (overrides a generated one)
            case.validate_response(response, checks=[not_a_server_error])
            # (check runs at once, inside the loop: op and public are this iteration's)
            assert response.status_code != 401, (op.label, response.text[:200])  # noqa: B023
            if not public:  # noqa: B023 - the same request without the token
                bare = case.call(base_url=base, timeout=30)
                assert bare.status_code in (401, 413), (op.label, bare.status_code, bare.text[:200])  # noqa: B023
                if bare.status_code == 401:
                    value = bare.headers["www-authenticate"]
                    assert (value if isinstance(value, str) else value[0]).startswith("Bearer")

        check()
        assert time.monotonic() - started < BUDGET_S, f"over the time budget at {op.label}"
