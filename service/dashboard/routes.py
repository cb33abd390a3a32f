"""`/dashboard`: the pages, sign-in and sign-out. A page is a shell: its script (static/) reads the API under
`/v1` with the page's session and follows `/v1/events` (or one job's `/v1/jobs/{id}/events`) to stay current.

Who may see a page is the guard's decision (service/auth.py), as for the API: a page needs `read`, and a
browser without a key or session is sent to sign in. In an app without the guard, pages serve loopback
clients only.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from service.auth import (
    ANONYMOUS,
    AuthMode,
    KeyRing,
    Principal,
    Scope,
    auth_mode,
    flat_routes,
    is_loopback,
    public,
    sign_in_at,
)
from service.dashboard.pages import render, static_response
from service.dashboard.paths import PREFIX, SIGN_IN, SIGN_OUT
from service.dashboard.sessions import COOKIE, CSRF_FIELD, Session, close_session, find_session, open_session
from service.deps import PoolDep, SettingsDep
from service.errors import ApiError, PlatformRoute

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=PlatformRoute)
SIGN_IN_COOKIE = "dashboard_sign_in"  # the sign-in form's CSRF token (double submit), before any session exists
SIGN_IN_FORM_S = 600
NAV = (("overview", "", "Overview"), ("jobs", "/jobs", "Jobs"), ("dead", "/dead", "Dead letters"),
       ("cron", "/cron", "Cron"), ("enqueue", "/enqueue", "Enqueue"))  # fmt: skip


@dataclass(frozen=True)
class Viewer:
    """Who looks at a page: their name and scopes, and the CSRF token the page's forms and calls carry."""

    name: str
    scopes: frozenset[str]
    csrf: str
    signed_in: bool


async def get_viewer(request: Request) -> Viewer:
    principal: Principal | None = getattr(request.state, "principal", None)
    session: Session | None = getattr(request.state, "session", None)
    if principal is None:  # no guard in this app: serve this host only, as the guard does without keys
        if not is_loopback(request.scope.get("client")):
            raise ApiError(403, "the dashboard serves only this host in an app without the platform's guard")
        principal = ANONYMOUS
    return Viewer(principal.name, principal.scopes, session.csrf if session else "", session is not None)


ViewerDep = Annotated[Viewer, Depends(get_viewer)]


def _page(template: str, page: str, viewer: Viewer, **context: Any) -> Response:
    return render(
        template,
        page=page,
        nav=[(name, PREFIX + path, label) for name, path, label in NAV],
        viewer=viewer,
        scopes=" ".join(sorted(viewer.scopes)),
        sign_out=SIGN_OUT,
        csrf_field=CSRF_FIELD,
        **context,
    )


@router.get("")
@sign_in_at(SIGN_IN)
async def overview(viewer: ViewerDep) -> Response:
    return _page("overview.html", "overview", viewer)


@router.get("/jobs")
@sign_in_at(SIGN_IN)
async def jobs(viewer: ViewerDep) -> Response:
    return _page("jobs.html", "jobs", viewer)


def _operation(request: Request, operation_id: str) -> tuple[str, str] | None:
    """(method, path template) of the app's route with this operationId: the page calls the API where it is."""
    for route in flat_routes(request.app.router.routes):
        if getattr(route, "operation_id", None) == operation_id and route.methods:
            return sorted(route.methods)[0], route.path_format
    return None


@router.get("/jobs/{job_id}")
@sign_in_at(SIGN_IN)
async def job(job_id: str, viewer: ViewerDep, request: Request) -> Response:
    abort = _operation(request, "abort_job")
    path = abort[1].replace("{job_id}", quote(job_id, safe="")) if abort else None
    return _page("job.html", "job", viewer, job_id=job_id, abort_method=abort and abort[0], abort_path=path)


@router.get("/dead")
@sign_in_at(SIGN_IN)
async def dead(viewer: ViewerDep) -> Response:
    return _page("dead.html", "dead", viewer)


@router.get("/cron")
@sign_in_at(SIGN_IN)
async def cron(viewer: ViewerDep) -> Response:
    return _page("cron.html", "cron", viewer)


@router.get("/enqueue")
@sign_in_at(SIGN_IN)
async def enqueue(viewer: ViewerDep) -> Response:
    return _page("enqueue.html", "enqueue", viewer)


@router.get("/static/{name}")
@public
async def static(name: str, request: Request) -> Response:
    return static_response(request, name)


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard path of this site, never another site (`//evil`)."""
    if target and target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX


def _sign_in_page(next_: str, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    response = render("login.html", status, page="login", next=next_, csrf=token, csrf_field=CSRF_FIELD, error=error)
    response.set_cookie(SIGN_IN_COOKIE, token, max_age=SIGN_IN_FORM_S, path=SIGN_IN, httponly=True, samesite="strict")
    return response


@router.get("/login")
@public
async def sign_in_form(settings: SettingsDep, next: str | None = None) -> Response:
    if auth_mode(settings) is not AuthMode.keys:
        return RedirectResponse(_safe_next(next), 303)
    return _sign_in_page(_safe_next(next))


async def _form(request: Request) -> dict[str, str]:
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
    return {name: values[0] for name, values in fields.items()}


@router.post("/login")
@public
async def sign_in(request: Request, pool: PoolDep, settings: SettingsDep) -> Response:
    """Check the pasted key against API_KEYS; on success keep a session in Redis and give the browser its cookie."""
    form = await _form(request)
    next_ = _safe_next(form.get("next"))
    if auth_mode(settings) is not AuthMode.keys:
        return RedirectResponse(next_, 303)
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not hmac.compare_digest(form.get(CSRF_FIELD, "").encode(), expected.encode()):
        return _sign_in_page(next_, "The sign-in form expired; please try again.", 403)
    keys = KeyRing(settings.api_keys)
    key = form.get("key", "").strip()
    principal = keys.find(key) if key else None
    if principal is None:
        return _sign_in_page(next_, "Unknown API key.", 401)
    if Scope.read not in principal.scopes:
        return _sign_in_page(next_, f"The key {principal.name!r} lacks the 'read' scope the dashboard needs.", 403)
    entry = next(entry for entry in settings.api_keys if entry.name == principal.name)
    session = await open_session(pool, entry.sha256.lower(), settings.dashboard_session_seconds)
    response = RedirectResponse(next_, 303)
    response.set_cookie(
        COOKIE,
        session.token,
        max_age=settings.dashboard_session_seconds,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(SIGN_IN_COOKIE, path=SIGN_IN)
    return response


@router.post("/logout")
@public
async def sign_out(request: Request, pool: PoolDep) -> Response:
    """End the session (in Redis, so on every replica), if the form proves it came from the dashboard."""
    token = request.cookies.get(COOKIE)
    form = await _form(request)
    session = await find_session(pool, token) if token else None
    if session is not None:
        if not hmac.compare_digest(form.get(CSRF_FIELD, "").encode(), session.csrf.encode()):
            raise ApiError(403, "sign-out needs the page's CSRF token", type_="csrf_failed")
        await close_session(pool, session.token)
    response = RedirectResponse(SIGN_IN, 303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
