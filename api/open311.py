"""Open311 GeoReport v2 over HTTP (``/open311/v2/``), so an existing Open311 client works unchanged.

Routes (the format is chosen by the extension, ``.json`` or ``.xml``, as the spec says):

- ``GET /open311/v2/discovery.json`` -- the service discovery document;
- ``GET /open311/v2/services.json`` -- the categories taking reports;
- ``GET /open311/v2/services/{service_code}.json`` -- a service definition (no extra attributes);
- ``GET /open311/v2/requests.json`` -- requests: ``service_request_id``, ``service_code``,
  ``start_date``, ``end_date``, ``status`` (at most 1,000, newest first, the last 90 days by default);
- ``POST /open311/v2/requests.json`` -- a new request (``application/x-www-form-urlencoded`` as the
  spec says; JSON and multipart bodies and query-string fields are accepted too); answers 200 with
  ``[{"service_request_id", "service_notice", "account_id"}]``;
- ``GET /open311/v2/requests/{id}.json`` -- one request (a one-element list).

``lang=en`` (or an English Accept-Language) gives English service names and notes; Chinese is the
default. Every error is the spec's list ``[{"code": status, "description": text}]`` (``<errors>``
in XML) with that HTTP status: 400 bad input, 401 no or no valid ``api_key``, 403 an ``api_key``
whose role may not report cases (or one the legacy ``open311.api_keys`` list does not name), 404
unknown service, request or path, 409 a write lost a race, 413 a body over 64 KB (api/app.py),
503 the store failed. The logic lives in services/open311.py.

Access: reading (discovery, services, definitions, requests) is public -- a request as served
carries no reporter name, phone or e-mail. Posting needs a token with ``cases.report`` (an API token
made with ``gridconsole token create``, or a console session) as the spec's ``api_key`` field (form,
JSON, multipart or query string) or as ``Authorization: Bearer``. The store setting
``open311.api_keys`` from before tokens still applies when set (services/open311.py): then the
token must also be one of the keys listed there; leave it empty.
"""

from __future__ import annotations

import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api.deps import StoreDep, authenticate, bearer_token
from services import cases as cs
from services import open311 as o3
from store.base import Store, StoreError

log = logging.getLogger("gridconsole.api.open311")

router = APIRouter(prefix="/open311/v2", tags=["open311"])

FORMATS = ("json", "xml")
MAX_FIELDS = 200
_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

Params = dict[str, list[str]]


# ----------------------------------------------------------------------------- rendering


def _fmt(fmt: str) -> str:
    f = fmt.strip().lower()
    if f not in FORMATS:
        raise o3.Open311Error(400, f"format {fmt[:20]!r} is not supported; use .json or .xml")
    return f


def _xml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _XML_BAD.sub("\ufffd", str(value))


def _xml_fill(parent: ET.Element, key: str, value: Any) -> None:
    el = ET.SubElement(parent, key)
    if value is None:
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            _xml_fill(el, str(k), v)
    elif isinstance(value, list | tuple):
        item = {"formats": "format", "endpoints": "endpoint", "attributes": "attribute", "values": "value"}.get(
            key, "item"
        )
        for v in value:
            _xml_fill(el, item, v)
    else:
        el.text = _xml_text(value)


def _xml(root: str, item: str | None, body: Any) -> bytes:
    top = ET.Element(root)
    if item is None:
        for k, v in body.items():
            _xml_fill(top, str(k), v)
    else:
        for row in body:
            el = ET.SubElement(top, item)
            for k, v in row.items():
                _xml_fill(el, str(k), v)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(top, encoding="utf-8", xml_declaration=False)


def _render(fmt: str, body: Any, *, root: str, item: str | None, status: int = 200) -> Response:
    if fmt == "xml":
        return Response(_xml(root, item, body), status_code=status, media_type="text/xml; charset=utf-8")
    return JSONResponse(body, status_code=status)


def error_response(status: int, description: str, fmt: str = "json") -> Response:
    """The spec's error list with that HTTP status."""
    return _render(fmt, [{"code": status, "description": description}], root="errors", item="error", status=status)


def _guarded(fmt: str, work: Callable[[], Response]) -> Response:
    """Run ``work``; every refusal becomes an Open311 error in the request's format."""
    try:
        return work()
    except o3.Open311Error as e:
        return error_response(e.status, e.description, fmt)
    except cs.CaseError as e:
        err = o3.from_case_error(e)
        return error_response(err.status, err.description, fmt)
    except StoreError as e:
        log.warning("open311: store failed: %s", e)
        return error_response(503, "the case store is unavailable; retry later", fmt)
    except ValueError as e:  # a value no check above caught: still the client's input, not a crash
        log.warning("open311: refused: %s", e)
        return error_response(400, str(e)[:300] or "invalid input", fmt)


def _params(request: Request) -> Params:
    out: Params = {}
    for k, v in request.query_params.multi_items():
        out.setdefault(k, []).append(v)
    return out


def _lang(request: Request) -> str:
    return o3.lang_of(request.query_params.get("lang") or request.headers.get("accept-language"))


def _endpoint_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + router.prefix


# ----------------------------------------------------------------------------- routes


@router.get("/discovery.{fmt}", summary="Service discovery")
def get_discovery(fmt: str, request: Request, store: StoreDep) -> Response:
    def work() -> Response:
        f = _fmt(fmt)
        return _render(f, o3.discovery(store, _endpoint_url(request)), root="discovery", item=None)

    return _guarded(_safe_fmt(fmt), work)


@router.get("/services.{fmt}", summary="Services: the categories taking reports")
def get_services(fmt: str, request: Request, store: StoreDep) -> Response:
    def work() -> Response:
        f = _fmt(fmt)
        o3.check_jurisdiction(store, request.query_params.get("jurisdiction_id"))
        return _render(f, o3.service_list(store, lang=_lang(request)), root="services", item="service")

    return _guarded(_safe_fmt(fmt), work)


@router.get("/services/{service_code}.{fmt}", summary="A service definition")
def get_service(service_code: str, fmt: str, request: Request, store: StoreDep) -> Response:
    def work() -> Response:
        f = _fmt(fmt)
        o3.check_jurisdiction(store, request.query_params.get("jurisdiction_id"))
        return _render(f, o3.service_definition(store, service_code), root="service_definition", item=None)

    return _guarded(_safe_fmt(fmt), work)


@router.get("/requests.{fmt}", summary="Service requests (filters: id, service_code, dates, status)")
def get_requests(fmt: str, request: Request, store: StoreDep) -> Response:
    def work() -> Response:
        f = _fmt(fmt)
        rows = o3.find_requests(store, _params(request), lang=_lang(request))
        return _render(f, rows, root="service_requests", item="request")

    return _guarded(_safe_fmt(fmt), work)


@router.get("/requests/{request_id}.{fmt}", summary="One service request")
def get_request(request_id: str, fmt: str, request: Request, store: StoreDep) -> Response:
    def work() -> Response:
        f = _fmt(fmt)
        o3.check_jurisdiction(store, request.query_params.get("jurisdiction_id"))
        rows = o3.get_request(store, request_id, lang=_lang(request))
        return _render(f, rows, root="service_requests", item="request")

    return _guarded(_safe_fmt(fmt), work)


@router.post("/requests.{fmt}", summary="Post a service request (form fields as in GeoReport v2)")
async def post_request(fmt: str, request: Request, store: StoreDep) -> Response:
    f = _safe_fmt(fmt)
    raw = await request.body()  # (a body over the limit never gets here: api/app.py answers 413)
    bad: o3.Open311Error | None = None
    try:
        fields = await _fields(request, raw)
    except o3.Open311Error as e:  # answered once the caller is known: who asks comes first (401)
        fields, bad = _params(request), e
    keys = [k for k in fields.get("api_key", []) if k.strip()]
    token = keys[0].strip() if keys else bearer_token(request)
    try:
        principal = await authenticate(request, token)
    except HTTPException as e:
        text = "api_key was not provided; posting requests needs a token from the operator" if not token else (
            "api_key is not valid" if e.status_code == 401 else str(e.detail))
        resp = error_response(e.status_code, text, f)
        resp.headers.update(e.headers or {})
        return resp
    if not principal.can("cases.report"):
        return error_response(403, f"api_key: the role {principal.role} may not report cases", f)
    if bad is not None:
        return error_response(bad.status, bad.description, f)
    return await run_in_threadpool(_guarded, f, lambda: _post(store, fmt, fields))


def _post(store: Store, fmt: str, fields: Params) -> Response:
    f = _fmt(fmt)
    done = o3.submit(store, fields)
    return _render(f, [done.as_dict()], root="service_requests", item="request")


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def not_found(rest: str) -> Response:
    fmt = "xml" if rest.lower().endswith(".xml") else "json"
    return error_response(404, f"there is no Open311 resource {('/' + rest)[:100]!r}", fmt)


def _safe_fmt(fmt: str) -> str:
    """The format errors are rendered in: the requested one when it is known, else JSON."""
    f = fmt.strip().lower()
    return f if f in FORMATS else "json"


# ----------------------------------------------------------------------------- the posted fields


def _scalar(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise o3.Open311Error(400, f"{key[:60]} must be a string or a number")


async def _fields(request: Request, raw: bytes) -> Params:
    """The posted fields: the query string, overridden by the body (form, JSON or multipart)."""
    out = _params(request)
    if not raw.strip():
        return out
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body: Params = {}
    if ctype == "application/json" or (not ctype and raw.lstrip()[:1] == b"{"):
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise o3.Open311Error(400, "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise o3.Open311Error(400, "the JSON body must be an object of fields")
        for k, v in data.items():
            items: Sequence[Any] = v if isinstance(v, list) else [v]
            body[str(k)] = [s for s in (_scalar(str(k), x) for x in items) if s is not None]
    elif ctype == "multipart/form-data":
        try:
            form = await request.form(max_fields=MAX_FIELDS)
        except Exception as e:  # the body is already read: only a malformed form lands here
            raise o3.Open311Error(400, f"the form body cannot be read: {str(e)[:100]}") from None
        for k, v in form.multi_items():
            if isinstance(v, str):  # files are ignored: GeoReport v2 takes media_url, not uploads
                body.setdefault(k, []).append(v)
    else:  # application/x-www-form-urlencoded, the spec's format (and what a client without a type sends)
        try:
            text = raw.decode("utf-8")
            body = parse_qs(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
        except UnicodeDecodeError:
            raise o3.Open311Error(400, "the body is not UTF-8 form data") from None
        except ValueError:
            raise o3.Open311Error(400, f"the form has more than {MAX_FIELDS} fields") from None
    out.update(body)
    return out
