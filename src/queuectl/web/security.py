"""Who may use the dashboard, and protection against requests forged by other sites.

Host: without a token, only requests to a loopback name (localhost, 127.0.0.1, [::1])
are answered, so a hostile page cannot reach the dashboard by DNS rebinding.

Token: when the dashboard has one (required off loopback), every request needs it:
`Authorization: Bearer TOKEN` (API clients, Prometheus) or the cookie that the sign-in
form sets for a browser. The cookie holds an HMAC of the token, not the token.

CSRF: a request that changes something (any method but GET and HEAD) and comes from a
browser must carry the CSRF token of its page (form field `csrf` or header
`X-CSRF-Token`, equal to the `queuectl_csrf` cookie: a double submit another site can
neither read nor set), and its Origin, if sent, must be this host. Browsers mark their
requests (Cookie, Origin, Sec-Fetch-Site); a request without any of these marks comes
from a program such as curl, which a web page cannot impersonate; so does one that
carries the token in its Authorization header.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse, PlainTextResponse, Response

AUTH_COOKIE = "queuectl_auth"
CSRF_COOKIE = "queuectl_csrf"
_CSRF_SHAPE = re.compile(r"[A-Za-z0-9_-]{32}")
FORM_LIMIT = 65536
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/signin"})  # the sign-in page must be reachable to sign in


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_cookie_value(token: str) -> str:
    """What the sign-in cookie holds: derived from the token, but not the token."""
    return hmac.new(token.encode(), b"queuectl dashboard", hashlib.sha256).hexdigest()


def same_token(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def valid_csrf_token(value: str | None) -> bool:
    """Whether a cookie's value is a token we could have made: another site on this
    host (cookies ignore ports) could set anything, and the token is put in the page."""
    return value is not None and _CSRF_SHAPE.fullmatch(value) is not None


class Guard:
    """ASGI middleware: checks the token (if any) and the CSRF rules before the app.

    `signin_page(scope, status=, next_path=)` answers a browser that is not signed in:
    the pages hand it in, so this module needs nothing of theirs."""

    def __init__(self, app, token: str | None, signin_page: Callable[..., Response]):
        self.app = app
        self.token = token
        self.signin_page = signin_page
        self.cookie_value = auth_cookie_value(token) if token else None

    def bearer(self, headers: Headers) -> bool:
        """Whether the request presents the token in an Authorization header, which no
        browser adds to a request by itself (so it cannot be forged by another site)."""
        scheme, _, given = headers.get("authorization", "").partition(" ")
        return (
            self.token is not None and scheme.lower() == "bearer" and same_token(given, self.token)
        )

    def signed_in(self, headers: Headers, cookies: dict[str, str]) -> bool:
        if self.token is None or self.bearer(headers):
            return True
        cookie = cookies.get(AUTH_COOKIE, "")
        return hmac.compare_digest(cookie.encode(), (self.cookie_value or "").encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if self.token is None and not is_loopback(_hostname(headers.get("host", ""))):
            # Without a token only this machine may ask, under a loopback name: another
            # name that resolves here (DNS rebinding) would make a hostile page "same
            # origin" and let it read the queue and act on it.
            message = "without a token the dashboard answers only to localhost names"
            return await self._refuse(scope, receive, send, 403, message)
        cookies = _cookies(headers)
        path = scope["path"]
        if path not in OPEN_PATHS and not self.signed_in(headers, cookies):
            return await self._refuse(
                scope, receive, send, 401, "sign in: this dashboard needs its token"
            )
        unsafe = scope["method"] not in SAFE_METHODS
        if unsafe and _from_browser(headers) and not self.bearer(headers):
            if not _same_origin(headers):
                return await self._refuse(scope, receive, send, 403, "cross-site request refused")
            expected = cookies.get(CSRF_COOKIE, "")
            expected = expected if valid_csrf_token(expected) else ""
            given = headers.get("x-csrf-token")
            if given is None and headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"
            ):
                body, receive = await _buffered(receive)
                if body is None:
                    return await self._refuse(scope, receive, send, 413, "form too large")
                given = (parse_qs(body.decode("latin-1")).get("csrf") or [""])[0]
            if not expected or not hmac.compare_digest((given or "").encode(), expected.encode()):
                return await self._refuse(scope, receive, send, 403, "missing or wrong CSRF token")
        return await self.app(scope, receive, send)

    async def _refuse(self, scope, receive, send, status: int, message: str):
        path = scope["path"]
        accept = Headers(scope=scope).get("accept", "")
        response: Response
        if path.startswith("/api/") or path == "/openapi.json" or "application/json" in accept:
            response = JSONResponse({"error": message}, status_code=status)
        elif status == 401 and scope["method"] in SAFE_METHODS and path != "/metrics":
            response = self.signin_page(scope, status=401, next_path=path)
        else:
            response = PlainTextResponse(message + "\n", status_code=status)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="queuectl"'
        await response(scope, receive, send)


def _cookies(headers: Headers) -> dict[str, str]:
    return cookie_parser(headers.get("cookie", ""))


def _hostname(host: str) -> str:
    """The name in a Host header ("[::1]:8700" -> "::1"; "" if it is not one)."""
    try:
        return urlsplit("//" + host).hostname or ""
    except ValueError:
        return ""


def _from_browser(headers: Headers) -> bool:
    return any(name in headers for name in ("cookie", "origin", "sec-fetch-site"))


def _same_origin(headers: Headers) -> bool:
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == headers.get("host", "")


async def _buffered(receive):
    """Read the whole request body, and a `receive` that replays it to the app; None
    for a body over FORM_LIMIT (the dashboard's forms are tiny), not held in memory."""
    chunks, size = [], 0
    more = True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > FORM_LIMIT:
            return None, receive
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay
