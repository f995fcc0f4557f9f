"""The HTTP API: position ingest from phones (FastAPI on uvicorn; ``/docs`` stays on).

Routes:

- ``GET|POST /osmand`` -- the OsmAnd protocol as Traccar Client sends it (query string or form,
  or the newer JSON body); a phone's server URL is ``http://HOST:PORT/osmand``;
- ``POST /api/positions`` -- a batch buffered offline: ``{"positions": [...]}`` (≤ 1,000);
- ``GET /api/health`` and ``GET /api/status`` (counts, recent refusals);
- ``/api/cases/...`` -- cases and dispatch (api/cases.py): a grid worker's report, candidates,
  assign/unassign and the other actions of the loop, the timeline;
- ``/open311/v2/...`` -- Open311 GeoReport v2 for citizen requests (api/open311.py);
- ``/api/cameras/...`` -- cameras that see a point or case, status from the media gateway,
  coverage (api/cameras.py);
- ``GET /api/kpis`` -- the big screen's headline figures (api/bigscreen.py).

A 200 is sent only after the fix is committed (see ``api/writer.py``); a duplicate is acknowledged
with 200 as well. Refusals are 4xx with ``{"detail": ...}``: 400 malformed, 401 no or no valid
token, 403 unknown device or a device the token may not send for, 413 body too large, 422
impossible values; 503 when the store fails (the phone retries).

Access (api/deps.py holds the table of every route's action and explains tokens, 401/403/404 and
the token cache). For positions:

- the token comes in the ``Authorization: Bearer`` header, or as a ``token`` field of the query
  string, the form or the JSON body (Traccar Client and OsmAnd cannot set headers: the server URL
  of such a phone is ``http://HOST:PORT/osmand?token=...``);
- a phone's token has the role ``grid_worker`` (``positions.send``) and is **bound to one device
  by its name**, ``device:<device id>`` (``gridconsole token create --name device:869... --role
  grid_worker --unit <grid or community>``): it may send that device's fixes only, anything else
  is refused with 403 (a batch naming another device: the whole batch);
- a gateway's token has ``positions.relay`` (administrators): any device whose staff member's unit
  is inside the token's jurisdiction (a fix for another one is refused, 403; in a batch per item);
- positions are **not** written to the audit log, neither per fix nor per batch: they are telemetry
  from devices, not changes made by a person, and each stored fix already records its device and
  time of receipt (``positions.received_at``); an audit row per fix would double the write load at
  1,000 fixes a second. Refusals (401 and 403 included) are counted in ``GET /api/status``.

Every other successful POST/PUT/PATCH/DELETE is written to ``audit_log`` (:class:`AuditChanges`):
who (the token's or user's name, role, unit), what (``api POST /api/cases/{case_id}/assign``, the
path with the object's id and a created object's id), from where (the socket peer; see
``api.deps.client_ip`` for X-Forwarded-For behind a reverse proxy). The row is written before the
response is sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.bigscreen import router as bigscreen_router
from api.cameras import router as cameras_router
from api.cases import device_of
from api.cases import router as cases_router
from api.deps import (
    MUTATING,
    TOKEN_CACHE_S,
    TokenCache,
    authenticate,
    authorize,
    bearer_token,
    client_ip,
    forbidden,
    route_access,
    unmapped_routes,
)
from api.open311 import router as open311_router
from api.writer import CommitQueue
from services import auth
from services import cases as cases_service
from services.auth import Principal
from services.ingest import (
    Fix,
    IngestConfig,
    Ingestor,
    Rejected,
    parse_batch_item,
    parse_osmand,
    parse_traccar_json,
)
from store import open_store
from store.base import Store, StoreError

log = logging.getLogger("gridconsole.api")

MAX_SINGLE_BYTES = 16 * 1024  # one fix
MAX_BATCH_BYTES = 1024 * 1024  # a batch of up to MAX_BATCH fixes
MAX_CASE_BYTES = 64 * 1024  # one report: a 4,000-character description in UTF-8 and the rest


def body_limit(path: str) -> int:
    """The largest request body a route takes."""
    if path.startswith("/api/positions"):
        return MAX_BATCH_BYTES
    if path.startswith(("/open311/", "/api/cases")):
        return MAX_CASE_BYTES
    if path.startswith("/api/cameras/status"):
        return MAX_BATCH_BYTES
    return MAX_SINGLE_BYTES


def too_large_body(path: str, limit: int) -> dict[str, Any] | list[dict[str, Any]]:
    """The 413 answer: Open311's error list on its routes, ``{"detail": ...}`` elsewhere."""
    text = f"the body is larger than {limit} bytes"
    if path.startswith("/open311/"):
        return [{"code": 413, "description": text}]
    return {"detail": text}
MAX_BATCH = 1000
COMMIT_TIMEOUT_S = 30.0

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """Refuse request bodies over the route's limit with 413 before they are read into memory:
    by Content-Length when given, else by counting the streamed bytes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = body_limit(path)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    size = -1
                if size < 0 or size > limit:
                    await _send_json(send, 413, too_large_body(path, limit))
                    return
        seen = 0
        too_big = False

        async def counting() -> Message:
            nonlocal seen, too_big
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    too_big = True
                    raise _TooLarge()
            return msg

        started = False

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counting, tracking_send)
        except _TooLarge:
            if not started:
                await _send_json(send, 413, too_large_body(path, limit))
        except Exception:
            if too_big and not started:
                await _send_json(send, 413, too_large_body(path, limit))
            else:
                raise


class _TooLarge(Exception):
    pass


async def _send_json(send: Send, status: int, body: dict[str, Any] | list[dict[str, Any]]) -> None:
    data = json.dumps(body, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


class AuditChanges:
    """Write every successful (2xx/3xx) POST/PUT/PATCH/DELETE of an authenticated principal to
    ``audit_log`` before its response goes out: ``api <METHOD> <route>``, the path (object ids) and,
    for a created object, its id. Position ingest is not audited (see the module docstring)."""

    HOLD_LIMIT = 256 * 1024  # responses of changes are small JSON; a larger one is passed on unread

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in MUTATING:
            await self.app(scope, receive, send)
            return
        held: list[Message] = []
        size = 0
        mode = ""

        async def holding(msg: Message) -> None:
            nonlocal mode, size
            if msg["type"] == "http.response.start":
                route = scope.get("route")
                access = route_access(scope["method"], getattr(route, "path", ""))
                principal = (scope.get("state") or {}).get("principal")
                if 200 <= msg["status"] < 400 and access is not None and access.via != "device" and principal:
                    mode = "hold"
                    held.append(msg)
                    return
                mode = "pass"
            elif mode == "hold" and msg["type"] == "http.response.body":
                held.append(msg)
                size += len(msg.get("body", b""))
                if msg.get("more_body", False) and size <= self.HOLD_LIMIT:
                    return
                mode = "pass"
                await self._audit(scope, held)
                for m in held:
                    await send(m)
                held.clear()
                return
            await send(msg)

        await self.app(scope, receive, holding)

    async def _audit(self, scope: Scope, held: list[Message]) -> None:
        principal: Principal = scope["state"]["principal"]
        route = scope.get("route")
        status = held[0]["status"]
        target = scope.get("path", "")
        created = _created_id(b"".join(m.get("body", b"") for m in held[1:]))
        if created is not None:
            target = f"{target} -> {created}"
        request = Request(scope)
        try:
            await run_in_threadpool(auth.audit, scope["app"].state.store, principal,
                                    f"api {scope['method']} {getattr(route, 'path', '?')}", target=target,
                                    detail=f"status={status}", client=client_ip(request))  # fmt: skip
        except Exception:  # the change is made; the response must still tell the client so
            log.exception("could not audit %s %s by %s", scope["method"], target, principal.name)


def _created_id(body: bytes) -> str | None:
    """The id of the object a response names as created (a new case, an Open311 request)."""
    try:
        data = json.loads(body) if body[:1] in (b"{", b"[") else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]
    if isinstance(data, dict):
        for key in ("id", "service_request_id"):
            if isinstance(data.get(key), int | str):
                return str(data[key])
    return None


class DeviceUnits:
    """device id -> the unit of its staff member, re-read every ``refresh_s`` (a gateway's token may
    relay the devices of its jurisdiction only)."""

    def __init__(self, store: Store, refresh_s: float = 60.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self.units: dict[str, str | None] = {}
        self.loaded_at = -math.inf

    def _load(self) -> None:
        staff = self.store.read("staff", columns=["device_id", "unit_code"], geometry=False)
        staff = staff[staff["device_id"].notna()]
        self.units = {str(d).strip(): (None if u is None or u != u else str(u))
                      for d, u in zip(staff["device_id"], staff["unit_code"], strict=True)}  # fmt: skip
        self.loaded_at = time.monotonic()

    async def fresh(self) -> dict[str, str | None]:
        if time.monotonic() - self.loaded_at > self.refresh_s:
            await run_in_threadpool(self._load)
        return self.units


def _refused(e: Rejected) -> JSONResponse:
    return JSONResponse({"detail": str(e)}, status_code=e.status)


async def _sweep(store: Store, every_s: float) -> None:
    """Escalate cases not accepted or not resolved in time, every ``every_s`` seconds. Several API
    processes may sweep at once: each escalation is compare-and-set, so a case goes up one level once."""
    while True:
        await asyncio.sleep(every_s)
        try:
            done = await asyncio.to_thread(cases_service.escalate_due, store)
            if any(o.ok for o in done):
                log.info("escalated %d case(s)", sum(o.ok for o in done))
        except Exception as e:  # a failed sweep is retried at the next tick
            log.warning("escalation sweep failed: %s", e)


def create_app(
    store: Store | str | None = None,
    *,
    config: IngestConfig | None = None,
    ingestor: Ingestor | None = None,
    escalate_every_s: float | None = 60.0,
    token_cache_s: float = TOKEN_CACHE_S,
) -> FastAPI:
    """The API over ``store`` (a Store, a URL, or $DATABASE_URL). A store opened here from a URL is
    closed at shutdown; a Store passed in belongs to the caller. ``escalate_every_s``: how often the
    escalation sweep runs (None: never; tests call ``POST /api/cases/escalate``). ``token_cache_s``:
    how long a looked-up token is trusted without asking the store again (0: never cached)."""
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        own = store is None or isinstance(store, str)  # opened here, so closed here
        st: Store = open_store(store) if store is None or isinstance(store, str) else store
        ing = ingestor or Ingestor(st, config or IngestConfig())
        cq = CommitQueue(ing)
        cq.start()
        state.update(store=st, ingestor=ing, queue=cq, units=DeviceUnits(st))
        app.state.store = st  # what the case and Open311 routers use (api/deps.py)
        sweeper = asyncio.create_task(_sweep(st, escalate_every_s)) if escalate_every_s else None
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
            cq.stop()
            if own:
                st.close()

    app = FastAPI(
        title="Grid console API",
        summary="Position ingest from grid workers' phones (OsmAnd / Traccar Client protocol), cases and "
        "dispatch (/api/cases), and Open311 GeoReport v2 for citizen requests (/open311/v2/).",
        version="1",
        lifespan=lifespan,
        dependencies=[Depends(authorize)],  # every route: its access rule (api/deps.py)
    )
    app.state.tokens = TokenCache(token_cache_s)
    app.add_middleware(AuditChanges)  # type: ignore[arg-type]
    app.add_middleware(BodyLimit)  # type: ignore[arg-type]
    app.include_router(cases_router)
    app.include_router(cameras_router)
    app.include_router(bigscreen_router)
    app.include_router(open311_router)

    async def _device_guard(request: Request, token: str | None) -> Callable[[str], str | None]:
        """Authenticate a device route's token (401) and check its role (403); returns the check
        of one fix's device: None when the token may send it, else why not."""
        principal = await authenticate(request, token)
        if principal.can("positions.relay"):
            units = await state["units"].fresh()

            def relay(device: str) -> str | None:
                if device not in units:  # unknown: the ingestor refuses it (403, "not bound")
                    return None
                if principal.covers(units[device]):
                    return None
                return f"the device {device!r} is outside {principal.unit_code}"

            return relay
        if principal.can("positions.send"):
            bound = device_of(principal)
            if bound is None:
                raise forbidden("this token is not bound to a device (name it device:<device id>)")
            return lambda device: None if device == bound else f"this token is bound to the device {bound!r}"
        raise forbidden(f"the role {principal.role} may not send positions")

    async def _guard_or_refuse(request: Request, token: str | None, remote: str | None) -> Callable[[str], str | None]:
        try:
            return await _device_guard(request, token)
        except Exception as e:  # 401/403/503: counted with the other refusals, then answered
            status = getattr(e, "status_code", 500)
            state["ingestor"].reject(Rejected(str(getattr(e, "detail", e)), status=status), remote=remote)
            raise

    async def _commit(fixes: list[Fix], sids: list[int]) -> list[str] | JSONResponse:
        """Hand the fixes to the writer and wait (without holding a thread) until committed."""
        try:
            fut = state["queue"].submit(fixes, sids)
            result = await asyncio.wait_for(asyncio.wrap_future(fut), COMMIT_TIMEOUT_S)
            return result.outcomes  # type: ignore[no-any-return]
        except Exception as e:  # not committed: the phone keeps the fix and retries
            log.warning("positions not committed: %s", e)
            return JSONResponse({"detail": "the position store is unavailable; retry later"}, status_code=503)

    async def _one(fix_of: Callable[[], Fix], remote: str | None, guard: Callable[[str], str | None]) -> JSONResponse:
        # parsing and checks are pure Python against cached devices and tokens: done on the event
        # loop, so a request costs no thread hand-offs while the writer thread is busy committing
        ing: Ingestor = state["ingestor"]
        try:
            fix = fix_of()
            why = guard(fix.device_id)
            if why is not None:
                raise Rejected(why, status=403, device_id=fix.device_id)
            sid = ing.check(fix)
        except Rejected as e:
            ing.reject(e, remote=remote)
            return _refused(e)
        out = await _commit([fix], [sid])
        if isinstance(out, JSONResponse):
            return out
        return JSONResponse({"status": out[0]})

    async def osmand(request: Request) -> JSONResponse:
        remote = request.client.host if request.client else None
        fields: dict[str, Any] = dict(request.query_params)
        token = bearer_token(request)
        if token is None:
            token = fields.get("token")
        if request.method == "POST":
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            raw = await request.body()
            if ctype == "application/json" or (raw[:1] == b"{" and not ctype.startswith("application/x-www")):
                try:
                    body = json.loads(raw)
                except (ValueError, UnicodeDecodeError, RecursionError):
                    await _guard_or_refuse(request, token, remote)  # who asks comes first: 401 before 400
                    e = Rejected("the body is not valid JSON", status=400)
                    state["ingestor"].reject(e, remote=remote)
                    return _refused(e)
                if token is None and isinstance(body, dict) and isinstance(body.get("token"), str):
                    token = body["token"]
                guard = await _guard_or_refuse(request, token, remote)
                return await _one(lambda: parse_traccar_json(body), remote, guard)
            if ctype == "application/x-www-form-urlencoded" and raw:
                form = await request.form()
                fields.update({k: v for k, v in form.items() if isinstance(v, str)})
                if token is None:
                    token = fields.get("token")
        guard = await _guard_or_refuse(request, token, remote)
        return await _one(lambda: parse_osmand(fields), remote, guard)

    description = (
        "Query string or form fields `id`/`deviceid`, `timestamp` (Unix seconds or ISO 8601), `lat`, `lon`, "
        "`speed` (knots), `bearing`, `altitude`, `accuracy`, `batt`, `charge`; or the JSON body of newer "
        "Traccar Client versions. 200 once committed. The device's token: `Authorization: Bearer`, or the "
        "field `token` (query string, form or JSON), bound to the device (name `device:<id>`)."
    )
    for method in ("GET", "POST"):
        app.add_api_route(
            "/osmand",
            osmand,
            methods=[method],
            operation_id=f"osmand_{method.lower()}",
            summary="One position, OsmAnd protocol (Traccar Client)",
            description=description,
        )

    @app.post("/api/positions", summary="A batch of positions buffered offline (≤ 1,000)")
    async def batch(request: Request) -> JSONResponse:
        remote = request.client.host if request.client else None
        ing: Ingestor = state["ingestor"]
        token = bearer_token(request)
        if token is None:
            token = request.query_params.get("token")
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError, RecursionError):
            await _guard_or_refuse(request, token, remote)  # 401 before 400
            e = Rejected("the body is not valid JSON", status=400)
            ing.reject(e, remote=remote)
            return _refused(e)
        if token is None and isinstance(body, dict) and isinstance(body.get("token"), str):
            token = body["token"]
        guard = await _guard_or_refuse(request, token, remote)
        items = body.get("positions") if isinstance(body, dict) else None
        if not isinstance(items, list):
            return _refused(Rejected("the body must be {\"positions\": [...]}", status=400))
        if len(items) > MAX_BATCH:
            return _refused(Rejected(f"a batch holds at most {MAX_BATCH} positions, got {len(items)}", status=413))
        return await _batch(items, remote, guard)

    def _parsed(item: Any) -> Fix | Rejected:
        try:
            return parse_batch_item(item)
        except Rejected as e:
            return e

    async def _batch(items: list[Any], remote: str | None, guard: Callable[[str], str | None]) -> JSONResponse:
        parsed = [_parsed(item) for item in items]
        for i, f in enumerate(parsed):
            why = guard(f.device_id) if isinstance(f, Fix) else None
            if why is None:
                continue
            e = Rejected(why, status=403, device_id=f.device_id)  # type: ignore[union-attr]
            if why.startswith("this token is bound"):  # a phone sending for another device: all refused
                state["ingestor"].reject(e, remote=remote)
                return _refused(e)
            parsed[i] = e  # a gateway's device outside its jurisdiction: that item refused
        fixes, sids, errors = state["ingestor"].screen(parsed, remote=remote)
        rejected = [{"index": i, "status": e.status, "detail": str(e)} for i, e in enumerate(errors) if e is not None]
        outcomes: list[str] = []
        if fixes:
            out = await _commit(fixes, sids)
            if isinstance(out, JSONResponse):
                return out
            outcomes = out
        return JSONResponse(
            {
                "accepted": outcomes.count("accepted"),
                "duplicates": outcomes.count("duplicate"),
                "rejected": rejected,
            }
        )

    @app.get("/api/health", summary="Liveness and the store behind the API")
    def health() -> Any:
        st: Store = state["store"]
        try:
            return {"status": "ok", "store": st.dialect, "schema": st.schema_version()}
        except StoreError as e:  # the process is alive, its database is not: 503, say why
            return JSONResponse({"status": "unavailable", "store": st.dialect, "detail": str(e)[:300]},
                                status_code=503, headers={"Retry-After": "5"})  # fmt: skip

    @app.get("/api/status", summary="Ingest counters and the most recent refusals")
    def status() -> dict[str, Any]:
        ing: Ingestor = state["ingestor"]
        cq: CommitQueue = state["queue"]
        return {
            "committed": cq.committed,
            "transactions": cq.transactions,
            "commit_failures": cq.failures,
            "commit_seconds": round(cq.commit_seconds, 3),
            "queued": cq.depth,
            "refused_by_status": dict(ing.reject_counts),
            "recent_refusals": [
                {"at": r.ts.isoformat(), "device_id": r.device_id, "status": r.status, "reason": r.reason}
                for r in list(ing.recent_rejects)[-50:]
            ],
        }

    missing = unmapped_routes(app)
    if missing:  # every route must say who may call it (api/deps.py ROUTE_ACCESS)
        raise RuntimeError(f"routes without an access rule in api/deps.py: {missing}")

    return app


def app_from_env() -> FastAPI:
    """The app for ``uvicorn --factory`` worker processes: store from ``DATABASE_URL``, region from
    ``GRIDCONSOLE_API_REGION`` ('min_lon,min_lat,max_lon,max_lat'), else derived from the city."""
    import os

    region = os.environ.get("GRIDCONSOLE_API_REGION")
    bbox = tuple(float(v) for v in region.split(",")) if region else None
    return create_app(os.environ.get("DATABASE_URL") or None, config=IngestConfig(region=bbox))  # type: ignore[arg-type]
