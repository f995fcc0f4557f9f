from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.demo_db import run_console, small_demo_url

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
