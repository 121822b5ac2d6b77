"""Who may use the dashboard, and protection against requests forged by other sites.

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
import secrets
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, Response

AUTH_COOKIE = "queuectl_auth"
CSRF_COOKIE = "queuectl_csrf"
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


class Guard:
    """ASGI middleware: checks the token (if any) and the CSRF rules before the app."""

    def __init__(self, app, token: str | None):
        self.app = app
        self.token = token
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
        cookies = _cookies(headers)
        path = scope["path"]
        if path not in OPEN_PATHS and not self.signed_in(headers, cookies):
            return await _refuse(
                scope, receive, send, 401, "sign in: this dashboard needs its token"
            )
        unsafe = scope["method"] not in SAFE_METHODS
        if unsafe and _from_browser(headers) and not self.bearer(headers):
            if not _same_origin(headers):
                return await _refuse(scope, receive, send, 403, "cross-site request refused")
            expected = cookies.get(CSRF_COOKIE, "")
            given = headers.get("x-csrf-token")
            if given is None and headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"
            ):
                body, receive = await _buffered(receive)
                given = (parse_qs(body.decode("latin-1")).get("csrf") or [""])[0]
            if not expected or not hmac.compare_digest((given or "").encode(), expected.encode()):
                return await _refuse(scope, receive, send, 403, "missing or wrong CSRF token")
        return await self.app(scope, receive, send)


def _cookies(headers: Headers) -> dict[str, str]:
    from http.cookies import SimpleCookie

    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header counts as no cookies
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


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
    """Read the whole request body, and a `receive` that replays it to the app."""
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
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


async def _refuse(scope, receive, send, status: int, message: str):
    path = scope["path"]
    accept = Headers(scope=scope).get("accept", "")
    response: Response
    if path.startswith("/api/") or path == "/openapi.json" or "application/json" in accept:
        response = JSONResponse({"error": message}, status_code=status)
    elif status == 401 and scope["method"] in SAFE_METHODS and path != "/metrics":
        from .pages import signin_page

        response = signin_page(scope, status=401, next_path=path)
    else:
        response = PlainTextResponse(message + "\n", status_code=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="queuectl"'
    await response(scope, receive, send)
