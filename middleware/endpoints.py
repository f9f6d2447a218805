"""koekje's own HTTP endpoints, under the configured prefix (default ``/_koekje``)."""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any, NamedTuple

import anyio
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import ASGIApp

from koekje.analytics.ledger import Method
from koekje.analytics.web import SECURITY_HEADERS, Networks, is_same_origin, media_type, read_limited
from koekje.banner import ASSET_NAMES, asset, negotiate

from .collect import CollectEndpoint
from .consent import Consent
from .consent_mode import ConsentModeDefault
from .declarations import NECESSARY, Declarations
from .enforce import CookieGuard
from .engine import ConsentEngine, DecisionRefused
from .forms import ConsentForms
from .metrics import KoekjeCollector, exposition
from .rights import RightsEndpoints
from .shown import BannerContent
from .visitor import Visitor

log = logging.getLogger("koekje")

MAX_CONSENT_BODY = 4096
# How long a decision that grants something waits for its proof to be durable before the visitor is asked
# to try again.
LEDGER_TIMEOUT = 10.0
# Decisions waiting for their proof at once; beyond, they queue here instead of taking the site's threads.
_WAITERS = 64
# What the banner may say about how a choice was made (the form, GPC, defaults and objections are the
# server's own to record).
_CLIENT_METHODS = {Method.BANNER, Method.SETTINGS, Method.API, Method.EMBED}


def build_router(
    prefix: str,
    consent: ConsentEndpoints,
    dashboard: ASGIApp | None,
    metrics: MetricsEndpoint | None = None,
    collect: CollectEndpoint | None = None,
    rights: RightsEndpoints | None = None,
) -> Router:
    routes: list[BaseRoute] = [
        Route(f"{prefix}/{name}", _asset_endpoint(name), methods=["GET"]) for name in ASSET_NAMES
    ]
    routes += [
        Route(f"{prefix}/config.json", consent.config_json, methods=["GET"]),
        Route(f"{prefix}/consent", consent.consent, methods=["POST"]),
        Route(f"{prefix}/settings", consent.forms.settings, methods=["GET"]),
        Route(f"{prefix}/banner.html", consent.forms.fragment, methods=["GET"]),
    ]
    if collect is not None:
        routes.append(Route(f"{prefix}/collect", collect.collect, methods=["POST"]))
    if rights is not None:
        routes.append(Route(f"{prefix}/my-data", rights.my_data, methods=["GET"]))
        routes.append(Route(f"{prefix}/forget", rights.forget, methods=["POST"]))
        routes.append(Route(f"{prefix}/object", rights.object, methods=["POST"]))
        routes.append(Route(f"{prefix}/your-data", rights.your_data, methods=["GET"]))
        routes.append(Route(f"{prefix}/cookies", rights.declaration, methods=["GET"]))
    if dashboard is not None:
        routes.append(Mount(f"{prefix}/dashboard", app=dashboard))
    if metrics is not None:
        routes.append(Route(f"{prefix}/metrics", metrics.scrape, methods=["GET"]))
    return Router(routes=routes)


class MetricsEndpoint:
    """``GET metrics``: Prometheus text, for the allowed networks and/or the bearer token only."""

    def __init__(self, collector: KoekjeCollector, allow: Iterable[str], token: str) -> None:
        self._collector = collector
        self._allow = Networks(allow)
        self._token = token.encode()

    async def scrape(self, request: Request) -> Response:
        visitor: Visitor = request.scope["koekje"]
        if not self._allowed(visitor.address, request.headers.get("authorization", "")):
            return _error(403, "metrics are for the monitoring system only (address or token refused)")
        body = await anyio.to_thread.run_sync(exposition, self._collector)  # reads the spool directory
        return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})

    def _allowed(self, address: str | None, authorization: str) -> bool:
        if self._token:
            scheme, _, offered = authorization.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(offered.strip().encode(), self._token):
                return True
        return address in self._allow


def _asset_endpoint(name: str) -> Any:
    async def endpoint(request: Request) -> Response:
        item = asset(name)
        coding, body = item.variant(request.headers.get("accept-encoding", ""))
        etag = f'"{item.version}-{coding}"' if coding else f'"{item.version}"'  # one per representation
        immutable = request.query_params.get("v") == item.version
        headers = {
            "ETag": etag,
            "Cache-Control": "public, max-age=31536000, immutable" if immutable else "public, max-age=300",
            "Vary": "Accept-Encoding",
            "X-Content-Type-Options": "nosniff",
        }
        if coding:
            headers["Content-Encoding"] = coding
        if _matches(request.headers.get("if-none-match", ""), etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=item.media_type, headers=headers)

    return endpoint


def _matches(if_none_match: str, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (a list, weak validators and ``*`` as RFC 9110 says)."""
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match[:1024].split(",")]
    return etag in tags or "*" in tags


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": message}, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})}
    )


class ConsentEndpoints:
    """``config.json`` (what the banner shows this visitor) and ``consent`` (recording a decision)."""

    def __init__(
        self,
        engine: ConsentEngine,
        content: BannerContent,
        guard: CookieGuard,
        declarations: Declarations,
        *,
        languages: tuple[str, ...],
        categories: tuple[str, ...],
        prefix: str,
        consent_mode: ConsentModeDefault | None = None,
        floating_button: bool = False,
    ) -> None:
        self._engine = engine
        self._consent_mode = consent_mode.grantors() if consent_mode is not None else None
        self._floating_button = floating_button
        self._content = content
        self._guard = guard
        self._declarations = declarations
        self._languages = languages
        self._categories = frozenset({NECESSARY, *categories})
        self._prefix = prefix
        self._waiters = anyio.CapacityLimiter(_WAITERS)
        self.forms = self._forms = ConsentForms(
            content,
            self.decide,
            languages=languages,
            categories=self._categories,
            services=frozenset(declarations.services),
            prefix=prefix,
            counts=engine.counts,
        )

    async def config_json(self, request: Request) -> Response:
        visitor: Visitor = request.scope["koekje"]
        lang = negotiate(
            request.query_params.get("lang"), request.headers.get("accept-language"), self._languages
        )
        body = {
            **self._content.body(lang),
            "region": visitor.region,
            "mode": visitor.mode,
            "consent": visitor.consent.as_json() if visitor.consent else None,
            "gpc": visitor.gpc,
            "consent_mode": self._consent_mode,  # Google Consent Mode: what grants each type (None: off)
            "floating_button": self._floating_button,
            "endpoints": {
                name: f"{request.scope.get('root_path', '')}{self._prefix}/{name}"
                for name in ("consent", "collect")
            },
        }
        return JSONResponse(body, headers={**SECURITY_HEADERS, "Vary": "Cookie, Accept-Language"})

    async def consent(self, request: Request) -> Response:
        """Record a decision. One that grants anything is answered (and its cookie set) only once its ledger
        row is durable; withdrawing or narrowing takes effect even when the row cannot be written."""
        visitor: Visitor = request.scope["koekje"]
        if media_type(request.headers) == "application/x-www-form-urlencoded":
            return await self._forms.post(request, visitor)
        if not is_same_origin(request.headers, visitor.scheme):
            return _error(403, "consent can only be given on this site itself (cross-site request refused)")
        if media_type(request.headers) != "application/json":
            return _error(415, "send the choice as JSON with Content-Type: application/json")
        body = await read_limited(request, MAX_CONSENT_BODY)
        if body is None:
            return _error(413, f"the request body is larger than {MAX_CONSENT_BODY} bytes")
        try:
            categories, services, lang, method = self._parse_choice(body)
        except ValueError as exc:
            return _error(400, str(exc))
        outcome = await self.decide(request, visitor, categories, services, lang, method)
        if isinstance(outcome, Refused):
            return _error(outcome.status, outcome.message, outcome.headers)
        consent, cookies = outcome
        response = JSONResponse({"consent": consent.as_json()}, headers=SECURITY_HEADERS)
        response.raw_headers += cookies
        return response

    async def decide(
        self,
        request: Request,
        visitor: Visitor,
        categories: frozenset[str],
        services: frozenset[str],
        lang: str,
        method: Method,
    ) -> tuple[Consent, list[tuple[bytes, bytes]]] | Refused:
        """Record a decision: the visitor's consent now, and the headers that set its cookies."""
        engine = self._engine
        current = visitor.consent
        if (
            current is not None
            and current.decided
            and _same(current, categories, services)
            and current.gpc >= visitor.gpc  # granted again under GPC: an explicit grant over the signal
        ):
            # The same decision again: nothing new to prove, no row, no new cookie.
            engine.counts["decision_repeated"] += 1
            return current, []
        keep = current.visitor_id if current is not None and current.allows("analytics") else None
        consent = engine.codec.new(
            categories,
            uuid.uuid4(),
            method=method,
            services=services,
            # A visitor id is created only by a decision that grants statistics, and kept while it stays.
            visitor_id=keep or uuid.uuid4(),
            # Loading one embed decides about that service only: a visitor not yet asked is still asked.
            decided=(current is not None and current.decided) if method == Method.EMBED else None,
            gpc=visitor.gpc,
        )
        grants_more = consent.widens(current)
        # A narrowing of a valid decision is never refused and costs no budget (it needs an earlier,
        # budgeted grant); a first decision that grants nothing is budgeted but takes effect regardless.
        charge = grants_more or current is None
        try:
            future = engine.record(visitor, consent, lang, previous=current, wait=True, charge=charge)
        except DecisionRefused as exc:
            if grants_more:
                return Refused(429, str(exc), {"Retry-After": str(exc.retry_after)})
            future = None  # refusing is never refused: it takes effect, unrecorded (counted)
        if future is not None and not await self._durable(future) and grants_more:
            return Refused(503, "your choice could not be recorded just now; please try again")

        incoming = engine.incoming(request.scope)
        cookies = engine.cookie_headers(consent, visitor, incoming)
        if self._guard.enabled:
            cookies += self._guard.expiries(incoming.cookies, consent, secure=engine.secure(visitor))
        return consent, cookies

    async def _durable(self, future: Future[None]) -> bool:
        """Wait (in a thread of koekje's own, not the site's) until the row is on disk; False on failure."""
        try:
            await anyio.to_thread.run_sync(future.result, LEDGER_TIMEOUT, limiter=self._waiters)
        except Exception as exc:
            log.error("koekje could not record a consent decision: %s", exc)
            self._engine.counts["decision_unrecorded"] += 1
            return False
        return True

    def _parse_choice(self, body: bytes) -> tuple[frozenset[str], frozenset[str], str, Method]:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise ValueError("the body is not valid JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("categories"), list):
            raise ValueError('send an object with a list of categories: {"categories": ["analytics"]}')
        categories = _names(data["categories"], self._categories, "categories")
        services = _names(data.get("services", []), frozenset(self._declarations.services), "services")
        lang = data.get("lang")
        if not isinstance(lang, str) or lang not in self._languages:
            lang = self._languages[0]
        method = data.get("method", "banner")
        if not isinstance(method, str) or method not in _CLIENT_METHODS:
            raise ValueError(f"method must be one of {sorted(_CLIENT_METHODS)}")
        return categories, services, lang, Method(method)


class Refused(NamedTuple):
    """A decision not taken: the HTTP status, why, and any headers to send with that."""

    status: int
    message: str
    headers: dict[str, str] | None = None


def _names(value: object, known: frozenset[str], what: str) -> frozenset[str]:
    if not isinstance(value, list) or len(value) > len(known) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be a list of names out of {sorted(known)}")
    unknown = set(value) - known
    if unknown:
        shown = sorted(v[:40] for v in unknown)
        raise ValueError(f"unknown {what} {shown}; this site offers {sorted(known)}")
    return frozenset(value)


def _same(consent: Consent, categories: frozenset[str], services: frozenset[str]) -> bool:
    return consent.categories == categories | {NECESSARY} and consent.services == services
