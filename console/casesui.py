"""Pieces the dispatch and cases pages share: a case's details, its actions and its timeline.

User text (descriptions, addresses, names, notes) is shown with ``st.text`` or in data frames, or
escaped with ``md`` before it goes into Markdown: Streamlit renders Markdown links and images, so an
unescaped ``![](http://…)`` in a description would make the browser fetch it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from console import state
from console.i18n import t
from services import cases as cs
from services.sla import limit_text

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$&])")
def actor() -> str:
    """Who is acting: the signed-in user's name (what the case timeline records)."""
    from console import state

    who = state.principal()
    return who.name if who is not None else "console"


def may(action: str) -> bool:
    """May the signed-in user do ``action`` (services.auth.PERMISSIONS)?"""
    from console import state

    who = state.principal()
    return who is not None and who.can(action)


def pickers(store: Any, lang: str) -> tuple[dict[str, str], dict[str, str]]:
    """(category code → name, street/township code → name) for the pages' filters."""
    cats = cs.categories(store)
    cat_names = {str(k): str(v) for k, v in zip(cats["code"], cats["name_zh" if lang == "zh" else "name_en"], strict=True)}
    units = state.townships()
    names = {str(k): str(v) for k, v in zip(units["code"], units["name"], strict=True)}
    who = state.principal()
    return cat_names, state.covered(who, names) if who is not None else {}


def visible_case(store: Any, case_id: int) -> dict[str, Any]:
    """A case for the signed-in user: CaseNotFound when it lies outside their jurisdiction (as if
    it did not exist), residents' details redacted for roles that may not see them."""
    from console import state
    from services import auth

    who = state.principal()
    case = cs.get_case(store, int(case_id))
    if who is None or (state.area(who) is not None and not auth.case_visible(who, case)):
        raise cs.CaseNotFound(f"no case {int(case_id)}")
    return auth.redact_record(who, case)


def outcome(out: Any, lang: str) -> None:
    """Say how many of a bulk action's cases went through (shown after the rerun), and rerun."""
    st.session_state["_case_flash"] = ("success", t("dispatch.bulk_done", lang, ok=sum(o.ok for o in out), n=len(out)))
    st.rerun()


def md(text: Any) -> str:
    """User text made inert for st.markdown/st.caption: Markdown and HTML characters escaped."""
    if text is None or (isinstance(text, float) and text != text):
        return "—"
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def _missing(v: Any) -> bool:
    return v is None or bool(pd.isna(v))


def local(ts: Any, tz: str, fmt: str = "%m-%d %H:%M") -> str:
    if ts is None or pd.isna(ts):
        return "—"
    return pd.Timestamp(ts).tz_convert(tz).strftime(fmt)


def state_label(state: Any, lang: str) -> str:
    key = f"cstate.{state}"
    try:
        return t(key, lang)
    except KeyError:
        return str(state)


def due_text(case: Mapping[str, Any], lang: str, now: pd.Timestamp) -> str:
    dl = case.get("deadline_at")
    if dl is None or pd.isna(dl):
        return t("case.no_deadline", lang)
    left = (pd.Timestamp(dl) - now).total_seconds()
    mins = int(abs(left) // 60)
    span = f"{mins // 60} h {mins % 60:02d} min" if mins >= 60 else f"{mins} min"
    return t("case.overdue_by", lang, span=span) if left < 0 else t("case.due_in", lang, span=span)


def case_header(case: Mapping[str, Any], lang: str, tz: str) -> None:
    """Title line, badges and the facts of one case."""
    now = pd.Timestamp.now(tz="UTC")
    name = case.get("category_zh") if lang == "zh" else case.get("category_en")
    st.subheader(f"#{case['id']} · {md(name)}")
    badges = [f":blue-badge[{md(state_label(case['state'], lang))}]"]
    badges.append(f":gray-badge[{md(t('kind.' + str(case.get('kind') or 'deadline'), lang))}]")
    if int(case.get("urgency") or 1) >= 2:
        badges.append(f":orange-badge[{md(t('urgency.' + str(int(case['urgency'])), lang))}]")
    if case.get("overdue"):
        badges.append(f":red-badge[{md(t('case.overdue', lang))}]")
    elif case.get("due_soon"):
        badges.append(f":orange-badge[{md(t('case.due_soon', lang))}]")
    level = int(case.get("escalation_level") or 0)
    if level:
        badges.append(f":violet-badge[{md(t('case.escalated_to', lang, level=t('level.' + cs.ESCALATION_LEVELS[level], lang)))}]")
    if int(case.get("reports") or 1) > 1:
        badges.append(f":gray-badge[{md(t('case.reports', lang, n=int(case['reports'])))}]")
    st.markdown(" ".join(badges))
    st.text(case.get("description") or "—")
    facts = {
        t("case.address", lang): case.get("address") or "—",
        t("case.grid", lang): case.get("grid_code") or "—",
        t("case.reported", lang): f"{local(case.get('reported_at'), tz)} · {t('source.' + str(case.get('source')), lang)}",
        t("case.reporter", lang): (" ".join(str(v) for v in (case.get("reporter_name"), case.get("reporter_phone")) if v) or "—")
        if may("cases.personal") else t("auth.hidden", lang),
        t("case.assignee", lang): case.get("assignee_name") or t("case.unassigned", lang),
        t("case.deadline", lang): f"{local(case.get('deadline_at'), tz)} ({due_text(case, lang, now)})",
    }
    if case.get("time_limit"):
        facts[t("case.limit", lang)] = limit_text(float(case["time_limit"]), str(case.get("limit_unit")), lang)
    st.dataframe(pd.DataFrame({"k": list(facts), "v": [str(v) for v in facts.values()]}), hide_index=True,
                 use_container_width=True, column_config={"k": t("case.field", lang), "v": t("case.value", lang)})  # fmt: skip
    photos = case.get("photo_urls") or []
    if photos:
        st.caption(t("case.photos", lang))
        for i, url in enumerate(photos, 1):
            st.text(f"{i}. {url}")  # links are shown, not loaded: the intranet may not reach them


def timeline(store: Any, case_id: int, lang: str, tz: str) -> None:
    ev = cs.timeline(store, case_id)
    if not len(ev):
        st.caption(t("case.no_events", lang))
        return
    table = pd.DataFrame(
        {
            t("ev.ts", lang): [local(v, tz, "%Y-%m-%d %H:%M:%S") for v in ev["ts"]],
            t("ev.action", lang): [_action_label(a, lang) for a in ev["action"]],
            # a missing state is NaN when read back (truthy): the first event showed "nan → 已上报"
            t("ev.states", lang): [
                f"{state_label(a, lang)} → {state_label(b, lang)}" if not _missing(a) and not _missing(b) and a != b
                else ("" if _missing(b) else state_label(b, lang))
                for a, b in zip(ev["from_state"], ev["to_state"], strict=True)
            ],
            t("ev.actor", lang): ev["actor"].fillna(""),
            t("ev.staff", lang): ev["staff_name"].fillna(""),
            t("ev.note", lang): ev["note"].fillna(""),
        }
    )
    st.dataframe(table, hide_index=True, use_container_width=True)


def _action_label(action: Any, lang: str) -> str:
    try:
        return t(f"action.{action}", lang)
    except KeyError:
        return str(action)


# actions offered as buttons for a case in each state (assign/reassign come from the candidates)
BUTTONS = ("file", "reject", "accept", "start", "resolve", "verify", "return", "close", "reopen", "unassign", "escalate")


def action_bar(store: Any, case: Mapping[str, Any], lang: str, *, key: str) -> None:
    """Buttons for the loop's next steps, a note, satisfaction for evaluation, departments to summon."""
    if not may("cases.act"):  # viewers follow cases; they do not move them
        return
    state = str(case["state"])
    possible = [a for a in BUTTONS if state in cs.ACTIONS[a][0]]
    if not may("cases.assign"):  # taking a case back or escalating it is a dispatcher's call
        possible = [a for a in possible if a not in ("unassign", "escalate", "reject", "file")]
    if int(case.get("escalation_level") or 0) >= len(cs.ESCALATION_LEVELS) - 1 and "escalate" in possible:
        possible.remove("escalate")
    note = st.text_input(t("case.note", lang), key=f"{key}_note_{case['id']}", max_chars=cs.MAX_DESCRIPTION)
    rev = seen_rev(case, key)  # what the person saw, not what this rerun read (see seen_rev)
    if possible:
        cols = st.columns(min(len(possible), 4))
        for i, action in enumerate(possible):
            if cols[i % len(cols)].button(_action_label(action, lang), key=f"{key}_{action}_{case['id']}",
                                          use_container_width=True):  # fmt: skip
                run(lambda a=action: cs.act(store, int(case["id"]), a, actor=actor(), expected_rev=rev,
                                            note=note or None), lang, what=f"case.{action}", target=case["id"])  # fmt: skip
    if state == "closed":
        c = st.columns([2, 1])
        score = c[0].select_slider(t("case.satisfaction", lang), options=[1, 2, 3, 4, 5], value=5, key=f"{key}_sat_{case['id']}")
        if c[1].button(_action_label("evaluate", lang), key=f"{key}_evaluate_{case['id']}"):
            run(lambda: cs.act(store, int(case["id"]), "evaluate", actor=actor(), expected_rev=rev,
                               satisfaction=int(score), note=note or None), lang, what="case.evaluate", target=case["id"])  # fmt: skip
    if state in cs.OPEN_STATES and may("cases.assign"):
        depts = cs.departments(store)
        if len(depts):
            names = dict(zip(depts["code"], depts["name_zh" if lang == "zh" else "name_en"], strict=True))
            c = st.columns([3, 1, 1])
            chosen = c[0].multiselect(t("case.summon_depts", lang), list(names), format_func=lambda d: str(names[d]),
                                      key=f"{key}_depts_{case['id']}")  # fmt: skip
            hours = c[1].number_input(t("case.summon_hours", lang), 1, 720, 24, key=f"{key}_dh_{case['id']}")
            if c[2].button(t("case.summon", lang), key=f"{key}_summon_{case['id']}", disabled=not chosen):
                run(lambda: cs.summon(store, int(case["id"]), chosen, actor=actor(), due_hours=float(hours),
                                      note=note or None), lang, what="case.summon", target=case["id"])  # fmt: skip
    summons = case.get("summons")
    if isinstance(summons, pd.DataFrame) and len(summons):
        st.caption(t("case.summoned", lang))
        for row in summons.to_dict("records"):
            c = st.columns([3, 2, 1, 1])
            c[0].text(str(row["department"]))
            status = (t("summon.reported", lang) if not _missing(row["reported_back_at"])
                      else t("summon.accepted", lang) if not _missing(row["accepted_at"]) else t("summon.waiting", lang))  # fmt: skip
            c[1].text(status)
            if _missing(row["accepted_at"]) and c[2].button(t("summon.accept", lang), key=f"{key}_sa_{case['id']}_{row['department']}"):
                run(lambda d=row["department"]: cs.department_responds(store, int(case["id"]), str(d), actor=actor()), lang,
                    what="case.department_accept", target=case["id"])
            if _missing(row["reported_back_at"]) and c[3].button(t("summon.report", lang), key=f"{key}_sr_{case['id']}_{row['department']}"):
                run(lambda d=row["department"]: cs.department_responds(store, int(case["id"]), str(d), actor=actor(),
                                                                    step="report"), lang,
                    what="case.department_report", target=case["id"])  # fmt: skip


def seen_rev(case: Mapping[str, Any], key: str) -> int:
    """The case's ``rev`` as the person last saw it on this page, for ``expected_rev``.

    Streamlit handles a click in the rerun it triggers, and that rerun reads the case afresh: acting
    with the fresh rev would silently override whatever someone else did after the person looked
    (a second dispatcher's 派单 on a page showing the case still unassigned became a *reassignment*
    of the first dispatcher's choice). So each run remembers the rev it shows and returns the one
    remembered by the run before, the one on screen when the button was clicked. Call it once per
    run for each ``key`` (one key per group of buttons), before drawing the buttons."""
    slot = f"_seen_rev_{key}_{int(case['id'])}"
    seen = st.session_state.get(slot)
    st.session_state[slot] = int(case["rev"])
    return int(seen) if seen is not None else int(case["rev"])


def run(fn: Any, lang: str, *, what: str, target: Any) -> None:
    """Carry out an action; a refusal or a lost race is shown (with who won), success is written to
    the audit log (``what`` on ``target``) and reruns the page."""
    from console import access, state

    try:
        fn()
    except cs.CaseConflict as e:
        st.session_state["_case_flash"] = ("error", t("case.conflict", lang, detail=str(e)))
    except cs.CaseError as e:
        st.session_state["_case_flash"] = ("error", str(e))
    else:
        who = state.principal()
        if who is not None:
            access.audit(state.get_store(), who, what, target=target)
        st.session_state["_case_flash"] = ("success", t("case.done", lang))
    st.rerun()


def flash() -> None:
    """The outcome of the last action (kept across the rerun that follows it).

    Always takes one slot in the page, message or not: an element appearing or vanishing here
    would shift everything after it, and Streamlit remounts a component whose position changes.
    On /dispatch that remounted the map after every action (a new map, at the page's starting
    view), and the new map's first report triggered a rerun that dropped the message ~3 s later,
    before a dispatcher who lost a race could read who had won."""
    slot = st.empty()
    msg = st.session_state.pop("_case_flash", None)
    if msg:
        kind, text = msg
        (slot.error if kind == "error" else slot.success)(md(text))
