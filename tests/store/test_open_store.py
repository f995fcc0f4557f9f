"""open_store(): urls, defaults, and what it re-exports."""

from __future__ import annotations

from pathlib import Path

import pytest

import store
from store import BBox, ConflictError, Store, StoreError, open_store
from store.sqlite import SQLiteStore


def test_reexports() -> None:
    assert issubclass(ConflictError, StoreError)
    assert BBox is not None and Store is not None
    assert set(store.__all__) >= {"open_store", "Store", "StoreError", "ConflictError", "BBox"}


def test_default_is_var_sqlite_in_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    s = open_store()
    try:
        assert isinstance(s, SQLiteStore) and s.dialect == "sqlite"
        assert (tmp_path / "var" / "gridconsole.sqlite").exists()
        assert s.schema_version() >= 1
    finally:
        s.close()


def test_database_url_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "from-env" / "db.sqlite"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{target}")
    s = open_store()
    try:
        assert target.exists()
        assert s.url == f"sqlite:///{target}"
    finally:
        s.close()


@pytest.mark.parametrize("form", ["relative", "absolute", "bare"])
def test_sqlite_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str) -> None:
    monkeypatch.chdir(tmp_path)
    url = {
        "relative": "sqlite:///sub/a.sqlite",
        "absolute": f"sqlite:///{tmp_path}/sub/a.sqlite",  # sqlite:////abs/path
        "bare": "sub/a.sqlite",
    }[form]
    s = open_store(url)
    try:
        s.set_setting("k", "v")
    finally:
        s.close()
    assert (tmp_path / "sub" / "a.sqlite").exists()
    again = open_store(str(tmp_path / "sub" / "a.sqlite"))
    try:
        assert again.get_setting("k") == "v"
    finally:
        again.close()


def test_in_memory() -> None:
    s = open_store("sqlite:///:memory:")
    try:
        s.set_setting("k", "v")
        assert s.get_setting("k") == "v"
    finally:
        s.close()


@pytest.mark.parametrize("url", ["mysql://x/y", "", "   "])
def test_unsupported_urls(url: str) -> None:
    with pytest.raises(StoreError):
        open_store(url)


def test_unopenable_sqlite_path(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a database, just text " * 100)
    with pytest.raises(StoreError, match="folder"):
        open_store(f"sqlite:///{tmp_path}/afile/sub/db.sqlite")
    with pytest.raises(StoreError):
        open_store(str(tmp_path / "afile"))
