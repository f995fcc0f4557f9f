"""What the routers share: the store the app opened (``app.state.store``, set in the lifespan), and
who may call what (tokens, roles, jurisdictions).

Access (issue #8)
-----------------
Every route is listed in :data:`ROUTE_ACCESS` (method, path template) -> :class:`Access`: the
PERMISSIONS action it needs (services/auth.py) and where its credential comes from. ``create_app``
refuses to start when a route is missing from the table, and tests/api/test_access.py walks
``app.routes`` against it, so a new route cannot be added without deciding who may call it.

- ``bearer`` (most routes): ``Authorization: Bearer <token>``, checked by :func:`authorize`, a
  dependency of the whole app. The token is an API token (``token_principal``) or a console session
  token (``session_principal``), tried in that order.
- ``device`` (``/osmand``, ``/api/positions``): the Bearer header, or a ``token`` field in the query
  string, form or JSON body (Traccar Client and OsmAnd cannot set headers); checked by the handler,
  which parses the body anyway (:func:`authenticate`). ``positions.send`` (a grid worker's phone)
  for the one device the token is bound to, ``positions.relay`` (a gateway) for any device of its
  jurisdiction; see api/app.py.
- ``api_key`` (``POST /open311/v2/requests.{fmt}``): the GeoReport v2 ``api_key`` field is the
  token (or the Bearer header), checked by the handler; errors stay in Open311's error list.
- ``public``: no credential (health, Open311 discovery, services and the request listings, which
  carry no personal data); the OpenAPI/docs routes are not API routes and are public too.

Answers: no, malformed, unknown, expired or revoked token -> 401 with ``WWW-Authenticate: Bearer``
and ``{"detail": ...}``; a valid token whose role lacks the action -> 403; an object outside the
principal's jurisdiction -> 404, exactly as an object that does not exist (not 403: a district's
dispatcher does not learn which case ids exist elsewhere); the one exception is ``/api/kpis?county=``
naming a district outside the jurisdiction -> 403 (a district code is no secret). The store failing
while a token is looked up -> 503.

Token lookups are cached in-process (:class:`TokenCache`, keyed by the token's SHA-256, bounded):
valid principals for ``TOKEN_CACHE_S`` (30 s), unknown tokens for 5 s, so 1,000 positions a second
cost no extra database read. A token revoked (or a session ended) may therefore keep working for up
to 30 s in each API process; a console session used through the API has its idle clock refreshed
at each lookup, i.e. at most every 30 s.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from services import auth
from services.auth import Principal
from store.base import Store, StoreError


def get_store(request: Request) -> Store:
    """FastAPI dependency: the store of the running app (a connection passed in, not a global)."""
    return request.app.state.store  # type: ignore[no-any-return]


StoreDep = Annotated[Store, Depends(get_store)]


# Integers the store can hold (SQLite and PostgreSQL bigint): a larger id, revision or staff id in a
# request is refused with 422 instead of failing in the store.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
Int64Path = Annotated[int, Path(ge=INT64_MIN, le=INT64_MAX)]
Int64Query = Annotated[int | None, Query(ge=INT64_MIN, le=INT64_MAX)]


# ------------------------------------------------------------------------------ the access table


@dataclass(frozen=True)
class Access:
    """What a route needs: ``action`` (a PERMISSIONS key; None: public) and ``via`` (bearer,
    device, api_key, public; see the module docstring)."""

    action: str | None
    via: str = "bearer"


PUBLIC = Access(None, "public")
DEVICE = Access("positions.send", "device")  # or positions.relay; the handler decides
O311_POST = Access("cases.report", "api_key")

# (method, path template) -> Access: the one place that says who may call what.
ROUTE_ACCESS: dict[tuple[str, str], Access] = {
    # position ingest (phones and gateways)
    ("GET", "/osmand"): DEVICE,
    ("POST", "/osmand"): DEVICE,
    ("POST", "/api/positions"): DEVICE,
    # the service itself
    ("GET", "/api/health"): PUBLIC,
    ("GET", "/api/status"): Access("audit.read"),  # ingest counters and refused devices: administrators
    # cases and dispatch
    ("POST", "/api/cases"): Access("cases.report"),
    ("GET", "/api/cases"): Access("cases.view"),
    ("GET", "/api/cases/{case_id}"): Access("cases.view"),
    ("GET", "/api/cases/{case_id}/candidates"): Access("cases.assign"),  # staff positions, for dispatching
    ("POST", "/api/cases/{case_id}/assign"): Access("cases.assign"),
    ("POST", "/api/cases/{case_id}/unassign"): Access("cases.assign"),
    ("POST", "/api/cases/{case_id}/actions/{action}"): Access("cases.act"),  # see ASSIGN_ACTIONS
    ("POST", "/api/cases/{case_id}/summon"): Access("cases.assign"),
    ("POST", "/api/cases/{case_id}/departments/{department}/{step}"): Access("cases.act"),
    ("POST", "/api/cases/bulk"): Access("cases.assign"),
    ("POST", "/api/cases/escalate"): Access("cases.assign"),
    # cameras
    ("GET", "/api/cameras/seeing"): Access("cameras.view"),
    ("GET", "/api/cases/{case_id}/cameras"): Access("cameras.view"),
    ("PUT", "/api/cameras/{camera_id}/status"): Access("cameras.manage"),
    ("POST", "/api/cameras/status"): Access("cameras.manage"),
    ("GET", "/api/cameras/coverage"): Access("cameras.view"),
    # the big screen
    ("GET", "/api/kpis"): Access("bigscreen.view"),
    # Open311: reading is public (no personal data in it), posting needs an api_key
    ("GET", "/open311/v2/discovery.{fmt}"): PUBLIC,
    ("GET", "/open311/v2/services.{fmt}"): PUBLIC,
    ("GET", "/open311/v2/services/{service_code}.{fmt}"): PUBLIC,
    ("GET", "/open311/v2/requests.{fmt}"): PUBLIC,
    ("GET", "/open311/v2/requests/{request_id}.{fmt}"): PUBLIC,
    ("POST", "/open311/v2/requests.{fmt}"): O311_POST,
    # the Open311 catch-all only ever answers 404, whatever the method
    **{(m, "/open311/v2/{rest:path}"): PUBLIC for m in ("GET", "POST", "PUT", "PATCH", "DELETE")},
}

# Steps of the loop that (re)assign a case: through /actions/{action} they need cases.assign, as
# /assign and /unassign do, not just cases.act.
ASSIGN_ACTIONS = frozenset({"dispatch", "reassign", "unassign"})

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def route_access(method: str, path: str) -> Access | None:
    return ROUTE_ACCESS.get((method.upper(), path))


def api_routes(app: Any) -> list[tuple[str, str]]:
    """(method, full path template) of every API route of ``app``, included routers' too (FastAPI
    ≥ 0.16x keeps an included router as one entry of ``app.routes``; ``iter_route_contexts``
    expands it as the OpenAPI generator does)."""
    from fastapi import routing

    expand = getattr(routing, "iter_route_contexts", None)
    contexts = list(expand(app.routes)) if expand is not None else list(app.routes)
    out: set[tuple[str, str]] = set()
    for ctx in contexts:
        if isinstance(getattr(ctx, "original_route", ctx), routing.APIRoute):
            out.update((m, str(ctx.path)) for m in (ctx.methods or ()))
    return sorted(out)


def unmapped_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every API route of ``app`` missing from ROUTE_ACCESS."""
    return [r for r in api_routes(app) if r not in ROUTE_ACCESS]


# ------------------------------------------------------------------------------ tokens

TOKEN_CACHE_S = 30.0
NEGATIVE_CACHE_S = 5.0
TOKEN_CACHE_SIZE = 10_000
MAX_TOKEN = 200  # longer than any token we issue (43 characters); refused without a lookup


class TokenCache:
    """token SHA-256 -> (principal or None, expiry), bounded (least recently stored dropped first)."""

    def __init__(self, ttl_s: float = TOKEN_CACHE_S, *, negative_ttl_s: float = NEGATIVE_CACHE_S,
                 size: int = TOKEN_CACHE_SIZE) -> None:  # fmt: skip
        self.ttl_s = ttl_s
        self.negative_ttl_s = min(negative_ttl_s, ttl_s)
        self.size = size
        self._d: OrderedDict[str, tuple[Principal | None, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> tuple[Principal | None] | None:
        """(principal,) when cached (the principal None: a known-bad token), None when not cached."""
        now = time.monotonic()
        with self._lock:
            got = self._d.get(key)
            if got is None or got[1] <= now:
                if got is not None:
                    del self._d[key]
                self.misses += 1
                return None
            self.hits += 1
            return (got[0],)

    def put(self, key: str, principal: Principal | None) -> None:
        ttl = self.ttl_s if principal is not None else self.negative_ttl_s
        if ttl <= 0:
            return
        with self._lock:
            self._d[key] = (principal, time.monotonic() + ttl)
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()


def unauthorized(detail: str, *, invalid: bool = False) -> HTTPException:
    value = 'Bearer realm="gridconsole"' + (', error="invalid_token"' if invalid else "")
    return HTTPException(401, detail, headers={"WWW-Authenticate": value})


def forbidden(detail: str) -> HTTPException:
    return HTTPException(403, detail)


def bearer_token(request: Request) -> str | None:
    """The credential of an ``Authorization: Bearer`` header ("" when the header is there but is
    not a usable Bearer credential; None when there is no header)."""
    value = request.headers.get("authorization")
    if value is None:
        return None
    scheme, _, cred = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return cred.strip()


def _well_formed(token: str) -> bool:
    return 0 < len(token) <= MAX_TOKEN and token.isascii() and token.isprintable() and " " not in token


def _lookup(store: Store, token: str) -> Principal | None:
    return auth.token_principal(store, token) or auth.session_principal(store, token)


async def authenticate(request: Request, token: str | None) -> Principal:
    """The principal of ``token`` (401 when missing or not valid; 503 when the store fails)."""
    if token is None:
        raise unauthorized("a token is required: Authorization: Bearer <token>")
    if not _well_formed(token):
        raise unauthorized("the token is not valid", invalid=True)
    cache: TokenCache = request.app.state.tokens
    key = hashlib.sha256(token.encode("ascii")).hexdigest()
    hit = cache.get(key)
    if hit is not None:
        principal = hit[0]
    else:
        try:
            principal = await run_in_threadpool(_lookup, request.app.state.store, token)
        except (StoreError, OSError) as e:
            raise HTTPException(503, "the access store is unavailable; retry later", headers={"Retry-After": "5"}) from e
        cache.put(key, principal)
    if principal is None:
        raise unauthorized("the token is not valid (unknown, expired or revoked)", invalid=True)
    request.state.principal = principal
    return principal


_bearer_scheme = HTTPBearer(auto_error=False, description="An API token or a console session token")


async def authorize(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)] = None
) -> None:
    """Dependency of the whole app: enforce ROUTE_ACCESS for ``bearer`` routes (``device`` and
    ``api_key`` routes authenticate in their handlers, public ones not at all)."""
    route = request.scope.get("route")
    access = route_access(request.method, getattr(route, "path", ""))
    if access is None:  # create_app refuses unmapped routes; this is the fail-closed backstop
        raise forbidden("this route has no access rule")
    if access.via != "bearer":
        return
    principal = await authenticate(request, bearer_token(request))
    if access.action is not None and not principal.can(access.action):
        raise forbidden(f"the role {principal.role} may not {access.action}")


def current_principal(request: Request) -> Principal:
    """Dependency: the principal :func:`authorize` (or a handler) authenticated."""
    p = getattr(request.state, "principal", None)
    if p is None:
        raise unauthorized("a token is required: Authorization: Bearer <token>")
    return p  # type: ignore[no-any-return]


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def client_ip(request: Request) -> str | None:
    """The caller's address as the server reports it: the socket peer. uvicorn replaces it with
    the X-Forwarded-For address only when the peer is a trusted proxy: ``--forwarded-allow-ips``
    or env ``FORWARDED_ALLOW_IPS`` (uvicorn's default: 127.0.0.1, a reverse proxy on the same
    host; set it to the proxy's address, or to "" to never honour the header)."""
    return request.client.host if request.client else None


# ------------------------------------------------------------------------------ jurisdiction


def case_level_column(principal: Principal) -> str:
    """The code column of ``cases`` at the principal's level (as ``auth.case_scope`` uses)."""
    n = len(principal.prefix)
    return next((c for size, c in auth.CASE_LEVEL_COLUMNS if n <= size), "grid_code")


def case_visible(principal: Principal, case: Any) -> bool:
    """Is the case (a mapping with the code columns) inside the principal's jurisdiction?"""
    return principal.covers(case.get(case_level_column(principal)))


def note_export(request: Request, principal: Principal, count: int) -> None:
    """Audit a response carrying ``count`` records with residents' personal data."""
    if count > 0 and principal.can("cases.personal"):
        auth.audit(request.app.state.store, principal, "export.personal", target=request.url.path[:200],
                   detail=str(count), client=client_ip(request))  # fmt: skip
