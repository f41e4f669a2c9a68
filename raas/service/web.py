"""The booking page: server-rendered HTML (Jinja2) over the JSON API, from `clients/web/`.

Pages (all GET, the login cookie decides who you are; without it you land on /login):
  /                     redirect to /book
  /login                sign-in form (posts to /auth/login, which sets the cookie)
  /book                 the robots, with their live status, and the Jobs panel (jobs.js)
  /book/robots/{id}     one robot's week calendar: book, cancel, staff maintenance blocks
  /web/static/{file}    the page's scripts, stylesheet and icon
  /favicon.ico          the icon

The pages only render the frame; `calendar.js` fetches and changes everything through the same
JSON API scripts use, so the page can do nothing the API would not let its user do.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from raas.service.crud import commands as command_crud
from raas.service.crud import robots as robot_crud
from raas.service.crud import tokens as token_crud
from raas.service.deps import Now, ObjectId, Principal, ReadDB, State
from raas.service.errors import NotAuthenticated, NotFound, TokenExpired, TokenRevoked

#: The page's files in the repository (templates/ and static/).
DEFAULT_WEB_DIR = Path(__file__).resolve().parents[2] / "clients" / "web"
STATIC_FILES = {
    "calendar.js": "text/javascript",
    "safety.js": "text/javascript",
    "session.js": "text/javascript",
    "jobs.js": "text/javascript",
    "booking.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
STATUS_POLL_MS = 5000


def _signed_in(request: Request, state: State, now: dt.datetime) -> Principal | None:
    """The person behind the login cookie, or None (no cookie, expired, revoked, robot)."""
    secret = request.cookies.get(state.settings.cookie_name)
    if not secret:
        return None
    try:
        with state.db.read() as db:
            token, user = token_crud.authenticate(db, secret, now)
    except (NotAuthenticated, TokenExpired, TokenRevoked):
        return None
    principal = Principal(user=user, token=token)
    return None if principal.robot_id is not None or not user.active else principal


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _safe_next(target: str) -> str:
    """Only same-site paths: never redirect a fresh login to another host."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/book"
    return target


def make_web_router(web_dir: Path | None = None) -> APIRouter:
    """The page routes, rendering templates from `web_dir` (default: the repo's clients/web)."""
    root = (web_dir or DEFAULT_WEB_DIR).resolve()
    templates = Jinja2Templates(directory=root / "templates")
    static_dir = root / "static"

    def static_url(name: str) -> str:
        version = int((static_dir / name).stat().st_mtime)
        return f"/web/static/{name}?v={version}"

    templates.env.globals["static"] = static_url
    router = APIRouter(include_in_schema=False)

    def render(
        request: Request, name: str, context: dict[str, Any], status_code: int = 200
    ) -> Response:
        return templates.TemplateResponse(
            request, name, context, status_code=status_code, headers={"Cache-Control": "no-store"}
        )

    @router.get("/", name="booking_root")
    def root_page() -> RedirectResponse:
        return RedirectResponse("/book", status_code=303)

    @router.get("/login", name="booking_login")
    def login_page(
        request: Request, next_: Annotated[str, Query(alias="next", max_length=500)] = "/book"
    ) -> Response:
        return render(request, "login.html", {"user": None, "next_url": _safe_next(next_)})

    @router.get("/book", name="booking_home")
    def robots_page(request: Request, state: State, now: Now, db: ReadDB) -> Response:
        principal = _signed_in(request, state, now)
        if principal is None:
            return _to_login(request)
        robots = [robot_crud.public(db, r, now, state.settings) for r in robot_crud.list_robots(db)]
        context = {
            "user": principal.user,
            "robots": robots,
            "staff": principal.is_staff,
            "poll_ms": STATUS_POLL_MS,
        }
        return render(request, "robots.html", context)

    @router.get("/book/robots/{robot_id}", name="booking_week")
    def week_page(
        request: Request,
        robot_id: ObjectId,
        state: State,
        now: Now,
        db: ReadDB,
        week: Annotated[dt.date | None, Query(description="any day of the week to show")] = None,
    ) -> Response:
        principal = _signed_in(request, state, now)
        if principal is None:
            return _to_login(request)
        try:
            robot = robot_crud.get(db, robot_id)
        except NotFound:
            context = {"user": principal.user, "robots": [], "missing": robot_id}
            return render(request, "robots.html", context, status_code=404)
        context = {
            "user": principal.user,
            "staff": principal.is_staff,
            "can_estop": principal.is_staff
            or command_crud.holds_current_reservation(db, principal.user.id, robot.id, now),
            "robot": robot_crud.public(db, robot, now, state.settings),
            "week": week.isoformat() if week else "",
            "poll_ms": STATUS_POLL_MS,
        }
        return render(request, "week.html", context)

    @router.get("/favicon.ico", name="booking_favicon")
    def favicon() -> FileResponse:
        """Browsers ask for /favicon.ico on their own: the same icon (SVG)."""
        return FileResponse(
            static_dir / "favicon.svg",
            media_type="image/svg+xml",
            headers={"Cache-Control": "max-age=86400"},
        )

    @router.get("/web/static/{name}", name="booking_static")
    def static_file(name: str) -> FileResponse:
        media_type = STATIC_FILES.get(name)
        if media_type is None:
            raise NotFound(f"no static file {name}")
        return FileResponse(
            static_dir / name, media_type=media_type, headers={"Cache-Control": "max-age=3600"}
        )

    return router
