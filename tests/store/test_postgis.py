"""PostGIS-only details: opening a fresh database, a missing extension, lost connections."""

from __future__ import annotations

import uuid
from typing import Any

import pandas as pd
import psycopg2
import pytest

from store import StoreError, open_store
from store.migrations import latest_version
from store.postgis import PostGISStore, redact

pytestmark = pytest.mark.postgis


def _admin(server: Any) -> Any:
    conn = psycopg2.connect(server.admin_url)
    conn.autocommit = True
    return conn


def _terminate(server: Any, pid: int) -> None:
    conn = _admin(server)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        conn.close()


def _backend_pid(store: PostGISStore) -> int:
    with store.conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return int(cur.fetchone()[0])


def test_fresh_database_gets_extension_and_migrations(postgres_server: Any) -> None:
    name = postgres_server.create_database()  # from template1: no postgis yet
    try:
        url = postgres_server.url(name)
        store = open_store(url)
        try:
            assert isinstance(store, PostGISStore)
            assert store.schema_version() == latest_version()
            assert store.migrations_applied()["version"].tolist() == list(range(1, latest_version() + 1))
            assert store.migrate() == []
        finally:
            store.close()
        again = open_store(url.replace("postgresql://", "postgres://", 1))
        try:
            assert again.migrate() == [] and again.count("grids") == 0
        finally:
            again.close()
    finally:
        postgres_server.drop_database(name)


def test_missing_postgis_is_a_clear_error(postgres_server: Any) -> None:
    role = f"gc_test_role_{uuid.uuid4().hex[:8]}"
    name = postgres_server.create_database()
    admin = _admin(postgres_server)
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE ROLE "{role}" LOGIN')  # not a superuser: may not create postgis
        url = postgres_server.url(name).replace("://postgres@", f"://{role}@", 1)
        assert role in url
        with pytest.raises(StoreError, match="PostGIS extension is not available"):
            PostGISStore(url)
    finally:
        postgres_server.drop_database(name)
        with admin.cursor() as cur:
            cur.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


def test_unreachable_server_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot connect"):
        PostGISStore("postgresql://nobody:secret@127.0.0.1:1/none", connect_timeout=2)


def test_password_is_not_shown() -> None:
    assert redact("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"


def test_reconnects_after_the_server_dropped_the_connection(postgis_store: PostGISStore, postgres_server: Any) -> None:
    store = postgis_store
    store.set_setting("k", "v")
    _terminate(postgres_server, _backend_pid(store))
    assert store.get_setting("k") == "v"  # a read reconnects transparently
    _terminate(postgres_server, _backend_pid(store))
    store.set_setting("k", "w")  # and so does a write
    assert store.get_setting("k") == "w"
    _terminate(postgres_server, _backend_pid(store))
    with store.transaction():  # a transaction starting on a dead connection reconnects too
        store.set_setting("k", "x")
    assert store.get_setting("k") == "x"


def test_connection_lost_inside_a_transaction_fails_cleanly(
    postgis_store: PostGISStore, postgres_server: Any
) -> None:
    store = postgis_store
    with pytest.raises(StoreError):
        with store.transaction():
            store.write("staff", pd.DataFrame({"id": [1], "name": ["a"], "role": ["x"]}))
            _terminate(postgres_server, _backend_pid(store))
            store.write("staff", pd.DataFrame({"id": [2], "name": ["b"], "role": ["x"]}))
    assert store.count("staff") == 0  # nothing half-written, and the store works again
