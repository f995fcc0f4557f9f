"""Users & audit (administrators): the users and tokens of the jurisdiction, and the audit log."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from console import access, state
from console.i18n import t
from services import auth
from services.auth import AuthError

lang = state.lang()
who = access.require("users.manage", lang)
store = state.get_store()
st.title(t("page.users", lang))
roles = list(auth.ROLES)

flash = st.session_state.pop("_users_flash", None)
if flash:
    getattr(st, flash[0])(flash[1])

tab_users, tab_tokens, tab_audit = st.tabs([t("users.users", lang), t("users.tokens", lang), t("users.audit", lang)])

with tab_users:
    users = auth.list_users(store, who)
    st.dataframe(
        pd.DataFrame({
            t("auth.username", lang): users["username"],
            t("users.display_name", lang): users["display_name"],
            t("users.role", lang): users["role"].map(lambda r: t(f"urole.{r}", lang)),
            t("users.unit", lang): users["unit_code"].map(lambda c: state.unit_name(c) or c),
            t("users.active", lang): users["active"],
        }),
        hide_index=True,
        width="stretch",
    )
    with st.form("user_add", clear_on_submit=True):
        st.markdown(f"**{t('users.add', lang)}**")
        c = list(st.columns(3))
        username = c[0].text_input(t("auth.username", lang), max_chars=64)
        name = c[1].text_input(t("users.display_name", lang), max_chars=100)
        role = c[2].selectbox(t("users.role", lang), roles, format_func=lambda r: t(f"urole.{r}", lang))
        c = list(st.columns(3))
        unit = c[0].text_input(t("users.unit_code", lang), value=who.unit_code, max_chars=15)
        pw = c[1].text_input(t("auth.password", lang), type="password", max_chars=1024)
        pw2 = c[2].text_input(t("users.password_again", lang), type="password", max_chars=1024)
        if st.form_submit_button(t("users.add", lang)):
            try:
                if pw != pw2:
                    raise AuthError(t("users.password_mismatch", lang), code="invalid")
                auth.create_user(store, who, username=username.strip(), role=role, unit_code=unit.strip(),
                                 password=pw, display_name=name.strip() or None)  # fmt: skip
            except AuthError as e:
                st.error(t("users.refused", lang, error=str(e)))
            else:
                st.session_state["_users_flash"] = ("success", t("users.added", lang, name=username))
                st.rerun()
    if len(users):
        c = list(st.columns([2, 1, 1]))
        pick = c[0].selectbox(t("auth.username", lang), users["username"].tolist(), key="users_pick")
        row = users[users["username"] == pick].iloc[0]
        active = bool(row["active"])
        if c[1].button(t("users.disable" if active else "users.enable", lang), key="users_toggle"):
            try:
                auth.set_active(store, who, username=pick, active=not active)
            except AuthError as e:
                st.error(t("users.refused", lang, error=str(e)))
            else:
                st.rerun()
        with c[2].popover(t("users.reset_password", lang)):
            new_pw = st.text_input(t("auth.password", lang), type="password", max_chars=1024, key="users_new_pw")
            if st.button(t("users.reset_password", lang), key="users_reset_go"):
                try:
                    auth.set_password(store, who, username=pick, password=new_pw)
                except AuthError as e:
                    st.error(t("users.refused", lang, error=str(e)))
                else:
                    st.success(t("users.password_set", lang, name=pick))

with tab_tokens:
    tokens = auth.list_tokens(store, who)
    st.dataframe(tokens, hide_index=True, width="stretch")
    made = st.session_state.pop("_token_made", None)
    if made:  # shown once: only its hash is kept
        st.success(t("users.token_once", lang))
        st.code(made, language=None)
    with st.form("token_add", clear_on_submit=True):
        c = list(st.columns(3))
        name = c[0].text_input(t("users.token_name", lang), max_chars=100)
        role = c[1].selectbox(t("users.role", lang), roles, format_func=lambda r: t(f"urole.{r}", lang), key="token_role")
        unit = c[2].text_input(t("users.unit_code", lang), value=who.unit_code, max_chars=15, key="token_unit")
        days = st.number_input(t("users.token_days", lang), min_value=0, max_value=3650, value=365)
        if st.form_submit_button(t("users.token_add", lang)):
            try:
                expires = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=int(days)) if days else None
                token = auth.create_api_token(store, who, name=name.strip(), role=role, unit_code=unit.strip(), expires_at=expires)
            except AuthError as e:
                st.error(t("users.refused", lang, error=str(e)))
            else:
                st.session_state["_token_made"] = token
                st.rerun()
    live = tokens[tokens["revoked_at"].isna()]["name"].drop_duplicates().tolist() if len(tokens) else []
    if live:
        c = list(st.columns([2, 1]))
        pick = c[0].selectbox(t("users.token_name", lang), live, key="token_pick")
        if c[1].button(t("users.token_revoke", lang), key="token_revoke"):
            n = auth.revoke_api_token(store, who, name=pick)
            st.session_state["_users_flash"] = ("success", t("users.token_revoked", lang, n=n))
            st.rerun()

with tab_audit:  # read on request: every read of the audit log is itself audited
    with st.form("audit_query"):
        c = list(st.columns([1, 1, 2]))
        actor = c[0].text_input(t("users.audit_actor", lang), max_chars=200, key="audit_actor")
        days = c[1].number_input(t("users.audit_days", lang), min_value=1, max_value=3650, value=7, key="audit_days")
        if st.form_submit_button(t("users.audit_show", lang)):
            since = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=int(days))
            st.session_state["_audit_rows"] = auth.read_audit(store, who, since=since, actor=actor.strip() or None, limit=5000)
    log = st.session_state.get("_audit_rows")
    if log is not None:
        st.caption(t("users.audit_rows", lang, n=len(log)))
        st.dataframe(log, hide_index=True, width="stretch")
