"""Store fixtures shared by the whole suite.

- ``sqlite_store``: a fresh SQLite store in a temporary file;
- ``postgis_store``: a fresh PostGIS store in a throwaway database ``gc_test_<random>`` on the
  server named by env ``TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``),
  copied from a migrated template made once per session, dropped afterwards;
- ``store``: both of the above (ids ``sqlite`` and ``postgis``; the latter marked ``postgis``).

When PostgreSQL or PostGIS cannot be had the PostGIS tests are skipped with the reason, except
when env ``CI`` is ``true``: then they fail, so CI never passes without having run them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

DEFAULT_TEST_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostGIS is required in CI but unavailable: {reason}", pytrace=False)
    pytest.skip(f"PostGIS unavailable: {reason}")


def with_database(url: str, dbname: str) -> str:
    """The same server url pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


@dataclass
class PostgresServer:
    """Admin access to the test server: create and drop throwaway databases."""

    admin_url: str
    template: str | None = None
    created: list[str] = field(default_factory=list)

    def _admin(self) -> Any:
        import psycopg2

        conn = psycopg2.connect(self.admin_url, connect_timeout=5)
        conn.autocommit = True
        return conn

    def create_database(self, *, template: str | None = None, prefix: str = "gc_test_") -> str:
        name = f"{prefix}{uuid.uuid4().hex[:12]}"
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                # names are generated above, never user input
                cur.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        finally:
            conn.close()
        self.created.append(name)
        return name

    def drop_database(self, name: str) -> None:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            conn.close()
        if name in self.created:
            self.created.remove(name)

    def url(self, name: str) -> str:
        return with_database(self.admin_url, name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The test server, with a migrated PostGIS template database; skips/fails when unavailable."""
    admin_url = os.environ.get("TEST_POSTGRES_URL") or DEFAULT_TEST_POSTGRES_URL
    try:
        import psycopg2
    except ImportError as e:  # pragma: no cover - psycopg2-binary is a requirement
        _unavailable(f"psycopg2 is not importable ({e})")
    try:
        conn = psycopg2.connect(admin_url, connect_timeout=5)
    except psycopg2.Error as e:
        _unavailable(f"cannot connect to {admin_url}: {str(e).strip()} (run .ci/ensure-postgis)")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
            has_postgis = cur.fetchone() is not None
    finally:
        conn.close()
    if not has_postgis:
        _unavailable(
            f"the server at {admin_url} has no postgis extension package "
            "(install postgresql-<major>-postgis-3, or run .ci/ensure-postgis as root)"
        )
    server = PostgresServer(admin_url)
    template = server.create_database(prefix="gc_test_tpl_")
    try:
        from store.postgis import PostGISStore

        PostGISStore(server.url(template)).close()  # CREATE EXTENSION postgis + migrations
    except Exception as e:
        server.drop_database(template)
        _unavailable(f"cannot set up a PostGIS database: {e}")
    server.template = template
    try:
        yield server
    finally:
        for name in list(server.created):
            server.drop_database(name)


@pytest.fixture
def postgis_store(postgres_server: PostgresServer) -> Iterator[Any]:
    from store.postgis import PostGISStore

    name = postgres_server.create_database(template=postgres_server.template)
    store = PostGISStore(postgres_server.url(name))
    try:
        yield store
    finally:
        store.close()
        postgres_server.drop_database(name)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Any]:
    from store.sqlite import SQLiteStore

    store = SQLiteStore(str(tmp_path / "store.sqlite"))
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgis", id="postgis", marks=pytest.mark.postgis),
    ]
)
def store(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(f"{request.param}_store")
