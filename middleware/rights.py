"""A visitor's own data, by self-service: a copy of everything stored about them (``GET my-data``, JSON or a
zip of CSV files) and its erasure (``POST forget``). Possession of the signed consent cookie is the identity
check: without a valid one, nothing is stored about the visitor as far as koekje can tell, and nobody else's
data is ever shown."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future
from typing import Any
from urllib.parse import quote

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from koekje.analytics.cookies_seen import SeenCookie
from koekje.analytics.ledger import Method
from koekje.analytics.subjects import Subjects, as_csv_zip, reference
from koekje.analytics.web import SECURITY_HEADERS, form_origin, is_same_origin, media_type, read_limited
from koekje.banner import render_declaration, render_rights_page

from .cookies import delete_cookie
from .declarations import NECESSARY, Declarations
from .enforce import CookieGuard
from .engine import ConsentEngine, DecisionRefused
from .forms import PAGE_HEADERS, field, form_fields, language
from .markup import safe_return
from .shown import BannerContent
from .visitor import Visitor

log = logging.getLogger("koekje")

NOTHING = "koekje has nothing stored about you (no valid consent cookie came with this request)"
# Erasure waits for the store (and the ledger's proof of it) for this long before asking to try again.
ERASE_TIMEOUT = 30.0


class RightsEndpoints:
    def __init__(
        self,
        subjects: Subjects,
        engine: ConsentEngine,
        guard: CookieGuard,
        flush: Callable[[], bool],
        content: BannerContent,
        declarations: Declarations,
        decide: Callable[..., Awaitable[Any]],
        *,
        languages: tuple[str, ...],
        categories: tuple[str, ...],
        prefix: str,
        undeclared: Callable[[], list[SeenCookie]] | None = None,
    ) -> None:
        self._undeclared = undeclared
        self._languages = languages
        self._content = content
        self._declarations = declarations
        self._decide = decide
        self._prefix = prefix
        # What a visitor may object to (GDPR art. 21): direct marketing, and personalisation, where offered.
        self._objections = tuple(c for c in ("marketing", "personalization") if c in categories)
        self._subjects = subjects
        self._engine = engine
        self._guard = guard
        self._flush = flush
        self._limiter = anyio.CapacityLimiter(4)  # exports and erasures at once; more wait their turn

    async def my_data(self, request: Request) -> Response:
        """``GET my-data[?format=csv]``: everything stored about the visitor who asks."""
        visitor: Visitor = request.scope["koekje"]
        consent = visitor.consent
        if consent is None:
            return JSONResponse({"stored": False, "message": NOTHING}, headers=SECURITY_HEADERS)
        headers = {**SECURITY_HEADERS}
        if request.query_params.get("format") == "csv":
            try:
                data = await anyio.to_thread.run_sync(
                    self._subjects.export, consent.visitor_id, consent.id, limiter=self._limiter
                )
            except Exception as exc:
                log.error("koekje could not read a visitor's data for them: %s", exc)
                return _error(503, "your data cannot be read just now; please try again later")
            headers["Content-Disposition"] = 'attachment; filename="my-data.zip"'
            return Response(as_csv_zip(data), media_type="application/zip", headers=headers)
        parts = self._subjects.export_parts(consent.visitor_id, consent.id)
        try:  # the first part (the consent history) before the answer starts: a store that is down is a 503
            first = await anyio.to_thread.run_sync(next, parts, limiter=self._limiter)
        except Exception as exc:
            log.error("koekje could not read a visitor's data for them: %s", exc)
            return _error(503, "your data cannot be read just now; please try again later")
        head = {
            "stored": True,
            "cookie": consent.as_json(),  # what the visitor's own cookie says
            "visitor_id": str(consent.visitor_id) if consent.visitor_id else None,
            "interests": visitor.interests(20),  # derived, in this process's memory, with personalization
        }
        headers["Content-Disposition"] = 'attachment; filename="my-data.json"'
        return StreamingResponse(
            self._json_parts(head, first, parts), media_type="application/json", headers=headers
        )

    async def _json_parts(
        self, head: dict[str, Any], first: tuple[str, list[dict[str, Any]]], parts: Iterator[Any]
    ) -> AsyncIterator[bytes]:
        """One JSON object, written as the parts arrive: the head, then each table's rows."""
        yield json.dumps(head)[:-1].encode()
        table: str | None = None
        comma = False
        part: tuple[str, list[dict[str, Any]]] | None = first
        while part is not None:
            name, rows = part
            if name != table:
                yield (b"]" if table is not None else b"") + f", {json.dumps(name)}: [".encode()
                table, comma = name, False
            for row in rows:
                yield (b", " if comma else b"") + json.dumps(row, default=str).encode()
                comma = True
            try:
                part = await anyio.to_thread.run_sync(_next, parts, limiter=self._limiter)
            except Exception as exc:  # the answer has started: it ends unfinished, so it is no valid JSON
                log.error("koekje could not finish a visitor's copy of their data: %s", exc)
                return
        yield b"]}" if table is not None else b"}"

    async def forget(self, request: Request) -> Response:
        """``POST forget``: erase the visitor's data everywhere, checked; record the erasure (pseudonymous)
        in the ledger; expire their cookies; answer with what was removed."""
        visitor: Visitor = request.scope["koekje"]
        form = await self._form(request)
        if not self._same_site(request, visitor, form):
            return _error(
                403, "erasure can only be asked for on this site itself (cross-site request refused)"
            )
        consent = visitor.consent
        if consent is None:
            if form is not None:
                return self._page(request, visitor, form, message_key="rights_nothing")
            return JSONResponse({"erased": {}, "message": NOTHING}, headers=SECURITY_HEADERS)
        counted: dict[str, int] = {}
        try:
            subjects = self._subjects

            def erase() -> dict[str, int]:
                # Every visitor id they had: withdrawing statistics and granting them again makes a new one.
                return subjects.erase(subjects.visitor_ids(consent.visitor_id, consent.id), self._flush)

            counted = await anyio.to_thread.run_sync(erase, limiter=self._limiter)
            await self._record(visitor, self._lang(request, form))
        except Exception as exc:
            log.error("koekje could not complete an erasure: %s", exc)
            if form is not None:
                return self._page(request, visitor, form, error_key="error", status=503)
            return _error(503, "your data could not be erased just now; please try again later")
        response: Response
        if form is not None:
            count = sum(counted.values())
            response = self._page(request, None, form, message_key="rights_erased", count=count)
        else:
            response = JSONResponse(
                {"erased": counted, "message": "your data is erased; your cookie choice is forgotten too"},
                headers=SECURITY_HEADERS,
            )
        response.raw_headers += self._expiries(visitor, request)
        return response

    async def your_data(self, request: Request) -> Response:
        """``GET your-data?lang=&return=``: the visitor's page about their data, without JavaScript."""
        return self._page(request, request.scope["koekje"], None)

    async def object(self, request: Request) -> Response:
        """``POST object`` (``to=marketing`` or ``to=personalization``, a form or JSON): an objection
        (GDPR art. 21) withdraws that category and its services, recorded in the ledger as ``objection``."""
        visitor: Visitor = request.scope["koekje"]
        form = await self._form(request)
        if not self._same_site(request, visitor, form):
            return _error(
                403, "an objection can only be made on this site itself (cross-site request refused)"
            )
        if form is not None:
            wanted = [value for key, value in form if key == "to"]
        else:
            body = await read_limited(request, 1024)
            try:
                data = json.loads(body or b"")
                wanted = (
                    list(data["to"]) if isinstance(data, dict) and isinstance(data.get("to"), list) else []
                )
            except (ValueError, RecursionError):  # (nesting deeper than the decoder goes: JSON it is not)
                wanted = []
        if not all(isinstance(name, str) for name in wanted):  # found by trying: [["x"]] was a 500
            wanted = []
        objected = set(wanted)
        if not objected or not objected <= set(self._objections):
            return _error(400, f"object to one or more of {list(self._objections)}, e.g. to=marketing")
        current = visitor.consent
        if current is None:  # nothing stored, nothing granted: nothing to object to, and nothing recorded
            if form is not None:
                return self._page(request, visitor, form, message_key="rights_nothing")
            return JSONResponse({"consent": None, "message": NOTHING}, headers=SECURITY_HEADERS)
        categories = current.categories - objected
        declarations = self._declarations
        services = frozenset(s for s in current.services if declarations.services[s].category not in objected)
        lang = self._lang(request, form)
        outcome = await self._decide(request, visitor, categories, services, lang, Method.OBJECTION)
        if not isinstance(outcome, tuple):
            if form is not None:
                return self._page(request, visitor, form, error_key="error", status=outcome.status)
            return _error(outcome.status, outcome.message)
        consent, cookies = outcome
        response: Response
        if form is not None:
            response = self._page(request, visitor.with_consent(consent), form, message_key="rights_objected")
        else:
            response = JSONResponse({"consent": consent.as_json()}, headers=SECURITY_HEADERS)
        response.raw_headers += cookies
        return response

    async def declaration(self, request: Request) -> Response:
        """``GET cookies?lang=``: the cookie declaration, generated from ``koekje.toml``: every declared
        cookie per category and service, and the cookies the site was seen setting without declaring them."""
        lang = self._lang(request, None)
        seen: list[SeenCookie] = []
        if self._undeclared is not None:
            try:
                seen = await anyio.to_thread.run_sync(self._undeclared, limiter=self._limiter)
            except Exception as exc:  # the declaration itself does not need the store
                log.warning("koekje could not read the undeclared cookies for the declaration: %s", exc)
        declarations = self._declarations
        prefix = f"{request.scope.get('root_path', '')}{self._prefix}"
        page = render_declaration(
            self._content.body(lang),
            self._content.page_texts(lang),
            prefix=prefix,
            settings=f"{prefix}/settings?lang={lang}&return={quote(safe_return(request.query_params.get('return')))}",
            undeclared=[c for c in seen if declarations.rule(c.name) is None],  # declared since: listed above
        )
        return HTMLResponse(page, headers={**PAGE_HEADERS, "Cache-Control": "no-cache"})

    async def _form(self, request: Request) -> list[tuple[str, str]] | None:
        """The fields of a form post (None for anything else)."""
        if media_type(request.headers) != "application/x-www-form-urlencoded":
            return None
        body = await read_limited(request, 4096)
        return (form_fields(body, 16) if body is not None else None) or []

    def _same_site(self, request: Request, visitor: Visitor, form: list[tuple[str, str]] | None) -> bool:
        if form is not None:
            return form_origin(request.headers, visitor.scheme) == "same"
        # Not a form: JSON only, which another site cannot send without the browser asking first.
        json_body = media_type(request.headers) == "application/json"
        return json_body and is_same_origin(request.headers, visitor.scheme)

    def _lang(self, request: Request, form: list[tuple[str, str]] | None) -> str:
        asked = field(form, "lang") if form else request.query_params.get("lang")
        return language(request, asked, self._languages)

    def _page(
        self,
        request: Request,
        visitor: Visitor | None,
        form: list[tuple[str, str]] | None,
        *,
        message_key: str | None = None,
        error_key: str | None = None,
        status: int = 200,
        count: int = 0,
    ) -> HTMLResponse:
        lang = self._lang(request, form)
        texts = self._content.page_texts(lang)
        consent = visitor.consent if visitor is not None else None
        prefix = f"{request.scope.get('root_path', '')}{self._prefix}"
        page = render_rights_page(
            texts,
            lang=lang,
            prefix=prefix,
            reference=reference(consent.id) if consent is not None else None,
            objections=[c for c in self._objections if consent is not None and c in consent.categories],
            back=safe_return(request.query_params.get("return")),
            message=texts[message_key].replace("{count}", str(count)) if message_key else None,
            error=texts[error_key] if error_key else None,
        )
        return HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)

    async def _record(self, visitor: Visitor, lang: str) -> None:
        """The erasure in the ledger: the last decision of this visitor's chain, granting nothing."""
        engine, previous = self._engine, visitor.consent
        erased = engine.codec.new(frozenset({NECESSARY}), uuid.uuid4(), method=Method.ERASURE)
        try:
            future = engine.record(visitor, erased, lang, previous=previous, wait=True, charge=False)
        except DecisionRefused:  # never for a narrowing; recorded or not, the erasure stands
            return
        if future is not None:
            await anyio.to_thread.run_sync(_wait, future, limiter=self._limiter)

    def _expiries(self, visitor: Visitor, request: Request) -> list[tuple[bytes, bytes]]:
        secure = self._engine.secure(visitor)
        headers = [delete_cookie(name, secure=secure) for name in sorted(self._engine.own_cookie_names())]
        if self._guard.enabled:
            incoming = self._engine.incoming(request.scope)
            headers += self._guard.expiries(incoming.cookies, None, secure=secure)
        return headers


def _next(parts: Iterator[Any]) -> Any:
    return next(parts, None)


def _wait(future: Future[None]) -> None:
    future.result(ERASE_TIMEOUT)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=SECURITY_HEADERS)
