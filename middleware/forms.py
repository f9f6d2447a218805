"""The banner without JavaScript: its form posts, and the cookie-settings page (the second layer, and the
place to change or withdraw a choice: a privacy statement can link to it).

A form post is a "simple" request that any site can make a visitor's browser send, so where it comes from
is checked on standard headers (``koekje.analytics.web.form_origin``): another site's post records nothing
and shows the settings page; a post whose origin the browser did not say (an old browser, a page with
``Referrer-Policy: no-referrer``) shows the settings page too, where the visitor confirms their choice with
a post that does say it (koekje's own pages send ``Referrer-Policy: same-origin``). No token is needed, so
pages stay the same for every visitor who has not chosen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from koekje.analytics.ledger import Method
from koekje.analytics.subjects import reference
from koekje.analytics.web import SECURITY_HEADERS, form_origin, read_limited
from koekje.banner import negotiate, render_banner, render_settings_page

from .consent import Consent
from .declarations import NECESSARY
from .markup import safe_return
from .shown import BannerContent
from .visitor import Visitor

# koekje's pages: never framed (a click on them is the visitor's own), nothing but its own style sheet.
PAGE_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Vary": "Cookie, Accept-Language",
}
MAX_FORM_BODY = 8192
_ACTIONS = frozenset({"accept", "reject", "save", "choose"})
# What a form post decides, given to ConsentEndpoints.decide.
Decide = Callable[..., Awaitable[Any]]


class ConsentForms:
    def __init__(
        self,
        content: BannerContent,
        decide: Decide,
        *,
        languages: tuple[str, ...],
        categories: frozenset[str],
        services: frozenset[str],
        prefix: str,
        counts: Any,
    ) -> None:
        self._content = content
        self._decide = decide
        self._languages = languages
        self._categories = categories
        self._services = services
        self._prefix = prefix
        self._counts = counts

    async def post(self, request: Request, visitor: Visitor) -> Response:
        """A choice from the form: recorded as method ``form``, then back to the page it was made on."""
        body = await read_limited(request, MAX_FORM_BODY)
        fields = form_fields(body, 64) if body is not None else None
        if fields is None:
            self._counts["form_refused"] += 1
            return self._page(request, visitor, status=413 if body is None else 400)
        lang = language(request, field(fields, "lang"), self._languages)
        back = safe_return(field(fields, "return"))
        action = field(fields, "koekje")
        if action not in _ACTIONS:
            self._counts["form_refused"] += 1
            return self._page(request, visitor, lang=lang, back=back, status=400)
        if action == "choose":  # the second layer, on a page of its own
            return RedirectResponse(self._settings_url(request, lang, back), 303, headers=SECURITY_HEADERS)
        categories, services = self._chosen(action, fields)
        origin = form_origin(request.headers, visitor.scheme)
        if origin != "same":
            self._counts[f"form_origin_{origin}"] += 1
            texts = self._content.body(lang)["texts"]
            return self._page(
                request,
                visitor,
                lang=lang,
                back=back,
                chosen=(categories, services),  # what they chose, ticked, for them to confirm
                message=texts["confirm"],
                status=403 if origin == "cross" else 200,
            )
        outcome = await self._decide(request, visitor, categories, services, lang, Method.FORM)
        if isinstance(outcome, tuple) and len(outcome) == 2:
            back_there = RedirectResponse(_location(back), 303, headers=SECURITY_HEADERS)
            back_there.raw_headers += outcome[1]
            return back_there
        texts = self._content.body(lang)["texts"]
        response = self._page(
            request, visitor, lang=lang, back=back, error=texts["error"], status=outcome.status
        )
        if outcome.headers:
            response.headers.update(outcome.headers)
        return response

    async def settings(self, request: Request) -> Response:
        """``GET settings?return=&lang=``: the whole choice on a page, as it stands for this visitor."""
        visitor: Visitor = request.scope["koekje"]
        lang = language(request, request.query_params.get("lang"), self._languages)
        return self._page(request, visitor, lang=lang, back=safe_return(request.query_params.get("return")))

    async def fragment(self, request: Request) -> Response:
        """``GET banner.html?return=&lang=``: the banner as banner.js shows it when a visitor reopens it."""
        visitor: Visitor = request.scope["koekje"]
        lang = language(request, request.query_params.get("lang"), self._languages)
        granted, services = _current(visitor.consent)
        markup = render_banner(
            self._content.body(lang),
            action=self._url(request, "consent"),
            return_to=safe_return(request.query_params.get("return")),
            granted=granted,
            services=services,
            **self._reference(visitor, lang),
        )
        # Framed by another site, a click on it would be that site's trick, not the visitor's choice:
        # banner.js fetches it, nobody needs to frame it.
        return HTMLResponse(markup, headers=PAGE_HEADERS)

    def _chosen(self, action: str, fields: list[tuple[str, str]]) -> tuple[frozenset[str], frozenset[str]]:
        if action == "accept":
            return self._categories, frozenset()
        if action == "reject":
            return frozenset({NECESSARY}), frozenset()
        names = {value for key, value in fields if key == "category"}
        wanted = {value for key, value in fields if key == "service"}
        if names - self._categories or wanted - self._services:
            # A page cached from before the site's declarations changed: what is still offered counts.
            self._counts["form_unknown_names"] += 1
        categories = frozenset(names & self._categories | {NECESSARY})
        return categories, frozenset(wanted & self._services)

    def _page(
        self,
        request: Request,
        visitor: Visitor,
        *,
        lang: str | None = None,
        back: str = "/",
        chosen: tuple[frozenset[str], frozenset[str]] | None = None,
        message: str | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        lang = lang or language(request, None, self._languages)
        granted, services = chosen if chosen is not None else _current(visitor.consent)
        page = render_settings_page(
            self._content.body(lang),
            action=self._url(request, "consent"),
            return_to=back,
            granted=granted,
            services=services,
            message=message,
            error=error,
            **self._reference(visitor, lang),
        )
        return HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)

    def _reference(self, visitor: Visitor, lang: str) -> dict[str, Any]:
        """The visitor's reference, to quote in a letter about their data (none before a decision)."""
        consent = visitor.consent
        return {
            "reference": reference(consent.id) if consent is not None else None,
            "reference_label": self._content.page_texts(lang)["rights_reference"],
        }

    def _url(self, request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{self._prefix}/{name}"

    def _settings_url(self, request: Request, lang: str, back: str) -> str:
        return f"{self._url(request, 'settings')}?lang={lang}&return={quote(back, safe='/')}"


def form_fields(body: bytes, most: int) -> list[tuple[str, str]] | None:
    """The fields of a form post, in order; None when it is not UTF-8 or has more than ``most`` fields."""
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=most)
    except (UnicodeDecodeError, ValueError):
        return None


def field(fields: list[tuple[str, str]], name: str) -> str | None:
    """The first value of ``name`` in a form's fields."""
    return next((value for key, value in fields if key == name), None)


def language(request: Request, asked: str | None, offered: tuple[str, ...]) -> str:
    """The language of koekje's answer: the one asked for (a form's or query's ``lang``), else the
    visitor's Accept-Language, else the site's first."""
    return negotiate(asked, request.headers.get("accept-language"), offered)


def _current(consent: Consent | None) -> tuple[frozenset[str], frozenset[str]]:
    """What is in effect for the visitor, as the settings show it (a region's default included: in an
    opt-out region that is what applies until they choose)."""
    if consent is None:
        return frozenset(), frozenset()
    return frozenset(consent.categories), frozenset(consent.services)


def _location(path: str) -> str:
    """A same-site path for a Location header: plain ASCII whatever the form sent."""
    return quote(path, safe="/?&=%:@!$'()*+,;~-._#")
