"""A visitor's own data, by self-service: a copy of everything stored about them (``GET my-data``, JSON or a
zip of CSV files) and its erasure (``POST forget``). Possession of the signed consent cookie is the identity
check: without a valid one, nothing is stored about the visitor as far as koekje can tell, and nobody else's
data is ever shown."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from koekje.analytics.ledger import Method
from koekje.analytics.subjects import Subjects, as_csv_zip
from koekje.analytics.web import SECURITY_HEADERS, form_origin, is_same_origin, media_type
from koekje.banner import negotiate

from .cookies import delete_cookie
from .declarations import NECESSARY
from .enforce import CookieGuard
from .engine import ConsentEngine, DecisionRefused
from .visitor import Visitor, read_incoming

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
        *,
        languages: tuple[str, ...],
        honor_dnt: bool,
    ) -> None:
        self._languages = languages
        self._subjects = subjects
        self._engine = engine
        self._guard = guard
        self._flush = flush
        self._honor_dnt = honor_dnt
        self._limiter = anyio.CapacityLimiter(4)  # exports and erasures at once; more wait their turn

    async def my_data(self, request: Request) -> Response:
        """``GET my-data[?format=csv]``: everything stored about the visitor who asks."""
        visitor: Visitor = request.scope["koekje"]
        consent = visitor.consent
        if consent is None:
            return JSONResponse({"stored": False, "message": NOTHING}, headers=SECURITY_HEADERS)
        try:
            data = await anyio.to_thread.run_sync(
                self._subjects.export, consent.visitor_id, consent.id, limiter=self._limiter
            )
        except Exception as exc:
            log.error("koekje could not read a visitor's data for them: %s", exc)
            return _error(503, "your data cannot be read just now; please try again later")
        headers = {**SECURITY_HEADERS}
        if request.query_params.get("format") == "csv":
            headers["Content-Disposition"] = 'attachment; filename="my-data.zip"'
            return Response(as_csv_zip(data), media_type="application/zip", headers=headers)
        body: dict[str, Any] = {
            "stored": True,
            "cookie": consent.as_json(),  # what the visitor's own cookie says
            "visitor_id": str(consent.visitor_id) if consent.visitor_id else None,
            "interests": visitor.interests(20),  # derived, in this process's memory, with personalization
            **data,
        }
        headers["Content-Disposition"] = 'attachment; filename="my-data.json"'
        return JSONResponse(body, headers=headers)

    async def forget(self, request: Request) -> Response:
        """``POST forget``: erase the visitor's data everywhere, checked; record the erasure (pseudonymous)
        in the ledger; expire their cookies; answer with what was removed."""
        visitor: Visitor = request.scope["koekje"]
        if media_type(request.headers) == "application/x-www-form-urlencoded":
            same = form_origin(request.headers, visitor.scheme) == "same"
        else:
            # Not a form: JSON only, which another site cannot send without the browser asking first.
            same = is_same_origin(request.headers, visitor.scheme) and media_type(request.headers) == (
                "application/json"
            )
        if not same:
            return _error(
                403, "erasure can only be asked for on this site itself (cross-site request refused)"
            )
        consent = visitor.consent
        if consent is None:
            return JSONResponse({"erased": {}, "message": NOTHING}, headers=SECURITY_HEADERS)
        counted: dict[str, int] = {}
        try:
            if consent.visitor_id is not None:
                counted = await anyio.to_thread.run_sync(
                    self._subjects.erase, consent.visitor_id, self._flush, limiter=self._limiter
                )
            lang = negotiate(None, request.headers.get("accept-language"), self._languages)
            await self._record(visitor, lang)
        except Exception as exc:
            log.error("koekje could not complete an erasure: %s", exc)
            return _error(503, "your data could not be erased just now; please try again later")
        response = JSONResponse(
            {"erased": counted, "message": "your data is erased; your cookie choice is forgotten too"},
            headers=SECURITY_HEADERS,
        )
        response.raw_headers += self._expiries(visitor, request)
        return response

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
            incoming = read_incoming(request.scope, self._honor_dnt)
            headers += self._guard.expiries(incoming.cookies, None, secure=secure)
        return headers


def _wait(future: Future[None]) -> None:
    future.result(ERASE_TIMEOUT)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=SECURITY_HEADERS)
