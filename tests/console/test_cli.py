"""The `gridconsole` command line, run as a user runs it (a real subprocess, real files)."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

from store import open_store

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console", *args, "--db", db],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_demo_info_export_import_roundtrip(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'gc.sqlite'}"
    r = run("demo", "--size", "small", "--quiet", db=db)
    assert r.returncode == 0, r.stderr
    assert "演示城市已生成" in r.stdout
    assert "admin / gridconsole-demo" in r.stdout  # how to sign in
    again = run("demo", "--size", "small", "--quiet", "--if-empty", db=db)
    assert again.returncode == 0 and "not regenerated" in again.stdout
    assert "gridconsole-demo" not in again.stdout  # users exist: none made
    users = open_store(db).read("users", geometry=False).set_index("username")
    assert len(users) == 7 and users.loc["dispatcher_d1", "unit_code"] != "211200"
    # an upgraded database (a city, no users) gets its demo users from --if-empty
    store = open_store(db)
    store.delete("users", {"active": True})
    store.close()
    again = run("demo", "--size", "small", "--quiet", "--if-empty", "--lang", "en", db=db)
    assert again.returncode == 0 and "Sign in to the console as admin / gridconsole-demo" in again.stdout
    assert open_store(db).count("users") == 7
    info = run("info", db=db)
    assert "grids" in info.stdout and "sqlite schema v" in info.stdout
    out = tmp_path / "grids.gpkg"
    r = run("export", "grids", str(out), "--lang", "en", db=db)
    assert r.returncode == 0, r.stderr
    exported = gpd.read_file(out)
    store = open_store(db)
    assert len(exported) == store.count("grids")
    assert exported["code"].str.fullmatch(r"\d{15}").all()
    logged = store.read("audit_log", where={"action": "export.grids"}, geometry=False)
    assert len(logged) == 1 and logged["actor"].iloc[0].startswith("cli@") and logged["target"].iloc[0] == str(out)
    # a second database gets the same grids back from the file
    db2 = f"sqlite:///{tmp_path / 'other.sqlite'}"
    r = run("import", "grids", str(out), "--lang", "en", db=db2)
    assert r.returncode == 0, r.stderr
    assert "Imported" in r.stdout
    assert open_store(db2).count("grids") == len(exported)


def test_bad_import_changes_nothing_and_says_why(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'gc.sqlite'}"
    bad = tmp_path / "buildings.geojson"
    frame = gpd.GeoDataFrame(
        {"id": [1, 1], "households": [10, -3]},
        geometry=[box(123.84, 42.29, 123.8401, 42.2901), box(123.85, 42.29, 123.8501, 42.2901)],
        crs="EPSG:4326",
    )
    bad.write_text(frame.to_json())
    r = run("import", "buildings", str(bad), "--lang", "en", db=db)
    assert r.returncode == 2
    assert "nothing was written" in r.stderr
    assert "households" in r.stderr
    assert open_store(db).count("buildings") == 0
    garbage = tmp_path / "x.geojson"
    garbage.write_text(json.dumps({"not": "geojson"})[:7])
    r = run("import", "buildings", str(garbage), "--lang", "en", db=db)
    assert r.returncode != 0 and "Traceback" not in r.stderr


def test_unknown_kind_is_a_clear_error(tmp_path: Path) -> None:
    r = run("import", "spaceships", "x.csv", "--lang", "en", db=f"sqlite:///{tmp_path / 'gc.sqlite'}")
    assert r.returncode == 1
    assert "KIND must be one of" in r.stderr


def test_import_with_warnings_reports_them(tmp_path: Path) -> None:
    """A repaired geometry is imported and its warning printed (once crashed the CLI)."""
    from shapely.geometry import Polygon

    db = f"sqlite:///{tmp_path / 'gc.sqlite'}"
    bowtie = Polygon([(123.84, 42.29), (123.85, 42.30), (123.85, 42.29), (123.84, 42.30)])
    frame = gpd.GeoDataFrame(
        {"code": ["211202"], "name": ["银州区"], "level": ["county"], "kind": ["district"]},
        geometry=[bowtie],
        crs="EPSG:4326",
    )
    path = tmp_path / "boundaries.geojson"
    path.write_text(frame.to_json())
    r = run("import", "boundaries", str(path), "--lang", "en", db=db)
    assert r.returncode == 0, r.stderr
    assert "  ! " in r.stdout
    assert open_store(db).count("admin_units") == 1


def test_escalate_verb_runs_the_sweep(tmp_path: Path) -> None:
    from services import cases as cs
    from tests.fixtures.cases_world import NOW, build_world
    from tests.store.sample import at

    db = f"sqlite:///{tmp_path / 'esc.sqlite'}"
    store = open_store(db)
    try:
        build_world(store)
        lon, lat = at(-400, 200)
        cid = cs.create_case(store, cs.NewCase(category="public_order", lon=lon, lat=lat, description="夜间聚集"), now=NOW).case_id
        cs.assign(store, cid, 4, actor="d", now=NOW)  # 15 minutes to accept: long gone by the real clock
    finally:
        store.close()
    r = run("escalate", db=db)
    assert r.returncode == 0, r.stderr
    assert f"escalated case {cid}: not accepted in time" in r.stdout and "1 escalated" in r.stdout
    again = run("escalate", db=db)
    assert "0 escalated" in again.stdout  # not twice within one window


# ------------------------------------------------------------------------------ users and tokens

SECRET = "correct-horse-battery"


def cli(*args: str, db: str, input: str | None = None) -> Any:
    """The command in-process (typer's CliRunner: fast), in English."""
    from typer.testing import CliRunner

    from console.cli import app

    return CliRunner().invoke(app, [*args, "--lang", "en", "--db", db], input=input)


def _no_secrets(db: str, secrets: list[str]) -> None:
    """No token or password anywhere in the audit log."""
    store = open_store(db)
    try:
        log = store.read("audit_log", geometry=False).astype(str).to_string()
    finally:
        store.close()
    for s in secrets:
        assert s not in log


def test_user_add_passwd_list_disable(tmp_path: Path) -> None:
    from services import auth

    db = f"sqlite:///{tmp_path / 'users.sqlite'}"
    r = cli("user", "add", "boss", "--role", "dispatcher", "--unit", "211200", "--password-stdin", db=db, input=SECRET)
    assert r.exit_code == 1 and "The first user must be an administrator" in r.stderr
    r = cli("user", "add", "boss", "--role", "admin", "--unit", "211200", "--password-stdin", db=db, input="short\n")
    assert r.exit_code == 1 and "at least 10 characters" in r.stderr
    # the first administrator, its password from stdin (a real process: real stdin)
    p = subprocess.run([sys.executable, "-m", "console", "user", "add", "boss", "--role", "admin", "--unit", "211200",
                        "--name", "The Boss", "--password-stdin", "--lang", "en", "--db", db],
                       cwd=ROOT, capture_output=True, text=True, input=SECRET + "\n", timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "User boss created (role admin, unit 211200)" in p.stdout
    # later users: created by the operator at the machine, audited as cli@<os user>
    r = cli("user", "add", "ana", "--role", "dispatcher", "--unit", "211202", "--password-stdin", db=db, input=SECRET)
    assert r.exit_code == 0, r.output
    # clear errors
    r = cli("user", "add", "ana", "--role", "dispatcher", "--unit", "211202", "--password-stdin", db=db, input=SECRET)
    assert r.exit_code == 1 and "There is already a user ana" in r.stderr
    r = cli("user", "add", "bob", "--role", "wizard", "--unit", "211202", "--password-stdin", db=db, input=SECRET)
    assert r.exit_code == 1 and "Unknown role 'wizard'" in r.stderr and "grid_worker" in r.stderr
    r = cli("user", "add", "bob", "--role", "viewer", "--unit", "21x2", "--password-stdin", db=db, input=SECRET)
    assert r.exit_code == 1 and "not an administrative unit code" in r.stderr
    r = cli("user", "add", "b", "--role", "viewer", "--unit", "211202", "--password-stdin", db=db, input=SECRET)
    assert r.exit_code == 1 and "username" in r.stderr and "Traceback" not in r.output
    store = open_store(db)
    try:
        store.write("admin_units", pd.DataFrame({"code": ["211200"], "name": ["铁岭市"], "level": ["city"], "kind": ["city"]}))
        store.write("admin_units", pd.DataFrame({"code": ["211202"], "name": ["银州区"], "level": ["county"], "kind": ["district"]}))
        users = store.read("users", geometry=False).set_index("username")
        assert users.loc["boss", "display_name"] == "The Boss" and users.loc["ana", "unit_code"] == "211202"
        created = store.read("audit_log", where={"action": ["user.create", "user.bootstrap"]}, geometry=False)
        assert set(created["actor"]) >= {f"cli@{getpass.getuser()}"}
    finally:
        store.close()
    r = cli("user", "add", "bob", "--role", "viewer", "--unit", "999999", "--password-stdin", db=db, input=SECRET)
    assert r.exit_code == 1 and "no administrative unit or grid 999999" in r.stderr
    # a new password: typed twice without echo
    r = cli("user", "passwd", "ana", db=db, input="another-password\nanother-typo!!\n")
    assert r.exit_code == 1 and "differ" in r.stderr
    r = cli("user", "passwd", "ana", db=db, input="another-password\nanother-password\n")
    assert r.exit_code == 0 and "another-password" not in r.output
    r = cli("user", "passwd", "nobody", "--password-stdin", db=db, input=SECRET)
    assert r.exit_code == 1 and "There is no user nobody" in r.stderr
    store = open_store(db)
    try:
        auth.sign_in(store, username="ana", password="another-password")
        token, _ = auth.sign_in(store, username="boss", password=SECRET)
    finally:
        store.close()
    r = cli("user", "list", db=db)
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["username", "display_name", "role", "unit_code", "active", "last_signin"]
    ana = next(line for line in lines if line.startswith("ana "))
    assert "dispatcher" in ana and "211202" in ana and "True" in ana and "UTC" in ana
    assert "scrypt" not in r.output and SECRET not in r.output
    # disable: no more sign-in, sessions gone, audited
    r = cli("user", "disable", "boss", db=db)
    assert r.exit_code == 0 and "boss disabled" in r.stdout
    store = open_store(db)
    try:
        assert auth.session_principal(store, token) is None
        assert store.count("user_sessions", where={"username": "boss"}) == 0
        with pytest.raises(auth.AuthError):
            auth.sign_in(store, username="boss", password=SECRET)
        assert store.count("audit_log", where={"action": "user.disable", "target": "boss"}) == 1
    finally:
        store.close()
    assert cli("user", "enable", "boss", db=db).exit_code == 0
    assert cli("user", "disable", "nobody", db=db).exit_code == 1
    _no_secrets(db, [SECRET, "another-password", token])


def test_token_create_list_revoke(tmp_path: Path) -> None:
    from services import auth

    db = f"sqlite:///{tmp_path / 'tokens.sqlite'}"
    r = cli("token", "create", "bigscreen", "--role", "viewer", "--unit", "211200", "--days", "30", db=db)
    assert r.exit_code == 0, r.output
    token = r.stdout.strip()
    assert len(token.splitlines()) == 1 and len(token) >= 40  # stdout: the token alone (for scripts)
    assert "shown this once" in r.stderr and "expires" in r.stderr
    r = cli("token", "create", "--device", "phone-7", "--unit", "211202", db=db)
    assert r.exit_code == 0, r.output
    device_token = r.stdout.strip()
    assert "no staff member has the device id phone-7" in r.stderr
    store = open_store(db)
    try:
        p = auth.token_principal(store, token)
        assert p is not None and (p.name, p.role, p.unit_code) == ("bigscreen", "viewer", "211200")
        d = auth.token_principal(store, device_token)
        assert d is not None and (d.name, d.role, d.unit_code) == ("device:phone-7", "grid_worker", "211202")
        row = store.read("api_tokens", where={"name": "bigscreen"}, geometry=False).iloc[0]
        assert pd.Timedelta(days=29) < row["expires_at"] - row["created_at"] <= pd.Timedelta(days=30)
        assert token not in store.read("api_tokens", geometry=False).astype(str).to_string()  # only the hash
    finally:
        store.close()
    # clear errors
    r = cli("token", "create", "--device", "phone-8", "--role", "admin", "--unit", "211200", db=db)
    assert r.exit_code == 1 and "grid_worker" in r.stderr
    r = cli("token", "create", "x", "--role", "wizard", "--unit", "211200", db=db)
    assert r.exit_code == 1 and "Unknown role" in r.stderr
    r = cli("token", "create", "x", "--role", "viewer", "--unit", "abc", db=db)
    assert r.exit_code == 1 and "not an administrative unit code" in r.stderr
    r = cli("token", "create", "--role", "viewer", "--unit", "211200", db=db)
    assert r.exit_code == 1 and "NAME" in r.stderr
    r = cli("token", "create", "x", "--role", "viewer", "--unit", "211200", "--days", "0", db=db)
    assert r.exit_code == 1 and "--days" in r.stderr
    # the list never shows a token
    r = cli("token", "list", db=db)
    assert r.exit_code == 0
    assert "bigscreen" in r.stdout and "device:phone-7" in r.stdout and "active" in r.stdout
    assert token not in r.output and device_token not in r.output
    # revoke
    r = cli("token", "revoke", "bigscreen", db=db)
    assert r.exit_code == 0 and "Revoked 1 token(s) named bigscreen" in r.stdout
    r = cli("token", "revoke", "--device", "phone-7", db=db)
    assert r.exit_code == 0
    r = cli("token", "revoke", "bigscreen", db=db)
    assert r.exit_code == 1 and "no active token named bigscreen" in r.stderr
    r = cli("token", "revoke", "never-made", db=db)
    assert r.exit_code == 1 and "no active token named never-made" in r.stderr
    store = open_store(db)
    try:
        assert auth.token_principal(store, token) is None and auth.token_principal(store, device_token) is None
        assert set(store.read("audit_log", where={"action": "token.revoke"}, geometry=False)["actor"]) == {
            f"cli@{getpass.getuser()}"
        }
    finally:
        store.close()
    assert "revoked" in cli("token", "list", db=db).stdout
    _no_secrets(db, [token, device_token])


def test_create_demo_users_only_into_an_empty_table(sqlite_store: Any) -> None:
    from demo.users import DEMO_PASSWORD, create_demo_users
    from services import auth

    sqlite_store.write("admin_units", pd.DataFrame({"code": ["211200", "211204", "211202"], "name": ["c", "d2", "d1"],
                                                    "level": ["city", "county", "county"], "kind": ["city"] * 3,
                                                    "parent_code": [None, "211200", "211200"]}))  # fmt: skip
    made = create_demo_users(sqlite_store)
    assert made == ["admin", "dispatcher", "planner", "viewer", "department", "worker", "dispatcher_d1"]
    users = sqlite_store.read("users", geometry=False).set_index("username")
    assert users.loc["dispatcher_d1", "unit_code"] == "211202" and users.loc["worker", "role"] == "grid_worker"
    assert (users.drop(index="dispatcher_d1")["unit_code"] == "211200").all()
    _, p = auth.sign_in(sqlite_store, username="dispatcher_d1", password=DEMO_PASSWORD)
    assert p.role == "dispatcher" and p.covers("211202001") and not p.covers("211204")
    assert create_demo_users(sqlite_store) == []  # never twice, never beside real users
