"""The access core on both stores: passwords, sessions that expire, lock-out, roles and
jurisdictions, API tokens, and an audit log nobody can edit."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from services import auth
from store.base import StoreError
from tests.fixtures.cases_world import NOW

CITY, DISTRICT, OTHER_DISTRICT, STREET, COMMUNITY = "211200", "211202", "211204", "211202001", "211202001001"
ADMIN = auth.Principal("root", "admin", CITY)
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Fast hashes for the tests that are not about hashing (the hash records its own cost)."""
    if request.node.name != "test_passwords_are_salted_scrypt_and_checked_in_constant_time":
        monkeypatch.setattr(auth, "_SCRYPT", {"n": 2**8, "r": 8, "p": 1})


@pytest.fixture
def users(store: Any) -> Any:
    auth.create_user(store, ADMIN, username="li.dispatch", role="dispatcher", unit_code=DISTRICT, password=PASSWORD,
                     display_name="李调度", now=NOW)  # fmt: skip
    auth.create_user(store, ADMIN, username="wang.grid", role="grid_worker", unit_code=COMMUNITY, password=PASSWORD, now=NOW)
    return store


def test_passwords_are_salted_scrypt_and_checked_in_constant_time() -> None:
    a, b = auth.hash_password(PASSWORD), auth.hash_password(PASSWORD)
    assert a != b and a.startswith("scrypt$16384$8$1$") and PASSWORD not in a
    assert auth.verify_password(PASSWORD, a) and not auth.verify_password(PASSWORD + "x", a)
    for bad in (None, "", "md5$x", "scrypt$x$y$z$w$v", "scrypt$16384$8$1$!!$!!"):
        assert auth.verify_password(PASSWORD, bad) is False
    with pytest.raises(auth.AuthError, match="at least"):
        auth.hash_password("short")


def test_jurisdictions_nest_by_code() -> None:
    assert auth.jurisdiction_prefix("211200") == "2112" and auth.jurisdiction_prefix("210000") == "21"
    assert auth.jurisdiction_prefix("211202") == "211202" and auth.jurisdiction_prefix(STREET) == STREET
    city, district = ADMIN, auth.Principal("d", "dispatcher", DISTRICT)
    assert city.covers(OTHER_DISTRICT) and city.covers(COMMUNITY + "001")
    assert district.covers(COMMUNITY) and not district.covers(OTHER_DISTRICT + "001") and not district.covers(None)
    assert auth.visible(district, [COMMUNITY, OTHER_DISTRICT, None]) == [True, False, False]
    with pytest.raises(auth.AuthError):
        auth.jurisdiction_prefix("2112'; --")


def test_roles_allow_what_they_need_and_nothing_else() -> None:
    viewer = auth.Principal("wall", "viewer", CITY)
    assert viewer.can("bigscreen.view") and viewer.can("cases.view") and not viewer.can("cases.act")
    assert not viewer.can("cases.personal") and not viewer.can("staff.tracks")
    planner = auth.Principal("p", "planner", DISTRICT)
    assert planner.can("plan.publish") and not planner.can("cases.assign")
    dispatcher = auth.Principal("d", "dispatcher", DISTRICT)
    dispatcher.require("cases.assign", COMMUNITY)
    with pytest.raises(auth.AuthError):
        dispatcher.require("cases.assign", OTHER_DISTRICT + "001001")
    with pytest.raises(auth.AuthError):
        dispatcher.require("users.manage")
    assert set(auth.PERMISSIONS["audit.read"]) == {"admin"}
    assert all(set(r) <= set(auth.ROLES) for r in auth.PERMISSIONS.values())


def test_sign_in_session_expiry_and_sign_out(users: Any) -> None:
    token, who = auth.sign_in(users, username="li.dispatch", password=PASSWORD, client="10.0.0.8", now=NOW)
    assert who == auth.Principal("li.dispatch", "dispatcher", DISTRICT)
    assert users.read("user_sessions", geometry=False)["token_hash"].iloc[0] != token  # only a hash is kept
    assert auth.session_principal(users, token, now=NOW + pd.Timedelta(minutes=20)) == who
    # used 20 minutes ago: still alive 25 minutes later, idle 31 minutes ends it
    assert auth.session_principal(users, token, now=NOW + pd.Timedelta(minutes=45)) == who
    assert auth.session_principal(users, token, now=NOW + pd.Timedelta(minutes=77)) is None
    token2, _ = auth.sign_in(users, username="li.dispatch", password=PASSWORD, now=NOW)
    assert auth.session_principal(users, token2, now=NOW + pd.Timedelta(hours=9)) is None  # past 8 hours
    token3, _ = auth.sign_in(users, username="li.dispatch", password=PASSWORD, now=NOW)
    auth.sign_out(users, token3, now=NOW)
    assert auth.session_principal(users, token3, now=NOW) is None
    for junk in (None, "", "x" * 500, "' OR 1=1 --"):
        assert auth.session_principal(users, junk, now=NOW) is None


def test_wrong_passwords_say_little_and_lock_after_ten(users: Any) -> None:
    for name in ("li.dispatch", "nobody", "'; DROP TABLE users; --"):
        with pytest.raises(auth.AuthError, match="wrong username or password"):
            auth.sign_in(users, username=name, password="not the password", now=NOW)
    for _ in range(10):
        with pytest.raises(auth.AuthError):
            auth.sign_in(users, username="wang.grid", password="guess guess", now=NOW)
    with pytest.raises(auth.AuthError) as e:
        auth.sign_in(users, username="wang.grid", password=PASSWORD, now=NOW)  # right, but locked
    assert e.value.code == "locked"
    token, _ = auth.sign_in(users, username="wang.grid", password=PASSWORD, now=NOW + pd.Timedelta(minutes=16))
    assert token and users.count("users") == 2


def test_password_change_ends_sessions_and_users_stay_in_their_unit(users: Any) -> None:
    token, who = auth.sign_in(users, username="wang.grid", password=PASSWORD, now=NOW)
    auth.set_password(users, who, username="wang.grid", password="a new long password", now=NOW)
    assert auth.session_principal(users, token, now=NOW) is None
    district_admin = auth.Principal("d-admin", "admin", DISTRICT)
    with pytest.raises(auth.AuthError):
        auth.create_user(users, district_admin, username="x", role="planner", unit_code=OTHER_DISTRICT, password=PASSWORD)
    with pytest.raises(auth.AuthError):
        auth.create_user(users, who, username="y", role="admin", unit_code=COMMUNITY, password=PASSWORD)  # a grid worker
    with pytest.raises(auth.AuthError, match="already"):
        auth.create_user(users, ADMIN, username="wang.grid", role="planner", unit_code=DISTRICT, password=PASSWORD)
    with pytest.raises(auth.AuthError, match="role"):
        auth.create_user(users, ADMIN, username="zed", role="god", unit_code=DISTRICT, password=PASSWORD)


def test_api_tokens(users: Any) -> None:
    token = auth.create_api_token(users, ADMIN, name="media-gateway", role="viewer", unit_code=CITY, now=NOW)
    assert auth.token_principal(users, token, now=NOW) == auth.Principal("media-gateway", "viewer", CITY, kind="token")
    assert auth.token_principal(users, token + "x", now=NOW) is None
    assert auth.revoke_api_token(users, ADMIN, name="media-gateway", now=NOW) == 1
    assert auth.token_principal(users, token, now=NOW) is None
    short = auth.create_api_token(users, ADMIN, name="tmp", role="viewer", unit_code=CITY, expires_at=NOW + pd.Timedelta(hours=1), now=NOW)
    assert auth.token_principal(users, short, now=NOW + pd.Timedelta(hours=2)) is None


def test_the_audit_log_records_and_cannot_be_edited(users: Any) -> None:
    with pytest.raises(auth.AuthError):
        auth.sign_in(users, username="li.dispatch", password="nope nope nope", client="10.9.9.9", now=NOW)
    auth.sign_in(users, username="li.dispatch", password=PASSWORD, client="10.0.0.8", now=NOW)
    log = auth.read_audit(users, ADMIN)
    actions = log["action"].tolist()
    assert {"user.create", "signin.failed", "signin"} <= set(actions)
    failed = log[log["action"] == "signin.failed"].iloc[0]
    assert failed["actor"] == "li.dispatch" and failed["client"] == "10.9.9.9"
    with pytest.raises(auth.AuthError):
        auth.read_audit(users, auth.Principal("li.dispatch", "dispatcher", DISTRICT))
    first = int(log["id"].min())
    with pytest.raises(StoreError):
        users.update("audit_log", {"id": first}, {"action": "nothing happened"})
    with pytest.raises(StoreError):
        users.delete("audit_log", {"id": first})
    assert users.read("audit_log", where={"id": first}, geometry=False)["action"].iloc[0] == "user.create"


def test_bootstrap_only_once(store: Any) -> None:
    auth.bootstrap_admin(store, username="root", password=PASSWORD, unit_code=CITY, now=NOW)
    token, who = auth.sign_in(store, username="root", password=PASSWORD, now=NOW)
    assert who.role == "admin" and token
    with pytest.raises(auth.AuthError):
        auth.bootstrap_admin(store, username="root2", password=PASSWORD, unit_code=CITY, now=NOW)
