"""A FastAPI site with koekje: each route says which topics its page is about, and a template shows the
visitor's interests (with personalization consent; without it, nothing).

    cd examples/fastapi_site
    export KOEKJE_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    uvicorn fastapi_app:app --log-config ../uvicorn-logging.json
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from koekje.middleware import Config, KoekjeMiddleware

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

ARTICLES = {
    "implants": ("Implants", "What an implant is, and who places them."),
    "implants/aftercare": ("Aftercare", "The weeks after an implant."),
    "hygiene": ("Oral hygiene", "Brushing, flossing and the hygienist."),
    "courses": ("Courses", "Courses for dental teams."),
}


def topics(*names: str) -> Any:
    """A route's topics, as a dependency: koekje stores them with the page view (with statistics consent)."""

    def label(request: Request) -> None:
        request.state.koekje_topics = list(names)

    return Depends(label)


def page(request: Request, path: str) -> HTMLResponse:
    title, text = ARTICLES[path]
    visitor = request.scope["koekje"]
    context = {"title": title, "text": text, "interests": visitor.interests(), "articles": ARTICLES}
    return templates.TemplateResponse(request, "page.html", context)


def create_app(config: Config | str | Path = HERE / "koekje.toml") -> FastAPI:
    app = FastAPI(title="koekje with FastAPI")

    def route(path: str, *labels: str) -> Callable[[Request], HTMLResponse]:
        def show(request: Request) -> HTMLResponse:
            return page(request, path)

        app.get(f"/{path}", response_class=HTMLResponse, dependencies=[topics(*labels)])(show)
        return show

    route("implants", "implants")
    route("implants/aftercare", "implants", "aftercare")
    route("hygiene", "hygiene")
    route("courses", "courses", "implants")

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> HTMLResponse:
        visitor = request.scope["koekje"]
        context = {"title": "Home", "text": "", "interests": visitor.interests(), "articles": ARTICLES}
        return templates.TemplateResponse(request, "page.html", context)

    @app.get("/api/ping")  # JSON: koekje leaves it alone (no banner, nothing recorded)
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    # The configuration is read when the app first runs, not on import.
    app.add_middleware(KoekjeMiddleware, config=config)
    return app


app = create_app()
