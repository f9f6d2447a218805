"""The marketer dashboard: a small Starlette app behind a login, mounted by the middleware."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.resources import files
from typing import Any, TypeVar
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import anyio
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from . import retention, views
from .accounts import Account, Accounts, Role
from .charts import long_date
from .clock import Clock, utcnow
from .cookies_seen import undeclared_cookies
from .ledger import verify
from .ratelimit import PrefixBudget
from .reports import MAX_FILTERS, NO_TOPIC
from .requests_log import RequestLog
from .store import Store, StoreError
from .web import (
    SECURITY_HEADERS,
    Networks,
    clock_signer,
    is_same_origin,
    is_secure,
    media_type,
    read_limited,
)

SESSION_COOKIE = "koekje_dashboard"
MAX_STORE_THREADS = 4
T = TypeVar("T")
log = logging.getLogger("koekje.analytics")


class _StoreDown(Exception):
    """The store did not answer in time: the page says so (503)."""


MAX_FORM_BYTES = 4096
# Password checks run at most this many at a time: each argon2 verification takes ~64 MiB and tens of ms,
# and the login form is public.
MAX_CONCURRENT_LOGINS = 2
# Logins waiting for one of those at most: beyond, an attempt is refused at once (429), not queued.
MAX_WAITING_LOGINS = 8
# Attempts per account per minute (a burst of this many, then this many a minute); four times as many per
# network (truncated address), so a team behind one address is not locked out by one mistyping colleague.
LOGINS_PER_MINUTE = 5
_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    site: str = "default"
    timezone: str = "Europe/Amsterdam"
    min_visitors: int = 5
    session_hours: int = 12
    secure_cookies: bool | None = None  # None: Secure when the request came over https
    # How long a page waits for the store before it says so (503) instead of holding a thread.
    store_timeout_seconds: float = 10.0
    # Client networks (CIDRs) the dashboard answers; empty: any. Others get 403, before the login form.
    allow: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.min_visitors < 1:
            raise ValueError("dashboard.min_visitors must be at least 1")
        if not 1 <= self.session_hours <= 24 * 7:
            raise ValueError("dashboard.session_hours must be between 1 and 168")
        if not 0 < self.store_timeout_seconds <= 300:
            raise ValueError("dashboard.store_timeout_seconds must be between 0 and 300")
        ZoneInfo(self.timezone)  # raises for an unknown zone name
        for cidr in self.allow:
            try:
                Networks([cidr])
            except ValueError:
                raise ValueError(f"dashboard.allow: {cidr[:60]!r} is not an IP network") from None


class Dashboard:
    def __init__(
        self,
        store: Store,
        accounts: Accounts,
        secret_keys: list[str],
        settings: DashboardSettings | None = None,
        clock: Clock = utcnow,
        scheme: Callable[[Scope], str] | None = None,
        client_prefix: Callable[[Scope], str | None] | None = None,
        client_address: Callable[[Scope], str | None] | None = None,
    ) -> None:
        self._db = store
        # The client's address (behind trusted proxies, the one they report), for the allowlist only.
        self._client_address = client_address or (lambda scope: (scope.get("client") or (None,))[0])
        self._allow = Networks((settings or DashboardSettings()).allow)
        # The client's truncated address, for throttling guesses per network (the middleware knows it).
        self._client_prefix = client_prefix or (lambda scope: None)
        # Password guesses: a budget per account and one per network; a bounded queue for the hash checks.
        # (On the dashboard's clock, so a test can pin it.)
        seconds = lambda: clock().timestamp()  # noqa: E731
        self._account_budget = PrefixBudget(LOGINS_PER_MINUTE, monotonic=seconds)
        self._network_budget = PrefixBudget(LOGINS_PER_MINUTE * 4, monotonic=seconds)
        self._waiting_logins = 0
        # How the visitor reached the site (http or https): behind a TLS proxy the middleware knows better.
        self._scheme = scheme or (lambda scope: str(scope.get("scheme", "http")))
        self._accounts = accounts
        self._settings = settings or DashboardSettings()
        self._zone = ZoneInfo(self._settings.timezone)
        self._clock = clock
        self._sessions = URLSafeTimedSerializer(
            secret_keys, salt="koekje.dashboard", signer=clock_signer(clock)
        )
        self._templates = Environment(
            loader=PackageLoader("koekje.analytics", "templates"),
            autoescape=select_autoescape(default=True),
        )
        self._templates.globals["label_of"] = views.label
        self._templates.globals["max_filters"] = MAX_FILTERS
        self._templates.filters["long_date"] = long_date
        self._css = (files("koekje.analytics") / "static" / "dashboard.css").read_bytes()
        self._logins = anyio.Semaphore(MAX_CONCURRENT_LOGINS)
        # The dashboard's own threads: a store that hangs holds a few of them, never the site's.
        self._threads = anyio.CapacityLimiter(MAX_STORE_THREADS)
        self._router = Router(
            routes=[
                Route("/", self._overview, methods=["GET"]),
                Route("/topics", self._topics, methods=["GET"]),
                Route("/pages", self._pages, methods=["GET"]),
                Route("/login", self._login_form, methods=["GET"]),
                Route("/login", self._login, methods=["POST"]),
                Route("/logout", self._logout, methods=["POST"]),
                Route("/privacy", self._privacy, methods=["GET"]),
                Route("/accounts", self._accounts_page, methods=["GET"]),
                Route("/accounts", self._accounts_post, methods=["POST"]),
                Route("/dashboard.css", self._stylesheet, methods=["GET"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._allow and self._client_address(scope) not in self._allow:
            refused = PlainTextResponse(
                "The dashboard cannot be reached from this network.\n",
                status_code=403,
                headers={**SECURITY_HEADERS, "Content-Security-Policy": _CSP},
            )
            await refused(scope, receive, send)
            return
        try:
            await self._router(scope, receive, send)
        except _StoreDown:
            response = HTMLResponse(
                self._templates.get_template("unavailable.html").render(base=str(scope.get("root_path", ""))),
                status_code=503,
                headers={**SECURITY_HEADERS, "Content-Security-Policy": _CSP, "Retry-After": "30"},
            )
            await response(scope, receive, send)

    async def _ask(self, call: Callable[..., T], *args: Any) -> T:
        """A store call in one of the dashboard's threads, given up on after ``store_timeout_seconds``."""
        try:
            with anyio.fail_after(self._settings.store_timeout_seconds):
                return await anyio.to_thread.run_sync(
                    call, *args, limiter=self._threads, abandon_on_cancel=True
                )
        except (TimeoutError, StoreError) as exc:
            log.warning("koekje dashboard: the store did not answer: %s", exc)
            raise _StoreDown from exc

    # -- pages --------------------------------------------------------------------------------------------

    async def _overview(self, request: Request) -> Response:
        return await self._report(request, "overview")

    async def _topics(self, request: Request) -> Response:
        return await self._report(request, "topics")

    async def _pages(self, request: Request) -> Response:
        return await self._report(request, "pages")

    async def _report(self, request: Request, view: str) -> Response:
        """A report view, or one of its tables as CSV (``?format=csv&table=NAME``)."""
        account = await self._account(request)
        if account is None:
            return RedirectResponse(_base(request) + "/login", status_code=303)
        today = self._clock().astimezone(self._zone).date()
        settings = self._settings
        try:
            asked = views.parse(request.query_params, today, settings.site, self._zone, settings.min_visitors)
        except ValueError as exc:
            asked = views.parse({}, today, settings.site, self._zone, settings.min_visitors)
            context = {"q": asked, "error": str(exc), "data": None}
            return self._render(request, f"{view}.html", status=400, account=account, view=view, **context)
        data = await self._ask(views.VIEWS[view], self._db, asked, self._clock())
        if request.query_params.get("format") == "csv":
            table = data["tables"].get(request.query_params.get("table", ""))
            if table is None:
                return Response("No such table in this view.\n", status_code=404, media_type="text/plain")
            sel = asked.selection
            name = f"koekje-{table.name}-{sel.first.isoformat()}-{sel.last.isoformat()}.csv"
            return Response(
                views.csv_text(table),
                media_type="text/csv; charset=utf-8",
                headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
            )
        return self._render(
            request, f"{view}.html", account=account, view=view, q=asked, data=data, error=None
        )

    async def _privacy(self, request: Request) -> Response:
        """For admins: the data-subject requests (open ones by due date, answered ones), retention per
        table, cookies the site sets without declaring them, and on request the ledger's verification."""
        account = await self._account(request)
        if account is None:
            return RedirectResponse(_base(request) + "/login", status_code=303)
        if account.role != Role.ADMIN:
            return self._render(request, "privacy.html", status=403, account=account, forbidden=True)
        requests = await self._ask(RequestLog(self._db, self._clock).requests)
        done = sorted(
            (r for r in requests if r.done is not None), key=lambda r: r.done or r.received, reverse=True
        )
        tables = await self._ask(retention.status, self._db, self._clock)
        cookies = await self._ask(undeclared_cookies, self._db, self._settings.site)
        checked = None
        if request.query_params.get("verify") == "1":  # reads the whole ledger: only when asked
            days = timedelta(days=self._db.settings.ledger_retention_days)
            checked = await self._ask(verify, self._db, self._settings.site, self._clock(), days)
        return self._render(
            request,
            "privacy.html",
            account=account,
            view="privacy",
            today=self._clock().astimezone(self._zone).date(),
            open_requests=[r for r in requests if r.done is None],
            done_requests=done[:100],
            tables=tables,
            cookies=cookies,
            checked=checked,
        )

    async def _accounts_page(self, request: Request) -> Response:
        return await self._accounts_view(request, await self._account(request), None, None)

    async def _accounts_post(self, request: Request) -> Response:
        """Add an account, change a role, reset a password, disable, enable or remove: for admins, from the
        dashboard itself (the origin is checked), never on one's own account (no admin locks themselves
        out). A new password is shown once, on the page that answers the form."""
        if not is_same_origin(request.headers, self._scheme(request.scope)):
            return self._render(
                request, "login.html", status=403, error="This form must be sent from the dashboard."
            )
        account = await self._account(request)
        if account is None or account.role != Role.ADMIN:
            return await self._accounts_view(request, account, None, None)

        async def answer(
            error: str | None, status: int = 400, shown: tuple[str, str] | None = None
        ) -> Response:
            return await self._accounts_view(request, account, error, shown, status=status)

        form = await _read_form(request)
        if form is None:
            return await answer("The form was malformed.")
        action, username = form.get("action", ""), form.get("username", "").strip().lower()[:64]
        try:
            role = Role(form.get("role", Role.MARKETER.value))
        except ValueError:
            return await answer("Unknown role.")
        if username == account.username and action != "reset":
            return await answer("You cannot do that to your own account.")
        accounts = self._accounts
        password = secrets.token_urlsafe(12)
        try:
            if action == "add":
                if await self._ask(accounts.get, username) is not None:
                    return await answer(f"{username} exists already.")
                await self._ask(accounts.add, username, password, role)
                return await answer(None, 200, (username, password))
            if action == "reset":
                if not await self._ask(accounts.set_password, username, password):
                    return await answer("No such account.", 404)
                return await answer(None, 200, (username, password))
            kept = accounts.keeping_an_admin
            changes = {
                "role": lambda: kept(username, lambda: accounts.set_role(username, role)),
                "disable": lambda: kept(username, lambda: accounts.set_disabled(username, True)),
                "enable": lambda: accounts.set_disabled(username, False),
                "remove": lambda: kept(username, lambda: accounts.remove(username)),
            }
            if action not in changes:
                return await answer("Unknown action.")
            if not await self._ask(changes[action]):
                return await answer("No such account.", 404)
        except ValueError as exc:  # a user name that is not one
            return await answer(str(exc))
        return RedirectResponse(_base(request) + "/accounts", status_code=303)

    async def _accounts_view(
        self,
        request: Request,
        account: Account | None,
        error: str | None,
        new_password: tuple[str, str] | None,
        status: int = 200,
    ) -> Response:
        if account is None:
            return RedirectResponse(_base(request) + "/login", status_code=303)
        if account.role != Role.ADMIN:
            return self._render(request, "accounts.html", status=403, account=account, forbidden=True)
        listed = await self._ask(self._accounts.list)
        return self._render(
            request,
            "accounts.html",
            status=status,
            account=account,
            view="accounts",
            accounts=listed,
            roles=list(Role),
            error=error,
            new_password=new_password,
        )

    async def _login_form(self, request: Request) -> Response:
        return self._render(request, "login.html", error=None)

    async def _login(self, request: Request) -> Response:
        if not is_same_origin(request.headers, self._scheme(request.scope)):
            return self._render(
                request, "login.html", status=403, error="This form must be sent from the dashboard itself."
            )
        form = await _read_form(request)
        if form is None:
            return self._render(request, "login.html", status=400, error="The login form was malformed.")
        username = form.get("username", "")[:64]
        prefix = self._client_prefix(request.scope)
        # Found when tried as an attacker would: 40 wrong passwords in a row never slowed anyone, and 60
        # parallel guesses queued behind the two hash checks made a real login take seconds. Guesses beyond
        # an account's or a network's budget, or beyond a short queue, are refused before any hashing.
        if self._waiting_logins >= MAX_WAITING_LOGINS:
            return self._too_many(request, 1)
        if not self._account_budget.take(username.lower()):
            return self._too_many(request, self._account_budget.retry_after(username.lower()))
        if not self._network_budget.take(prefix):
            return self._too_many(request, self._network_budget.retry_after(prefix))
        self._waiting_logins += 1
        try:
            async with self._logins:
                account = await self._ask(
                    self._accounts.authenticate, username, form.get("password", "")[:1024]
                )
        finally:
            self._waiting_logins -= 1
        if account is None:
            return self._render(request, "login.html", status=401, error="Unknown user or wrong password.")
        response = RedirectResponse(_base(request) + "/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            # A nonce: two logins in one second are two sessions, so ending one does not end the other.
            self._sessions.dumps({"u": account.username, "c": account.credential, "n": secrets.token_hex(8)}),
            max_age=self._settings.session_hours * 3600,
            path=_base(request) + "/",
            httponly=True,
            samesite="strict",
            secure=is_secure(self._scheme(request.scope), self._settings.secure_cookies),
        )
        return response

    def _too_many(self, request: Request, retry_after: int) -> Response:
        response = self._render(
            request, "login.html", status=429, error=f"Too many attempts. Try again in {retry_after} seconds."
        )
        response.headers["Retry-After"] = str(retry_after)
        return response

    async def _logout(self, request: Request) -> Response:
        if not is_same_origin(request.headers, self._scheme(request.scope)):
            # Said, not a redirect that looks like a logout while the session goes on (found by trying).
            return self._render(
                request, "login.html", status=403, error="This form must be sent from the dashboard."
            )
        response = RedirectResponse(_base(request) + "/login", status_code=303)
        token = request.cookies.get(SESSION_COOKIE)
        session = self._session(token)
        if token and session is not None:
            # Found when tried as an attacker would: a copied token outlived its logout by 12 hours.
            # Ended on the server, for every worker, until it would have expired anyway.
            # (The store's TTL counts in its own time, not a test's pinned clock: the later of both.)
            until = max(self._clock(), utcnow()) + timedelta(hours=self._settings.session_hours)
            await self._ask(self._end_session, _session_key(session, token), until)
        response.delete_cookie(SESSION_COOKIE, path=_base(request) + "/")
        return response

    def _end_session(self, digest: bytes, until: datetime) -> None:
        self._db.insert_columns("dashboard_ended_sessions", {"digest": [digest], "until": [until]})

    def _ended(self, digest: bytes) -> bool:
        rows = self._db.query(
            f"SELECT count() FROM {self._db.table('dashboard_ended_sessions')} WHERE digest = {{d:String}}",
            {"d": digest},
        )
        return bool(rows[0][0])

    async def _stylesheet(self, request: Request) -> Response:
        return Response(self._css, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})

    # -- helpers ------------------------------------------------------------------------------------------

    def _session(self, token: str | None) -> dict[str, Any] | None:
        """What a session cookie says, when it is one of ours and not expired."""
        if not token:
            return None
        try:
            session = self._sessions.loads(token, max_age=self._settings.session_hours * 3600)
        except BadSignature:
            return None
        return session if isinstance(session, dict) and isinstance(session.get("u"), str) else None

    async def _account(self, request: Request) -> Account | None:
        token = request.cookies.get(SESSION_COOKIE)
        session = self._session(token)
        if token is None or session is None:
            return None
        if await self._ask(self._ended, _session_key(session, token)):
            return None
        # Looked up each time, so removing an account or changing its password ends its sessions.
        account = await self._ask(self._accounts.get, session["u"])
        valid = account is not None and not account.disabled and account.credential == session.get("c")
        return account if valid else None

    def _render(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        html = self._templates.get_template(template).render(
            base=_base(request),
            no_topic=NO_TOPIC,
            min_visitors=self._settings.min_visitors,
            presets=views.PRESETS,
            metrics=views.METRICS,
            **context,
        )
        headers = {**SECURITY_HEADERS, "Content-Security-Policy": _CSP}
        return HTMLResponse(html, status_code=status, headers=headers)


def _session_key(session: dict[str, Any], token: str) -> bytes:
    """What the store keeps of an ended session: 32 bytes of a SHA-256, never the token. Of what was signed
    into it (its account and nonce), not of the token's text: found when tried as an attacker would, a
    signature can be spelled more than one way (the unused bits of its last base64 letter, padding), and a
    logged-out token came back with its last letter changed. (A session from before the nonce: its token.)"""
    nonce = session.get("n")
    basis = f"{session['u']}\n{nonce}" if isinstance(nonce, str) else token
    return hashlib.sha256(basis.encode()).digest()


def _base(request: Request) -> str:
    """The path the dashboard is mounted at, without a trailing slash."""
    return str(request.scope.get("root_path", "")).rstrip("/")


async def _read_form(request: Request) -> dict[str, str] | None:
    """An urlencoded form of bounded size, or None when it is not one."""
    if media_type(request.headers) != "application/x-www-form-urlencoded":
        return None
    body = await read_limited(request, MAX_FORM_BYTES)
    if body is None:
        return None
    try:
        return dict(parse_qsl(body.decode("utf-8"), max_num_fields=10))
    except ValueError:
        return None
