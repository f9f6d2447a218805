"""koekje's own HTTP endpoints, under the configured prefix (default ``/_koekje``)."""

from __future__ import annotations

import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router

from koekje.analytics import ConsentRecord, Dashboard, record_consent
from koekje.analytics.web import SECURITY_HEADERS, is_same_origin, media_type, read_limited
from koekje.banner import ASSET_NAMES, asset, negotiate, texts

from .consent import NECESSARY
from .cookies import set_cookie
from .visitor import Visitor

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("koekje")

MAX_CONSENT_BODY = 2048


def build_router(runtime: Runtime) -> Router:
    prefix = runtime.config.site.prefix
    routes: list[BaseRoute] = [
        Route(f"{prefix}/{name}", _asset_endpoint(name), methods=["GET"]) for name in ASSET_NAMES
    ]
    routes += [
        Route(f"{prefix}/config.json", _Handler(runtime).config_json, methods=["GET"]),
        Route(f"{prefix}/consent", _Handler(runtime).consent, methods=["POST"]),
    ]
    if runtime.config.dashboard.enabled:
        dashboard = Dashboard(
            runtime.store,
            runtime.accounts,
            list(runtime.config.secret_keys),
            runtime.config.dashboard_settings(),
            runtime.clock,
        )
        routes.append(Mount(f"{prefix}/dashboard", app=dashboard))
    return Router(routes=routes)


def _asset_endpoint(name: str) -> Any:
    async def endpoint(request: Request) -> Response:
        item = asset(name)
        etag = f'"{item.version}"'
        immutable = request.query_params.get("v") == item.version
        headers = {
            "ETag": etag,
            "Cache-Control": "public, max-age=31536000, immutable" if immutable else "public, max-age=300",
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(item.body, media_type=item.media_type, headers=headers)

    return endpoint


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=SECURITY_HEADERS)


class _Handler:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._config = runtime.config
        self._languages = runtime.config.banner.languages

    async def config_json(self, request: Request) -> Response:
        visitor: Visitor = request.scope["koekje"]
        lang = negotiate(
            request.query_params.get("lang"), request.headers.get("accept-language"), self._languages
        )
        words = texts(lang)
        categories = [NECESSARY, *self._config.consent.categories]
        body = {
            "lang": lang,
            "region": visitor.region,
            # Until regional rules exist, every region gets the strictest: nothing before opt-in.
            "mode": "opt-in",
            "policy_revision": self._config.consent.policy_revision,
            "categories": [
                {"id": c, "required": c == NECESSARY, **words["categories"][c]} for c in categories
            ],
            "texts": {key: value for key, value in words.items() if key != "categories"},
            "privacy_url": self._config.banner.privacy_url,
            "consent": visitor.consent.as_json() if visitor.consent else None,
            "gpc": visitor.gpc,
            "endpoints": {"consent": f"{self._runtime.prefix(request.scope.get('root_path', ''))}/consent"},
        }
        return JSONResponse(body, headers={**SECURITY_HEADERS, "Vary": "Cookie, Accept-Language"})

    async def consent(self, request: Request) -> Response:
        """Record a choice. A choice that grants anything is answered (and its cookies set) only once its
        ledger row is durable; withdrawing or narrowing takes effect even when the row cannot be written."""
        if not is_same_origin(request.headers):
            return _error(403, "consent can only be given on this site itself (cross-site request refused)")
        if media_type(request.headers) != "application/json":
            return _error(415, "send the choice as JSON with Content-Type: application/json")
        body = await read_limited(request, MAX_CONSENT_BODY)
        if body is None:
            return _error(413, f"the request body is larger than {MAX_CONSENT_BODY} bytes")
        try:
            choice = self._parse_choice(body)
        except ValueError as exc:
            return _error(400, str(exc))
        chosen, lang = choice

        runtime = self._runtime
        visitor: Visitor = request.scope["koekje"]
        before = visitor.consent.categories if visitor.consent else frozenset({NECESSARY})
        consent = runtime.cookies.new(chosen, uuid.uuid4())
        cookies = [
            set_cookie(
                self._config.consent.cookie,
                runtime.cookies.dumps(consent),
                max_age=runtime.consent_max_age,
                secure=runtime.secure(request.scope),
            )
        ]
        stored_id = visitor.id  # set only when analytics was already allowed and the id is valid
        if consent.allows("analytics"):
            if stored_id is None:  # newly allowed: a fresh id, never one that existed before consent
                stored_id, header = runtime.issue_visitor_id(request.scope)
                cookies.append(header)
        else:
            stored_id = None
            if self._config.consent.visitor_cookie in request.cookies:
                cookies.append(runtime.remove_visitor_id(request.scope))
        record = ConsentRecord(
            consent_id=consent.id,
            previous_id=visitor.consent.id if visitor.consent else None,
            ts=consent.given_at,
            visitor_id=stored_id,
            categories=tuple(sorted(consent.categories)),
            policy_revision=consent.revision,
            lang=lang,
            country=visitor.region or "",
            ip_prefix=(runtime.truncate(visitor.address) if visitor.address else None) or "",
            gpc=visitor.gpc,
        )
        try:
            await run_in_threadpool(record_consent, runtime.store, record)
        except Exception:
            log.exception("koekje could not write a consent record")
            runtime.failures["consent_record"] += 1
            if consent.categories - before:
                return _error(503, "your choice could not be recorded just now; please try again")
            # Withdrawing or narrowing takes effect without its proof: the visitor's right comes first.

        response = JSONResponse({"consent": consent.as_json()}, headers=SECURITY_HEADERS)
        response.raw_headers.extend(cookies)
        return response

    def _parse_choice(self, body: bytes) -> tuple[frozenset[str], str]:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise ValueError("the body is not valid JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("categories"), list):
            raise ValueError('send an object with a list of categories: {"categories": ["analytics"]}')
        known = {NECESSARY, *self._config.consent.categories}
        categories = data["categories"]
        if len(categories) > len(known) or not all(isinstance(c, str) for c in categories):
            raise ValueError(f"categories must be a list of names out of {sorted(known)}")
        unknown = set(categories) - known
        if unknown:
            shown = sorted(c[:40] for c in unknown)
            raise ValueError(f"unknown categories {shown}; this site asks for {sorted(known)}")
        lang = data.get("lang")
        if not isinstance(lang, str) or lang not in self._languages:
            lang = self._languages[0]
        return frozenset(categories), lang
