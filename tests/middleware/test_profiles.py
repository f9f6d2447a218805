"""Personalization: ``interests()`` and ``seen(path)`` from this process's memory, only with personalization
consent, forgotten with it, bounded, and never a query."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from support import consent, cookie_from, runtime_of

from koekje.analytics.ledger import Method
from koekje.analytics.subjects import Subjects
from koekje.middleware.consent import Consent
from koekje.middleware.profiles import MAX_PAGES, MAX_TOPICS, Profiles

MakeClient = Callable[..., TestClient]
GPC = {"sec-gpc": "1"}


async def _page(request: Request) -> Response:
    return HTMLResponse("<!doctype html><html><head><title>p</title></head><body>p</body></html>")


async def _profile(request: Request) -> Response:
    visitor = request.scope["koekje"]
    return JSONResponse(
        {
            "interests": visitor.interests(),
            "seen": {path: visitor.seen(path) for path in request.query_params.getlist("path")},
        }
    )


def app() -> Starlette:
    return Starlette(routes=[Route("/profile", _profile), Route("/{path:path}", _page)])


def profile(client: TestClient, *paths: str) -> dict[str, object]:
    return client.get("/profile", params={"path": list(paths)}).json()  # type: ignore[no-any-return]


def browse(client: TestClient) -> None:
    for path in ("/implantologie/a", "/implantologie/b", "/cursussen/x", "/implantologie/c", "/over-ons"):
        client.get(path)


def test_nothing_without_personalization_consent(make_client: MakeClient) -> None:
    client = make_client(app=app())
    browse(client)
    assert profile(client, "/implantologie/a") == {"interests": [], "seen": {"/implantologie/a": False}}
    consent(client, "analytics", "marketing")
    browse(client)
    assert profile(client, "/implantologie/a") == {"interests": [], "seen": {"/implantologie/a": False}}
    assert len(runtime_of(client).engine.profiles) == 0  # not even kept in memory


def test_top_topics_and_pages_seen_with_personalization_alone(make_client: MakeClient) -> None:
    client = make_client(app=app())
    consent(client, "personalization")  # no statistics: no visitor id, no page view stored
    browse(client)
    client.get("/personeel/z", headers={"sec-purpose": "prefetch"})  # not seen: only prefetched
    assert profile(client, "/implantologie/a", "/cursussen/y", "/personeel/z") == {
        "interests": ["implantologie", "cursussen"],
        "seen": {"/implantologie/a": True, "/cursussen/y": False, "/personeel/z": False},
    }


def test_the_profile_follows_new_decisions_and_goes_with_withdrawal(make_client: MakeClient) -> None:
    client = make_client(app=app())
    consent(client, "personalization")
    browse(client)
    consent(client, "personalization", "marketing")  # a new decision (a new id): the profile follows
    assert profile(client, "/over-ons")["seen"] == {"/over-ons": True}
    consent(client, "analytics")  # personalization withdrawn: forgotten at once, not just hidden
    assert len(runtime_of(client).engine.profiles) == 0
    consent(client, "analytics", "personalization")
    assert profile(client, "/over-ons") == {"interests": [], "seen": {"/over-ons": False}}


def test_a_gpc_signal_forgets_the_profile(make_client: MakeClient) -> None:
    client = make_client(app=app())
    consent(client, "analytics", "personalization")
    browse(client)
    assert profile(client)["interests"] == ["implantologie", "cursussen"]
    client.get("/", headers=GPC)  # GPC refuses personalization: an implied narrowing, recorded
    assert profile(client)["interests"] == [] and len(runtime_of(client).engine.profiles) == 0


def test_answered_from_memory_while_the_store_is_down(make_client: MakeClient) -> None:
    client = make_client(app=app())
    consent(client, "analytics", "personalization")
    runtime_of(client).store.close()  # any query would fail now
    browse(client)
    assert profile(client)["interests"] == ["implantologie", "cursussen"]


def _consent(visitor: int) -> Consent:
    categories = frozenset({"necessary", "personalization"})
    now = datetime(2026, 11, 22, tzinfo=UTC)
    return Consent(categories, frozenset(), 1, uuid.UUID(int=visitor), now, Method.BANNER)


def test_memory_is_bounded() -> None:
    profiles = Profiles(capacity=2)
    first, second, third = _consent(1), _consent(2), _consent(3)
    profiles.feed(first, "/a", ("a",))
    profiles.feed(second, "/b", ("b",))
    profiles.feed(first, "/a2", ())  # the first is active again: the second is the oldest now
    profiles.feed(third, "/c", ("c",))
    assert len(profiles) == 2 and profiles.interests(second, 3) == [] and profiles.seen(first, "/a")
    for page in range(MAX_PAGES + 10):
        profiles.feed(third, f"/p/{page}", (f"t{page}",))
    assert not profiles.seen(third, "/p/0") and profiles.seen(third, f"/p/{MAX_PAGES + 9}")
    assert len(profiles.interests(third, 100)) == MAX_TOPICS


def test_a_profile_fed_late_or_by_another_worker_does_not_come_back(make_client: MakeClient) -> None:
    """Found by trying: keyed by the visitor id, a profile fed after the withdrawal (a page still being
    served, another worker's memory) was there again when personalization was granted again."""
    client = make_client(app=app())
    given = consent(client, "analytics", "personalization")
    old = runtime_of(client).engine.codec.loads(cookie_from(given, "koekje_consent"))
    browse(client)
    consent(client, "analytics")  # withdrawn (statistics, and so the visitor id, stay)
    runtime_of(client).engine.profiles.feed(old, "/implantologie/late", ("implantologie",))
    consent(client, "analytics", "personalization")
    assert profile(client, "/implantologie/late") == {"interests": [], "seen": {"/implantologie/late": False}}


def test_an_erasure_by_the_privacy_officer_forgets_the_profile(make_client: MakeClient) -> None:
    """Found by a helper: `koekje subject erase` makes no new decision, so the profile built from the
    erased page views went on being served (and fed) under the visitor's unchanged cookie."""
    client = make_client(app=app())
    given = consent(client, "analytics", "personalization")
    runtime = runtime_of(client)
    decision = runtime.engine.codec.loads(cookie_from(given, "koekje_consent"))
    assert decision is not None and decision.visitor_id is not None
    browse(client)
    assert profile(client)["interests"] == ["implantologie", "cursussen"]
    # The command line's erasure, from another process: its note reaches this one through the spool.
    officer = Subjects(runtime.store, runtime.spool.root)
    officer.erase({decision.visitor_id}, lambda: True)
    runtime.subjects.refresh(every=0)
    assert profile(client, "/implantologie/a") == {"interests": [], "seen": {"/implantologie/a": False}}
    assert len(runtime.engine.profiles) == 0
    browse(client)  # the old cookie's later pages do not build it again
    assert profile(client)["interests"] == []
