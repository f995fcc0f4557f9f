"""Who is using the console: sign-in, the session that survives a page reload, sign-out, and the
checks every page makes (``require``). The rules themselves live in ``services/auth.py``.

- **Password sign-in** (``sign_in_form``): ``services.auth.sign_in`` makes a session (8 h, 30 min
  idle); its token is kept in ``st.session_state`` and in a cookie ``gridconsole_session``
  (path /, SameSite=Strict, max-age 8 h) so a reload or a new tab stays signed in. Streamlit has
  no API to set a cookie from Python, so a two-line script sets it; the cookie therefore cannot be
  HttpOnly -- every user text is HTML-escaped before it is shown, which is what keeps a script
  from reading it.
- **OIDC** (optional, ``st.login``): when ``.streamlit/secrets.toml`` has an ``[auth]`` section
  (and Authlib is installed), the sign-in page also offers the site's identity provider. The
  person it returns is matched to an active console user by e-mail (``users.username``), so the
  role and jurisdiction still come from the console's own users table.
- **Kiosk** (the command center's big screen, which nobody signs in to every morning): the
  URL ``/bigscreen?kiosk=<token>`` with an API token of role ``viewer`` opens the big screen only.
- A session is re-checked against the database at most every ``RECHECK_S`` seconds, so a
  disabled user or a changed password ends other sessions within that time.
"""

from __future__ import annotations

import html
import json
import time
from typing import Any

import streamlit as st

from console.i18n import t
from services import auth
from services.auth import AuthError, Principal
from store.base import Store

COOKIE = "gridconsole_session"
RECHECK_S = 60.0
_STATE = "_auth"  # session_state key: {"token": str, "principal": Principal, "checked": float, "kind": str}


def client() -> str | None:
    """Where the person is (the browser's address as Streamlit sees it), for the audit log."""
    try:
        ip = st.context.ip_address
    except Exception:  # AppTest and older servers have no context
        ip = None
    return str(ip) if ip else "console"


def _cookie_token() -> str | None:
    try:
        value = st.context.cookies.get(COOKIE)
    except Exception:
        return None
    return str(value) if value else None


def _write_cookie(token: str | None) -> None:
    """Set (or, with None, delete) the session cookie in the browser."""
    if token is None:
        script = f"document.cookie = {json.dumps(COOKIE + '=; path=/; max-age=0; SameSite=Strict')};"
    else:
        age = int(auth.SESSION_TTL.total_seconds())
        script = f"document.cookie = {json.dumps(f'{COOKIE}={token}; path=/; max-age={age}; SameSite=Strict')};"
    st.html(f"<script>{script}</script>", unsafe_allow_javascript=True)


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file
        return False


def _oidc_principal(store: Store) -> Principal | None:
    """The console user matching the identity provider's signed-in person, if any."""
    try:
        if not st.user.is_logged_in:
            return None
        email = st.user.get("email") or st.user.get("preferred_username")
    except Exception:
        return None
    return auth.external_principal(store, str(email or ""), client=client())


def current(store: Store) -> Principal | None:
    """The signed-in principal of this browser session, or None."""
    held = st.session_state.get(_STATE)
    now = time.monotonic()
    if held and now - held["checked"] < RECHECK_S:
        return held["principal"]  # type: ignore[no-any-return]
    if held and held["kind"] == "session":
        p = auth.session_principal(store, held["token"])
        if p is None:
            st.session_state.pop(_STATE, None)
            return None
        st.session_state[_STATE] = {**held, "principal": p, "checked": now}
        return p
    if held and held["kind"] == "kiosk":
        p = auth.token_principal(store, held["token"])
        if p is None or p.role != "viewer":
            st.session_state.pop(_STATE, None)
            return None
        st.session_state[_STATE] = {**held, "principal": p, "checked": now}
        return p
    token = _cookie_token()
    if token:
        p = auth.session_principal(store, token)
        if p is not None:
            st.session_state[_STATE] = {"token": token, "principal": p, "checked": now, "kind": "session"}
            return p
    kiosk = st.query_params.get("kiosk")
    if kiosk:
        p = auth.token_principal(store, str(kiosk))
        if p is not None and p.role == "viewer":
            st.session_state[_STATE] = {"token": str(kiosk), "principal": p, "checked": now, "kind": "kiosk"}
            auth.audit(store, p, "kiosk.open", client=client())
            return p
    if _oidc_configured():
        p = _oidc_principal(store)
        if p is not None:
            st.session_state[_STATE] = {"token": "", "principal": p, "checked": now, "kind": "oidc"}
            return p
    return None


def is_kiosk() -> bool:
    held = st.session_state.get(_STATE)
    return bool(held and held["kind"] == "kiosk")


def sign_in_form(store: Store, lang: str) -> None:
    """The sign-in page: username and password (and the identity provider when configured)."""
    st.title(t("app.title", lang))
    st.subheader(t("auth.signin", lang))
    with st.form("signin"):
        username = st.text_input(t("auth.username", lang), max_chars=64, key="signin_user")
        password = st.text_input(t("auth.password", lang), type="password", max_chars=1024, key="signin_pw")
        go = st.form_submit_button(t("auth.signin", lang), type="primary")
    if go:
        try:
            token, p = auth.sign_in(store, username=username, password=password, client=client())
        except AuthError as e:
            key = "auth.locked" if e.code == "locked" else "auth.wrong"
            st.error(t(key, lang))
        else:
            st.session_state[_STATE] = {"token": token, "principal": p, "checked": time.monotonic(), "kind": "session"}
            st.session_state["_auth_cookie"] = token  # written on the next run, once the page is drawn
            st.rerun()
    if _oidc_configured():
        st.divider()
        if st.button(t("auth.oidc", lang), key="signin_oidc"):
            st.login()
        try:
            if st.user.is_logged_in:  # signed in at the provider, but no console user matches
                st.warning(t("auth.oidc_unknown", lang, who=html.escape(str(st.user.get("email") or ""))))
        except Exception:
            pass


def flush_cookie() -> None:
    """Write (or delete) the cookie of a sign-in (or sign-out) that just happened: a script
    element in the page of the run after it (the run that signed in or out ends in a rerun, which
    would drop an element drawn before it)."""
    token = st.session_state.pop("_auth_cookie", None)
    if token is not None:
        _write_cookie(str(token) or None)


def sign_out(store: Store) -> None:
    held = st.session_state.pop(_STATE, None)
    if held and held["kind"] == "session":
        auth.sign_out(store, held["token"])
    st.session_state["_auth_cookie"] = ""  # deleted in the browser on the next run
    if held and held["kind"] == "oidc":
        st.logout()


def user_box(store: Store, who: Principal, lang: str, unit_name: str | None) -> None:
    """In the sidebar: who is signed in, with which role and where; the sign-out button."""
    from console.casesui import md  # markdown-escaped: a name is shown as typed, never as markup

    st.caption(t("auth.who", lang, name=md(who.name), role=t(f"urole.{who.role}", lang), unit=md(unit_name or who.unit_code)))
    if not is_kiosk() and st.button(t("auth.signout", lang), key="signout"):
        sign_out(store)
        st.rerun()


def require(action: str, lang: str) -> Principal:
    """The signed-in principal when it may ``action``; otherwise a refusal and the page stops."""
    from console import state

    who = state.principal()
    if who is None or not who.can(action):
        st.error(t("auth.denied", lang))
        st.stop()
    return who  # type: ignore[return-value]


def audit(store: Store, who: Principal, action: str, *, target: Any = None, detail: str | None = None) -> None:
    """An audit line for something done in the console, with the browser's address."""
    auth.audit(store, who, action, target=target, detail=detail, client=client())
