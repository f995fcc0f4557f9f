"""The translation table: every key in both languages, placeholders consistent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from console.i18n import TEXT, t
from layers.grids import LABEL_KEYS as GRID_KEYS
from layers.units import LABEL_KEYS as UNIT_KEYS


def test_every_key_has_both_languages_with_the_same_placeholders() -> None:
    for key, (zh, en) in TEXT.items():
        assert zh.strip() and en.strip(), key
        assert set(re.findall(r"{(\w+)", zh)) == set(re.findall(r"{(\w+)", en)), key


def test_layers_labels_are_translated() -> None:
    for key in (*GRID_KEYS, *UNIT_KEYS):
        assert key in TEXT


def test_default_is_chinese() -> None:
    assert t("page.map") == "网格地图"
    assert t("page.map", "en") == "Grid map"
    with pytest.raises(KeyError):
        t("no.such.key")


def test_every_key_used_in_the_console_exists() -> None:
    root = Path(__file__).resolve().parents[2] / "console"
    used = set()
    for path in root.rglob("*.py"):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z0-9_.]*[a-z0-9_])["']""", path.read_text(encoding="utf-8")))
    missing = sorted(k for k in used if k not in TEXT)
    assert not missing, missing
