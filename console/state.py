"""Per-process and per-session state of the console: the store, the language, the basemap."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

import pandas as pd
import streamlit as st

from console.i18n import DEFAULT_LANG, LANGS, t
from layers.basemap import BasemapConfig
from layers.offline import use_local_assets
from services import mapview, planning, settings, tracks
from services.auth import Principal
from services.overview import CitySummary, city_summary
from store import Store, open_store
from store.base import StoreError


def database_url() -> str | None:
    return os.environ.get("DATABASE_URL") or None


@st.cache_resource(show_spinner=False)
def _open(url: str | None) -> Store:
    return open_store(url)


def get_store() -> Store:
    """The process-wide store (opened once; migrations applied on open)."""
    return _open(database_url())


@st.cache_data(ttl=60, show_spinner=False)
def unit_stats(url: str) -> pd.DataFrame:
    return mapview.unit_stats(get_store())


def stats() -> pd.DataFrame:
    return unit_stats(get_store().url)


def lang() -> str:
    """zh by default; ``?lang=en`` or the sidebar choice switches to English for the session."""
    if "lang" not in st.session_state:
        q = st.query_params.get("lang", DEFAULT_LANG)
        st.session_state["lang"] = q if q in LANGS else DEFAULT_LANG
    return str(st.session_state["lang"])


@st.cache_data(ttl=300, show_spinner=False)
def _basemap(url: str) -> BasemapConfig:
    return settings.basemap(get_store())


def basemap() -> BasemapConfig:
    """The saved basemap (cached: read once, not on every rerun; forget_basemap() after a save)."""
    return _basemap(get_store().url)


def forget_basemap() -> None:
    _basemap.clear()


@st.cache_resource(show_spinner=False)
def local_assets(prefix: str) -> str:
    """Point folium's JS/CSS at the locally served copies, once per process and URL prefix."""
    use_local_assets(f"{prefix}/vendor")
    return prefix


def static_prefix() -> str:
    """Root-absolute URL of Streamlit's static folder (honours server.baseUrlPath)."""
    base = str(st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}/app/static" if base else "/app/static"


@st.cache_data(ttl=30, max_entries=16, show_spinner=False)
def _draft_state(url: str, draft_id: int, revision: int, updated_at: str) -> planning.DraftState:
    return planning.evaluate(get_store(), draft_id, revision=revision)


def draft_state(draft_id: int) -> planning.DraftState:
    """A draft recounted and validated, once per revision: reruns for clicks, selections and other
    widgets reuse it (every edit, undo, redo, rebase or publish makes a new key)."""
    d = planning.draft(get_store(), draft_id)
    return _draft_state(get_store().url, d.id, d.revision, f"{d.updated_at}|{d.status}|{d.base_version}")


@st.cache_data(ttl=300, show_spinner=False)
def _unit_choices(url: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    return planning.unit_choices(get_store())


def unit_choices() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Townships and villages for the planner's pickers (names change rarely: cached 5 minutes)."""
    return _unit_choices(get_store().url)


def store_and_city() -> tuple[Store, CitySummary]:
    """The store and the city's figures for a page; says so and stops the page when the database is
    unreachable or holds no city yet."""
    lang_ = lang()
    try:
        store = get_store()
        who = principal()
        summary = city_summary(store, stats=stats(), unit_code=None if who is None or area(who) is None else who.unit_code)
    except Exception as exc:  # the database is down or unreachable: say so, do not crash
        database_down(exc, lang_)
        st.stop()
    if summary is None:
        st.warning(t("app.no_data", lang_))
        st.stop()
    return store, summary


DB_RETRY_S = 5
F = TypeVar("F", bound=Callable[..., Any])


def guarded(fn: F) -> F:
    """For a live fragment (``@st.fragment(run_every=...)`` above ``@state.guarded``): a database
    error during one refresh shows a warning in its place instead of a traceback; the next
    refresh tries again, so the fragment comes back by itself."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StoreError as exc:
            st.warning(t("app.db_error", lang(), error=str(exc)[:300]))
            return None

    return cast(F, run)


def database_ok() -> bool:
    """True when the database answers (a store that lost its connection reconnects here)."""
    try:
        get_store().schema_version()
    except Exception:
        return False
    return True


def database_down(exc: BaseException, lang_: str) -> None:
    """The banner for a database that is down or unreachable (no traceback), and a check every
    DB_RETRY_S seconds that reruns the page by itself once the database answers again."""
    st.error(t("app.db_error", lang_, error=str(exc)[:300]))

    @st.fragment(run_every=DB_RETRY_S)
    def _retry() -> None:
        if database_ok():
            st.rerun()
        st.caption(t("app.db_retrying", lang_, s=DB_RETRY_S))

    _retry()


@st.cache_data(ttl=60, show_spinner=False)
def _staff_choices(url: str) -> pd.DataFrame:
    return tracks.staff_choices(get_store())


def staff_choices() -> pd.DataFrame:
    """Staff for the pickers (the roster changes rarely: cached a minute, not read on every rerun)."""
    return _staff_choices(get_store().url)


@st.cache_data(ttl=300, show_spinner=False)
def _townships(url: str) -> pd.DataFrame:
    return get_store().read("admin_units", where={"level": "township"}, columns=["code", "name"], geometry=False)


def townships() -> pd.DataFrame:
    """Townships/streets (code, name) for area pickers, cached five minutes."""
    return _townships(get_store().url)


def principal() -> Principal | None:
    """The signed-in principal of this browser session (console.access), or None."""
    from console import access

    return access.current(get_store())


def sign_in_page() -> None:
    """The only page of a session nobody has signed in to."""
    from console import access

    access.sign_in_form(get_store(), lang())


def refused_page() -> None:
    """What a signed-in user sees at the address of a page their role may not open."""
    st.error(t("auth.denied", lang()))


@st.cache_data(ttl=300, show_spinner=False)
def _unit_names(url: str) -> dict[str, str]:
    units = get_store().read("admin_units", columns=["code", "name"], geometry=False)
    return dict(zip(units["code"].astype(str), units["name"].astype(str), strict=True))


def unit_name(code: str) -> str | None:
    """The name of an administrative unit (cached five minutes)."""
    return _unit_names(get_store().url).get(str(code))


@st.cache_data(ttl=300, show_spinner=False)
def _city_code(url: str) -> str | None:
    top = get_store().read("admin_units", where={"level": "city"}, columns=["code"], geometry=False)
    if not len(top):
        top = get_store().read("admin_units", where={"level": "county"}, columns=["code"], geometry=False)
    codes = sorted(top["code"].astype(str))
    return codes[0] if len(codes) == 1 else None


def area(who: Principal, chosen: str | None = None) -> str | None:
    """The unit-code prefix a page filters by for ``who``: the unit picked in a filter when it
    lies inside the jurisdiction, else the jurisdiction itself; None when that is the whole city
    (no filter: the cheapest read)."""
    if chosen and who.covers(chosen):
        return str(chosen)
    city = _city_code(get_store().url)
    if city is not None and who.covers(city):
        return None
    return who.prefix


def covered(who: Principal, names: dict[str, str]) -> dict[str, str]:
    """The entries of a code -> name picker that lie inside ``who``'s jurisdiction."""
    return {code: name for code, name in names.items() if who.covers(code)}
