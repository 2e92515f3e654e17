"""Who may see the dashboard, and which POSTs it accepts.

- Authentication: with `token` set, ``Authorization: Bearer <token>`` or basic auth whose
  password is the token; with `basicUser`/`basicPassword`, basic auth. Nothing set (only allowed
  on a loopback address): open.
- Cross-site request forgery: every action is a POST that must (1) come from the dashboard's
  own origin (``Origin``, else ``Referer``, must match the ``Host`` it was sent to; a POST
  with neither is refused), and (2) carry the form field ``csrf`` equal to the browser
  session's ``redline_csrf`` cookie (random, HttpOnly, SameSite=Strict), which a page on
  another site can neither read nor send.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import urllib.parse

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from redline.dashboard.settings import DashboardConfig

__all__ = ["CSRF_COOKIE", "SecurityMiddleware", "check_csrf", "csrf_token", "who"]

CSRF_COOKIE = "redline_csrf"


def _same(given: str | None, wanted: str | None) -> bool:
    return given is not None and wanted is not None and hmac.compare_digest(given, wanted)


def authorized(config: DashboardConfig, header: str | None) -> bool:
    """Does this Authorization header satisfy the configured auth?"""
    if not config.auth_required:
        return True
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() == "bearer":
        return _same(value.strip(), config.token)
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(value.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    if config.basic_user and _same(user, config.basic_user):
        return _same(password, config.basic_password)
    return _same(password, config.token)


def _origin_ok(headers: Headers) -> bool:
    source = headers.get("origin") or headers.get("referer")
    if not source or source == "null":
        return False
    return urllib.parse.urlsplit(source).netloc == headers.get("host")


class SecurityMiddleware:
    """Authentication for every request; same-origin for every POST; the CSRF cookie."""

    def __init__(self, app: ASGIApp, config: DashboardConfig) -> None:
        self.app, self.config = app, config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not authorized(self.config, headers.get("authorization")):
            deny = PlainTextResponse(
                "authentication required", 401, {"WWW-Authenticate": 'Basic realm="redline"'}
            )
            await deny(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD") and not _origin_ok(headers):
            refuse = PlainTextResponse("cross-site request refused: Origin does not match", 403)
            await refuse(scope, receive, send)
            return
        await self.app(scope, receive, _with_cookie(scope, send))


def _cookie_of(scope: Scope) -> str | None:
    return Request(scope).cookies.get(CSRF_COOKIE)


def _with_cookie(scope: Scope, send: Send) -> Send:
    existing = _cookie_of(scope)
    token = existing or secrets.token_urlsafe(24)
    scope.setdefault("state", {})["csrf"] = token

    async def sender(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start" and not existing:
            cookie = f"{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
            headers = list(message.get("headers", []))  # type: ignore[call-overload]
            headers.append((b"set-cookie", cookie.encode()))
            message = {**message, "headers": headers}
        await send(message)

    return sender  # type: ignore[return-value]


def csrf_token(request: Request) -> str:
    """The token a form on this page must carry (the session's cookie value)."""
    return str(request.state.csrf)


async def check_csrf(request: Request) -> dict[str, list[str]]:
    """The POSTed form, after checking its ``csrf`` field; 403 otherwise."""
    form = await request.form()
    if not _same(str(form.get("csrf", "")), request.cookies.get(CSRF_COOKIE)):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
    return {key: [str(v) for v in form.getlist(key)] for key in form}


def who(request: Request) -> str:
    """Who sent `request`, for the audit log: the basic-auth user name, "token" for a bearer
    token, "anonymous" when the dashboard is open; then the client's address."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    name = "anonymous"
    if scheme.lower() == "bearer":
        name = "token"
    elif scheme.lower() == "basic":
        try:
            name = base64.b64decode(value.strip()).decode().partition(":")[0] or "token"
        except (binascii.Error, UnicodeDecodeError):
            name = "?"
    host = request.client.host if request.client else "?"
    return f"{name}@{host}"
