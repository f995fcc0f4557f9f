from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.demo_db import copy_demo, run_console, small_demo_url

__all__ = ["small_demo_url"]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
    if not path:
        if os.environ.get("CI") == "true":
            pytest.fail("Debian's chromium is required in CI (.ci/ensure-browser installs it)")
        pytest.skip("chromium is not installed (run .ci/ensure-browser)")
    return path


@pytest.fixture(scope="session")
def console_url(small_demo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = Path(tmp_path_factory.mktemp("console")) / "streamlit.log"
    yield from run_console(small_demo_url, log=log)


HOSTILE_NAME = '<img src=x onerror="window.__xss=1">'
HOSTILE_WORKER = "<script>window.__xss=2</script>"


@pytest.fixture(scope="session")
def hostile_console(
    small_demo_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, float, float]]:
    """A console on a copy of the small demo where one grid's name and worker are hostile HTML.

    Yields (base URL, code of the hostile grid, its lat, its lon)."""
    from store import open_store

    folder = Path(tmp_path_factory.mktemp("hostile"))
    url = copy_demo(small_demo_url, folder / "hostile.sqlite")
    store = open_store(url)
    grid = store.read("grids", where={"kind": "base"}, order_by=["code"], limit=1)
    code = str(grid["code"].iloc[0])
    p = grid.geometry.iloc[0].representative_point()
    store.update("grids", {"code": code}, {"name": HOSTILE_NAME})
    worker = store.read("staff_grids", where={"grid_code": code})["staff_id"].tolist()
    store.update("staff", {"id": int(worker[0])}, {"name": HOSTILE_WORKER})
    store.close()
    yield from ((base, code, p.y, p.x) for base in run_console(url, log=folder / "streamlit.log"))
