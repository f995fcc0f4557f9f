"""Who may do what, where: users with a role and a jurisdiction, password sign-in with sessions that
expire, API tokens for other systems and devices, and the append-only audit log.

Roles (``ROLES``): administrator, planner, dispatcher, big-screen viewer (read-only), department
handler, grid worker; ``PERMISSIONS`` says which role may do which action. A jurisdiction is an
administrative unit (the city, a district, a street, a community): a user sees and acts only on
what lies inside it (``Principal.covers(code)``: unit codes nest by prefix, 6-digit city and
province codes by their non-zero head, so the city 211200 covers the district 211202 and
everything in it).

Passwords are hashed with scrypt (``hashlib.scrypt``, n=2^14, r=8, p=1, a 16-byte salt) and
compared in constant time; session and API tokens are random 32-byte strings of which only a
SHA-256 is stored. Ten failed sign-ins for a user in 15 minutes lock further attempts for that
user until the window passes. Every change and every sign-in, failed or not, is written to
``audit_log`` (a table the store refuses to update or delete).

This module is the access core; the console pages and the API endpoints call it (see
``Principal.require``) as they are put behind sign-in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from services.cases import code_range, utc
from store.base import Range, Store

__all__ = [
    "PERMISSIONS",
    "ROLES",
    "AuthError",
    "Principal",
    "audit",
    "create_api_token",
    "create_user",
    "external_principal",
    "hash_password",
    "jurisdiction_prefix",
    "list_tokens",
    "list_users",
    "read_audit",
    "case_scope",
    "case_visible",
    "redact",
    "redact_record",
    "scope_range",
    "scope_where",
    "revoke_api_token",
    "session_principal",
    "set_active",
    "set_password",
    "sign_in",
    "sign_out",
    "token_principal",
    "verify_password",
]

ROLES = ("admin", "planner", "dispatcher", "viewer", "department", "grid_worker")

# action -> roles that may do it
PERMISSIONS: dict[str, frozenset[str]] = {
    k: frozenset(v)
    for k, v in {
        "map.view": ROLES,
        "bigscreen.view": ROLES,
        "cases.view": ("admin", "dispatcher", "department", "grid_worker", "viewer"),
        "cases.act": ("admin", "dispatcher", "department", "grid_worker"),
        "cases.assign": ("admin", "dispatcher"),
        "cases.personal": ("admin", "dispatcher"),  # residents' names and phones
        "cases.export": ("admin", "dispatcher"),
        "cases.report": ("admin", "dispatcher", "department", "grid_worker"),  # a new case (phone, Open311)
        "plan.view": ("admin", "planner"),
        "plan.edit": ("admin", "planner"),
        "plan.publish": ("admin", "planner"),
        "staff.view": ("admin", "dispatcher", "planner"),
        "staff.tracks": ("admin", "dispatcher"),  # workers' movements
        "cameras.view": ("admin", "dispatcher", "planner", "viewer"),
        "cameras.manage": ("admin",),
        "positions.send": ("grid_worker",),  # a phone, for its own device only
        "positions.relay": ("admin",),  # a gateway forwarding many devices' positions
        "settings.edit": ("admin",),
        "users.manage": ("admin",),
        "audit.read": ("admin",),
    }.items()
}

SESSION_TTL = pd.Timedelta(hours=8)  # a session ends this long after sign-in …
SESSION_IDLE = pd.Timedelta(minutes=30)  # … or after this long without use
LOCK_WINDOW = pd.Timedelta(minutes=15)
LOCK_AFTER = 10
MIN_PASSWORD = 10
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")


class AuthError(Exception):
    """Sign-in or permission refused; ``code``: invalid, denied, locked, not_found, expired."""

    def __init__(self, message: str, *, code: str = "denied") -> None:
        super().__init__(message)
        self.code = code


def jurisdiction_prefix(unit_code: str) -> str:
    """The code prefix a unit's jurisdiction covers: a 6-digit province or city code by its non-zero
    head (210000 → 21, 211200 → 2112), every other code by itself."""
    code = str(unit_code).strip()
    if not code.isdigit():
        raise AuthError(f"not an administrative unit code: {unit_code!r}", code="invalid")
    if len(code) == 6:
        while code.endswith("00") and len(code) > 2:
            code = code[:-2]
    return code


@dataclass(frozen=True)
class Principal:
    """Someone (a person or an API token) acting with a role inside a unit."""

    name: str
    role: str
    unit_code: str
    kind: str = "user"  # user | token

    def can(self, action: str) -> bool:
        return self.role in PERMISSIONS.get(action, frozenset())

    def covers(self, code: Any) -> bool:
        """Is the unit, grid or case area ``code`` inside this principal's jurisdiction?"""
        if code is None or (isinstance(code, float) and code != code):
            return False
        return str(code).startswith(jurisdiction_prefix(self.unit_code))

    def require(self, action: str, code: Any = None) -> None:
        """Raise AuthError unless the role may do ``action`` (and, given a code, inside the unit)."""
        if not self.can(action):
            raise AuthError(f"{self.role} may not {action}", code="denied")
        if code is not None and not self.covers(code):
            raise AuthError(f"{code} is outside {self.unit_code}", code="denied")

    @property
    def prefix(self) -> str:
        return jurisdiction_prefix(self.unit_code)


# ------------------------------------------------------------------------------ passwords


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` for ``password`` (at least MIN_PASSWORD characters)."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise AuthError(f"a password has at least {MIN_PASSWORD} characters", code="invalid")
    if len(password) > 1024:
        raise AuthError("a password has at most 1,024 characters", code="invalid")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    """Constant-time check of ``password`` against a stored hash (False for anything malformed)."""
    if not stored or not isinstance(password, str) or len(password) > 1024:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode("utf-8"), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, _unb64(digest))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------ audit


def audit(
    store: Store,
    actor: Principal | str,
    action: str,
    *,
    target: Any = None,
    detail: str | None = None,
    client: str | None = None,
    now: Any = None,
) -> None:
    """Append one line to the audit log (who, when, what, on what, from where)."""
    who = actor if isinstance(actor, Principal) else None
    store.insert(
        "audit_log",
        {
            "ts": utc(now),
            "actor": who.name if who else str(actor),
            "role": who.role if who else None,
            "unit_code": who.unit_code if who else None,
            "action": action,
            "target": None if target is None else str(target)[:200],
            "detail": None if detail is None else str(detail)[:2000],
            "client": None if client is None else str(client)[:100],
        },
    )


def read_audit(
    store: Store, principal: Principal, *, since: Any = None, actor: str | None = None, limit: int = 1000
) -> pd.DataFrame:
    """The audit log, newest first (administrators only); reading it is itself audited. A city's
    administrator reads all of it; a district's (or lower) only the lines of its own people."""
    principal.require("audit.read")
    where: dict[str, Any] = {}
    if since is not None:
        where["ts"] = Range(utc(since), None)
    if actor:
        where["actor"] = actor
    if len(principal.prefix) > 4:  # below the city: only what the jurisdiction's own people did
        where = scope_where(principal, "unit_code", where)
    rows = store.read("audit_log", where=where or None, order_by=["-id"], limit=limit, geometry=False)
    audit(store, principal, "audit.read", detail=f"{len(rows)} rows")
    return rows


# ------------------------------------------------------------------------------ users


def _check_user_fields(username: str, role: str, unit_code: str) -> None:
    if not isinstance(username, str) or not _USERNAME.match(username):
        raise AuthError("a username is 2–64 letters, digits or . _ @ -", code="invalid")
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}; one of {', '.join(ROLES)}", code="invalid")
    jurisdiction_prefix(unit_code)


def create_user(
    store: Store,
    by: Principal,
    *,
    username: str,
    role: str,
    unit_code: str,
    password: str | None,
    display_name: str | None = None,
    now: Any = None,
) -> None:
    """A new user (administrators only, inside their own jurisdiction)."""
    by.require("users.manage", unit_code)
    _check_user_fields(username, role, unit_code)
    if store.count("users", where={"username": username}):
        raise AuthError(f"there is already a user {username!r}", code="invalid")
    ts = utc(now)
    with store.transaction():
        store.insert(
            "users",
            {"username": username, "display_name": display_name, "role": role, "unit_code": str(unit_code),
             "password_hash": hash_password(password) if password is not None else None, "active": True,
             "created_at": ts, "password_changed_at": ts if password is not None else None},  # fmt: skip
        )
        audit(store, by, "user.create", target=username, detail=f"role={role} unit={unit_code}", now=ts)


def bootstrap_admin(store: Store, *, username: str, password: str, unit_code: str, now: Any = None) -> None:
    """The first administrator of an empty users table (the set-up command; refused afterwards)."""
    if store.count("users"):
        raise AuthError("users exist already: an administrator creates the others", code="denied")
    system = Principal("system", "admin", unit_code, kind="token")
    create_user(store, system, username=username, role="admin", unit_code=unit_code, password=password, now=now)


def set_password(store: Store, by: Principal, *, username: str, password: str, now: Any = None) -> None:
    """A user's new password (the user, or an administrator over them); ends their sessions."""
    row = _user(store, username)
    if by.name != username:
        by.require("users.manage", row["unit_code"])
    ts = utc(now)
    with store.transaction():
        store.update("users", {"username": username}, {"password_hash": hash_password(password), "password_changed_at": ts})
        store.delete("user_sessions", {"username": username})
        audit(store, by, "user.password", target=username, now=ts)


def list_users(store: Store, by: Principal) -> pd.DataFrame:
    """Users inside ``by``'s jurisdiction (administrators only), without their password hashes."""
    by.require("users.manage")
    rows = store.read("users", where=scope_where(by, "unit_code"), order_by=["username"], geometry=False)
    return rows.drop(columns=["password_hash"], errors="ignore")


def set_active(store: Store, by: Principal, *, username: str, active: bool, now: Any = None) -> None:
    """Disable (ending every session) or re-enable a user inside ``by``'s jurisdiction."""
    row = _user(store, username)
    by.require("users.manage", row["unit_code"])
    if by.name == username and not active:
        raise AuthError("an administrator cannot disable themselves", code="invalid")
    ts = utc(now)
    with store.transaction():
        store.update("users", {"username": username}, {"active": bool(active)})
        if not active:
            store.delete("user_sessions", {"username": username})
        audit(store, by, "user.enable" if active else "user.disable", target=username, now=ts)


def list_tokens(store: Store, by: Principal) -> pd.DataFrame:
    """API and device tokens inside ``by``'s jurisdiction (never the tokens: they are not kept)."""
    by.require("users.manage")
    rows = store.read("api_tokens", where=scope_where(by, "unit_code"), order_by=["name"], geometry=False)
    return rows.drop(columns=["token_hash"], errors="ignore")


def _user(store: Store, username: str) -> dict[str, Any]:
    rows = store.read("users", where={"username": str(username)}, geometry=False)
    if not len(rows):
        raise AuthError(f"there is no user {username!r}", code="not_found")
    return {str(k): v for k, v in rows.iloc[0].to_dict().items()}


# ------------------------------------------------------------------------------ sessions


def sign_in(
    store: Store, *, username: str, password: str, client: str | None = None, now: Any = None
) -> tuple[str, Principal]:
    """A new session for a correct username and password: (token, principal). Every attempt is
    audited; a wrong one says no more than that; ten wrong ones in 15 minutes lock the user."""
    ts = utc(now)
    name = str(username)[:64]
    failures = store.count(
        "audit_log", where={"actor": name, "action": "signin.failed", "ts": Range(ts - LOCK_WINDOW, None)}
    )
    if failures >= LOCK_AFTER:
        audit(store, name, "signin.locked", client=client, now=ts)
        raise AuthError("too many failed sign-ins: try again in 15 minutes", code="locked")
    rows = store.read("users", where={"username": name}, geometry=False) if _USERNAME.match(name) else None
    row = rows.iloc[0].to_dict() if rows is not None and len(rows) else None
    ok = row is not None and bool(row["active"]) and verify_password(password, row["password_hash"])
    if not ok or row is None:
        audit(store, name, "signin.failed", client=client, now=ts)
        raise AuthError("wrong username or password", code="denied")
    token = secrets.token_urlsafe(32)
    principal = Principal(name, str(row["role"]), str(row["unit_code"]))
    with store.transaction():
        store.insert("user_sessions", {"token_hash": _token_hash(token), "username": name, "created_at": ts,
                                       "expires_at": ts + SESSION_TTL, "last_seen_at": ts, "client": client})  # fmt: skip
        audit(store, principal, "signin", client=client, now=ts)
    return token, principal


def session_principal(store: Store, token: str | None, *, now: Any = None) -> Principal | None:
    """The principal of a live session (and the session's use noted), None when the token is
    unknown, expired, idle too long, or its user is gone or inactive."""
    if not token or not isinstance(token, str) or len(token) > 200:
        return None
    ts = utc(now)
    key = _token_hash(token)
    rows = store.read("user_sessions", where={"token_hash": key}, geometry=False)
    if not len(rows):
        return None
    s = rows.iloc[0]
    if s["expires_at"] <= ts or (pd.notna(s["last_seen_at"]) and ts - s["last_seen_at"] > SESSION_IDLE):
        store.delete("user_sessions", {"token_hash": key})
        return None
    users = store.read("users", where={"username": str(s["username"])}, geometry=False)
    if not len(users) or not bool(users["active"].iloc[0]):
        store.delete("user_sessions", {"token_hash": key})
        return None
    store.update("user_sessions", {"token_hash": key}, {"last_seen_at": ts})
    u = users.iloc[0]
    return Principal(str(u["username"]), str(u["role"]), str(u["unit_code"]))


def external_principal(store: Store, username: str, *, client: str | None = None, now: Any = None) -> Principal | None:
    """The active console user an identity provider signed in (OIDC: matched by e-mail as the
    username), or None when there is none; the sign-in is audited either way."""
    name = str(username or "")[:200]
    rows = store.read("users", where={"username": name}, geometry=False) if _USERNAME.match(name) else None
    if rows is None or not len(rows) or not bool(rows["active"].iloc[0]):
        audit(store, name or "?", "signin.oidc_unknown", client=client, now=now)
        return None
    u = rows.iloc[0]
    p = Principal(str(u["username"]), str(u["role"]), str(u["unit_code"]))
    audit(store, p, "signin.oidc", client=client, now=now)
    return p


def sign_out(store: Store, token: str, *, now: Any = None) -> None:
    p = session_principal(store, token, now=now)
    store.delete("user_sessions", {"token_hash": _token_hash(token)})
    if p is not None:
        audit(store, p, "signout", now=now)


# ------------------------------------------------------------------------------ API tokens


def create_api_token(
    store: Store,
    by: Principal,
    *,
    name: str,
    role: str,
    unit_code: str,
    username: str | None = None,
    expires_at: Any = None,
    now: Any = None,
) -> str:
    """A token for another system or a device (shown once; only its hash is kept)."""
    by.require("users.manage", unit_code)
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}", code="invalid")
    if not name or len(name) > 100:
        raise AuthError("a token needs a name of at most 100 characters", code="invalid")
    jurisdiction_prefix(unit_code)
    token = secrets.token_urlsafe(32)
    ts = utc(now)
    with store.transaction():
        store.insert("api_tokens", {"token_hash": _token_hash(token), "name": name, "role": role, "unit_code": str(unit_code),
                                    "username": username, "created_at": ts,
                                    "expires_at": utc(expires_at) if expires_at is not None else None, "revoked_at": None})  # fmt: skip
        audit(store, by, "token.create", target=name, detail=f"role={role} unit={unit_code}", now=ts)
    return token


def token_principal(store: Store, token: str | None, *, now: Any = None) -> Principal | None:
    """The principal of a valid API token (not revoked, not expired), else None."""
    if not token or not isinstance(token, str) or len(token) > 200:
        return None
    rows = store.read("api_tokens", where={"token_hash": _token_hash(token)}, geometry=False)
    if not len(rows):
        return None
    t = rows.iloc[0]
    ts = utc(now)
    if pd.notna(t["revoked_at"]) or (pd.notna(t["expires_at"]) and t["expires_at"] <= ts):
        return None
    return Principal(str(t["name"]), str(t["role"]), str(t["unit_code"]), kind="token")


def revoke_api_token(store: Store, by: Principal, *, name: str, now: Any = None) -> int:
    """Revoke every token called ``name`` inside ``by``'s jurisdiction; how many."""
    rows = store.read("api_tokens", where={"name": name}, geometry=False)
    ts = utc(now)
    n = 0
    with store.transaction():
        for t in rows.to_dict("records"):
            by.require("users.manage", t["unit_code"])
            if t["revoked_at"] is None or pd.isna(t["revoked_at"]):
                n += store.update("api_tokens", {"token_hash": t["token_hash"]}, {"revoked_at": ts})
        audit(store, by, "token.revoke", target=name, detail=f"{n} revoked", now=ts)
    return n


def visible(principal: Principal, codes: Iterable[Any]) -> list[bool]:
    """For each code, whether ``principal`` may see it (for filtering frames and lists)."""
    prefix = principal.prefix
    return [code is not None and str(code).startswith(prefix) for code in codes]


# ------------------------------------------------------------------------------ scoping reads

PERSONAL_COLUMNS = ("reporter_name", "reporter_phone", "reporter_email")  # residents, in cases
STAFF_PERSONAL = ("phone",)  # workers' phone numbers
REDACTED = "***"
# The code column of each level, by the length of a unit code: county 6, township 9, village 12, grid 15.
CASE_LEVEL_COLUMNS = ((6, "county_code"), (9, "township_code"), (12, "village_code"), (15, "grid_code"))


def scope_range(principal: Principal) -> Range:
    """The codes inside ``principal``'s jurisdiction as a half-open text range (a prefix test the
    store can answer from an index): 211202 covers [211202, 211203)."""
    return code_range(principal.prefix)


def scope_where(principal: Principal, column: str, where: Any = None) -> dict[str, Any]:
    """``where`` (a mapping, or None) with ``column`` restricted to ``principal``'s jurisdiction."""
    out = dict(where or {})
    out[column] = scope_range(principal)
    return out


def case_scope(principal: Principal, where: Any = None) -> dict[str, Any]:
    """``where`` for the ``cases`` table restricted to the principal's jurisdiction, on the code
    column of the principal's own level (a district user by county_code, a street user by
    township_code, …)."""
    n = len(principal.prefix)
    column = next((c for size, c in CASE_LEVEL_COLUMNS if n <= size), "grid_code")
    return scope_where(principal, column, where)


def case_visible(principal: Principal, case: Any) -> bool:
    """Is a case (a mapping with the code columns) inside ``principal``'s jurisdiction? Judged by
    its most precise code: grid, else village, else township, else county."""
    for column in ("grid_code", "village_code", "township_code", "county_code"):
        code = case.get(column)
        if code is not None and not (isinstance(code, float) and code != code) and str(code):
            return principal.covers(code)
    return False


def redact(principal: Principal, frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with residents' names, phones and e-mails (cases) and workers' phones
    (staff) replaced by ``***`` for a role without ``cases.personal``; the frame itself when the
    role may see them."""
    if principal.can("cases.personal"):
        return frame
    cols = [c for c in (*PERSONAL_COLUMNS, *STAFF_PERSONAL) if c in frame.columns]
    if not cols:
        return frame
    out = frame.copy()
    for c in cols:
        out[c] = out[c].where(out[c].isna() | (out[c].astype("string") == ""), REDACTED).astype(object)
    return out


def redact_record(principal: Principal, record: dict[str, Any]) -> dict[str, Any]:
    """``redact`` for one case or staff record (a dict)."""
    if principal.can("cases.personal"):
        return record
    return {k: (REDACTED if k in (*PERSONAL_COLUMNS, *STAFF_PERSONAL) and v not in (None, "") else v)
            for k, v in record.items()}  # fmt: skip
