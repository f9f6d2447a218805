"""Tandwerk Support: a small bilingual (Dutch/English) demo website.

A plain Starlette app. Templates and static files are located relative to
this file, so the package works whatever name it is installed under.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

HERE = Path(__file__).resolve().parent
INTEREST_COOKIE = "tw_interest"  # declared in koekje.toml (marketing, service "newsletter")

Lang = Literal["nl", "en"]
LANGS: tuple[Lang, ...] = ("nl", "en")
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Page:
    """One page, available in both languages.

    ``key`` names the template ``templates/<key>.<lang>.html`` and the nav
    section; ``section`` overrides which nav item is highlighted.
    """

    key: str
    nl_path: str
    en_path: str
    nl_label: str
    en_label: str
    section: str = ""
    in_nav: bool = True
    topics: tuple[str, ...] = ()

    def path(self, lang: Lang) -> str:
        return self.nl_path if lang == "nl" else self.en_path

    def label(self, lang: Lang) -> str:
        return self.nl_label if lang == "nl" else self.en_label


@dataclass(frozen=True)
class NavItem:
    href: str
    label: str
    current: bool


HOME = Page("home", "/", "/en/", "Home", "Home", in_nav=False)

PAGES: tuple[Page, ...] = (
    HOME,
    Page("dental-hygiene", "/mondhygiene", "/en/dental-hygiene", "Mondhygiëne", "Dental hygiene"),
    Page("implantology", "/implantologie", "/en/implantology", "Implantologie", "Implantology"),
    Page("staffing", "/personeel", "/en/staffing", "Personeel", "Staffing"),
    Page("courses", "/cursussen", "/en/courses", "Cursussen", "Courses"),
    Page(
        "course-implantology-basics",
        "/cursussen/implantologie-basis",
        "/en/courses/implantology-basics",
        "Implantologie basis",
        "Implantology basics",
        section="courses",
        in_nav=False,
        topics=("implantologie",),
    ),
    Page(
        "practice-management",
        "/praktijkmanagement",
        "/en/practice-management",
        "Praktijkmanagement",
        "Practice management",
    ),
    Page("about", "/over-ons", "/en/about", "Over ons", "About us"),
    Page("contact", "/contact", "/en/contact", "Contact", "Contact"),
    Page("privacy", "/privacy", "/en/privacy", "Privacy", "Privacy", in_nav=False),
)

# The topic of each section's pages (koekje.toml's analytics.topics say which paths have it).
SECTION_TOPICS = {
    "dental-hygiene": "mondhygiene",
    "implantology": "implantologie",
    "staffing": "personeel",
    "courses": "cursussen",
    "practice-management": "praktijkmanagement",
}


def suggestions(request: Request, lang: Lang, current: Page | None, limit: int = 3) -> list[NavItem]:
    """ "You might also like": pages on the topics this visitor reads most that they have not seen yet.
    Empty without personalization consent (koekje then answers nothing)."""
    visitor = request.scope.get("koekje")
    if visitor is None:
        return []
    found: list[NavItem] = []
    for topic in visitor.interests(3):
        for page in PAGES:
            topics = {SECTION_TOPICS.get(page.section or page.key), *page.topics}
            path = page.path(lang)
            fresh = page is not current and all(item.href != path for item in found)
            if topic in topics and fresh and not visitor.seen(path):
                found.append(NavItem(path, page.label(lang), False))
    return found[:limit]


UI: dict[Lang, dict[str, str]] = {
    "nl": {
        "other_lang": "en",
        "switch": "English",
        "switch_title": "Read this page in English",
        "skip": "Naar de inhoud",
        "nav_label": "Hoofdmenu",
        "tagline": "Ondersteuning voor tandartspraktijken",
        "cookie_settings": "Cookie-instellingen",
        "privacy": "Privacyverklaring",
        "contact": "Contact",
        "fictional": "Tandwerk Support is een fictief bedrijf. Deze website is een demonstratie.",
        "suggestions": "Misschien ook interessant",
    },
    "en": {
        "other_lang": "nl",
        "switch": "Nederlands",
        "switch_title": "Lees deze pagina in het Nederlands",
        "skip": "Skip to content",
        "nav_label": "Main menu",
        "tagline": "Support for dental practices",
        "cookie_settings": "Cookie settings",
        "privacy": "Privacy statement",
        "contact": "Contact",
        "fictional": "Tandwerk Support is a fictional company. This website is a demonstration.",
        "suggestions": "You might also like",
    },
}


def _other(lang: Lang) -> Lang:
    return "en" if lang == "nl" else "nl"


def create_site() -> Starlette:
    """Build the demo website as a Starlette application."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    templates = Jinja2Templates(env=env)

    def render(
        request: Request,
        lang: Lang,
        template: str,
        page: Page | None,
        status_code: int = 200,
    ) -> Response:
        other = _other(lang)
        section = (page.section or page.key) if page is not None else ""
        nav = [NavItem(p.path(lang), p.label(lang), p.key == section) for p in PAGES if p.in_nav]
        context: dict[str, Any] = {
            "lang": lang,
            "t": UI[lang],
            "nav": nav,
            "home_href": HOME.path(lang),
            "alt_lang": other,
            "alt_href": (page or HOME).path(other),
            "href": {p.key: p.path(lang) for p in PAGES},
            "suggestions": suggestions(request, lang, page),
        }
        return templates.TemplateResponse(
            request, f"{template}.{lang}.html", context, status_code=status_code
        )

    def page_endpoint(page: Page, lang: Lang) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            if page.topics:
                # Picked up by the analytics middleware, in addition to the
                # topic it derives from the path.
                request.state.koekje_topics = list(page.topics)
            response = render(request, lang, page.key, page)
            if page.section == "courses":
                # The site remembers course interest for newsletter offers. It
                # sets the cookie unconditionally, as sites do; koekje removes
                # it unless the visitor granted the newsletter service.
                response.set_cookie(
                    INTEREST_COOKIE, page.key, max_age=90 * 86400, httponly=True, samesite="lax"
                )
            return response

        endpoint.__name__ = f"{lang}_{page.key.replace('-', '_')}"
        return endpoint

    async def en_redirect(request: Request) -> Response:
        return RedirectResponse("/en/", status_code=307)

    async def not_found(request: Request, exc: Exception) -> Response:
        path = request.url.path
        lang: Lang = "en" if path == "/en" or path.startswith("/en/") else "nl"
        return render(request, lang, "not-found", None, status_code=404)

    routes: list[BaseRoute] = []
    for page in PAGES:
        for lang in LANGS:
            routes.append(Route(page.path(lang), page_endpoint(page, lang), methods=["GET"]))
    routes.append(Route("/en", en_redirect, methods=["GET"]))
    routes.append(Mount("/static", StaticFiles(directory=HERE / "static"), name="static"))

    return Starlette(routes=routes, exception_handlers={404: not_found})
