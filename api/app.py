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
with 200 as well. Refusals are 4xx with ``{"detail": ...}``: 400 malformed, 403 unknown device,
413 body too large, 422 impossible values; 503 when the store fails (the phone retries).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.bigscreen import router as bigscreen_router
from api.cameras import router as cameras_router
from api.cases import router as cases_router
from api.open311 import router as open311_router
from api.writer import CommitQueue
from services import cases as cases_service
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
) -> FastAPI:
    """The API over ``store`` (a Store, a URL, or $DATABASE_URL). A store opened here from a URL is
    closed at shutdown; a Store passed in belongs to the caller. ``escalate_every_s``: how often the
    escalation sweep runs (None: never; tests call ``POST /api/cases/escalate``)."""
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        own = store is None or isinstance(store, str)  # opened here, so closed here
        st: Store = open_store(store) if store is None or isinstance(store, str) else store
        ing = ingestor or Ingestor(st, config or IngestConfig())
        cq = CommitQueue(ing)
        cq.start()
        state.update(store=st, ingestor=ing, queue=cq)
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
    )
    app.add_middleware(BodyLimit)  # type: ignore[arg-type]
    app.include_router(cases_router)
    app.include_router(cameras_router)
    app.include_router(bigscreen_router)
    app.include_router(open311_router)

    async def _commit(fixes: list[Fix], sids: list[int]) -> list[str] | JSONResponse:
        """Hand the fixes to the writer and wait (without holding a thread) until committed."""
        try:
            fut = state["queue"].submit(fixes, sids)
            result = await asyncio.wait_for(asyncio.wrap_future(fut), COMMIT_TIMEOUT_S)
            return result.outcomes  # type: ignore[no-any-return]
        except Exception as e:  # not committed: the phone keeps the fix and retries
            log.warning("positions not committed: %s", e)
            return JSONResponse({"detail": "the position store is unavailable; retry later"}, status_code=503)

    async def _one(fix_of: Callable[[], Fix], remote: str | None) -> JSONResponse:
        # parsing and checks are pure Python against cached devices: done on the event loop, so
        # a request costs no thread hand-offs while the writer thread is busy committing
        ing: Ingestor = state["ingestor"]
        try:
            fix = fix_of()
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
        if request.method == "POST":
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            raw = await request.body()
            if ctype == "application/json" or (raw[:1] == b"{" and not ctype.startswith("application/x-www")):
                try:
                    body = json.loads(raw)
                except (ValueError, UnicodeDecodeError, RecursionError):
                    e = Rejected("the body is not valid JSON", status=400)
                    state["ingestor"].reject(e, remote=remote)
                    return _refused(e)
                return await _one(lambda: parse_traccar_json(body), remote)
            if ctype == "application/x-www-form-urlencoded" and raw:
                form = await request.form()
                fields.update({k: v for k, v in form.items() if isinstance(v, str)})
        return await _one(lambda: parse_osmand(fields), remote)

    description = (
        "Query string or form fields `id`/`deviceid`, `timestamp` (Unix seconds or ISO 8601), `lat`, `lon`, "
        "`speed` (knots), `bearing`, `altitude`, `accuracy`, `batt`, `charge`; or the JSON body of newer "
        "Traccar Client versions. 200 once committed."
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
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError, RecursionError):
            e = Rejected("the body is not valid JSON", status=400)
            ing.reject(e, remote=remote)
            return _refused(e)
        items = body.get("positions") if isinstance(body, dict) else None
        if not isinstance(items, list):
            return _refused(Rejected("the body must be {\"positions\": [...]}", status=400))
        if len(items) > MAX_BATCH:
            return _refused(Rejected(f"a batch holds at most {MAX_BATCH} positions, got {len(items)}", status=413))
        return await _batch(items, remote)

    def _parsed(item: Any) -> Fix | Rejected:
        try:
            return parse_batch_item(item)
        except Rejected as e:
            return e

    async def _batch(items: list[Any], remote: str | None) -> JSONResponse:
        fixes, sids, errors = state["ingestor"].screen([_parsed(item) for item in items], remote=remote)
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

    return app


def app_from_env() -> FastAPI:
    """The app for ``uvicorn --factory`` worker processes: store from ``DATABASE_URL``, region from
    ``GRIDCONSOLE_API_REGION`` ('min_lon,min_lat,max_lon,max_lat'), else derived from the city."""
    import os

    region = os.environ.get("GRIDCONSOLE_API_REGION")
    bbox = tuple(float(v) for v in region.split(",")) if region else None
    return create_app(os.environ.get("DATABASE_URL") or None, config=IngestConfig(region=bbox))  # type: ignore[arg-type]
