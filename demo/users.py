"""Demo users: one per role over the demo city, and a district dispatcher, so a freshly generated
demo database can be signed in to at once.

Every demo user has the password ``DEMO_PASSWORD`` (``gridconsole-demo``). It is printed by
``gridconsole demo`` and written in the README: it is for a demo database only -- never create
these users on a database with real data (``create_demo_users`` does nothing once any user exists).
"""

from __future__ import annotations

from services import auth
from store.base import Store

DEMO_PASSWORD = "gridconsole-demo"  # demo databases only; documented, never a real password
DEMO_CITY = "211200"

# username -> role, all over the whole demo city; plus dispatcher_d1 over the first district
DEMO_USERS: tuple[tuple[str, str], ...] = (
    ("admin", "admin"),
    ("dispatcher", "dispatcher"),
    ("planner", "planner"),
    ("viewer", "viewer"),
    ("department", "department"),
    ("worker", "grid_worker"),
)


def first_district(store: Store, city: str = DEMO_CITY) -> str | None:
    """The code of the demo city's first district (county level), or None when it has none."""
    rows = store.read("admin_units", where={"level": "county"}, columns=["code", "parent_code"], geometry=False)
    if not len(rows):
        return None
    inside = rows[rows["parent_code"].astype("string") == city]
    codes = sorted((inside if len(inside) else rows)["code"].astype(str))
    return codes[0]


def create_demo_users(store: Store, *, city: str = DEMO_CITY, now: object = None) -> list[str]:
    """Create the demo users when the users table is empty; the usernames created (empty when users
    exist already: an administrator manages them from then on). The first one, ``admin``, is made
    with ``bootstrap_admin``; it then creates the others (each one audited)."""
    if store.count("users"):
        return []
    made: list[str] = []
    with store.transaction():
        auth.bootstrap_admin(store, username="admin", password=DEMO_PASSWORD, unit_code=city, now=now)
        made.append("admin")
        by = auth.Principal("admin", "admin", city)
        for username, role in DEMO_USERS[1:]:
            auth.create_user(store, by, username=username, role=role, unit_code=city, password=DEMO_PASSWORD,
                             display_name=f"demo {role}", now=now)  # fmt: skip
            made.append(username)
        district = first_district(store, city)
        if district is not None:
            auth.create_user(store, by, username="dispatcher_d1", role="dispatcher", unit_code=district,
                             password=DEMO_PASSWORD, display_name=f"demo dispatcher {district}", now=now)  # fmt: skip
            made.append("dispatcher_d1")
    return made
