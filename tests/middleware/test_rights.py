"""Self-service access and erasure: a visitor's copy of their data, and forgetting it everywhere, checked."""

import csv
import io
import json
import re
import uuid
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient
from support import consent, demo_config, ledger, runtime_of, set_cookie_names

from koekje.analytics import PageView
from koekje.analytics.ledger import verify

MakeClient = Callable[..., TestClient]
BROWSER = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
JSON = {"content-type": "application/json", "sec-fetch-site": "same-origin"}


def visitor_with_pages(make_client: MakeClient, *paths: str) -> tuple[TestClient, uuid.UUID]:
    client = make_client()
    consent(client, "analytics", "personalization")
    for path in paths:
        client.get(path, headers={"user-agent": BROWSER})
    data = client.get("/_koekje/my-data").json()
    return client, uuid.UUID(data["visitor_id"])


def held_by(client: TestClient, visitor_id: uuid.UUID) -> dict[str, int]:
    runtime = runtime_of(client)
    assert runtime.flush(timeout=30)
    store = runtime.store
    return {
        table: store.query(
            f"SELECT count() FROM {store.table(table)} WHERE visitor_id = {{v:UUID}}", {"v": visitor_id}
        )[0][0]
        for table in ("page_views", "engagement", "consent_ledger")
    }


def test_a_visitor_gets_everything_stored_about_them_and_nothing_else(make_client: MakeClient) -> None:
    other = make_client(client_ip="198.51.100.9")
    consent(other, "analytics")
    other.get("/someone-else", headers={"user-agent": BROWSER})

    client, visitor_id = visitor_with_pages(make_client, "/a", "/b?utm_source=news")
    runtime_of(client).flush(timeout=30)
    data = client.get("/_koekje/my-data").json()
    assert data["stored"] is True and data["cookie"]["categories"] == [
        "necessary",
        "analytics",
        "personalization",
    ]
    assert sorted(row["path"] for row in data["page_views"]) == ["/a", "/b"]
    assert {row["visitor_id"] for row in data["page_views"]} == {str(visitor_id)}
    assert [uuid.UUID(row["consent_id"]) for row in data["consent_ledger"]] == [
        uuid.UUID(data["cookie"]["id"])
    ]
    assert "/someone-else" not in str(data)
    # Times in UTC, and saying so (found by a helper: they named no zone).
    assert all(datetime.fromisoformat(row["ts"]).utcoffset() == timedelta(0) for row in data["page_views"])


def test_without_a_cookie_nothing_is_stored_about_you(make_client: MakeClient) -> None:
    visitor_with_pages(make_client, "/a")  # someone with data: none of it is a stranger's
    stranger = make_client(client_ip="198.51.100.7")
    answer = stranger.get("/_koekje/my-data").json()
    assert answer["stored"] is False and "nothing stored" in answer["message"]
    stranger.cookies.set("koekje_consent", "forged.value.x")
    forged = stranger.get("/_koekje/my-data").json()
    assert forged["stored"] is False


def test_a_copy_as_csv_files(make_client: MakeClient) -> None:
    client, _ = visitor_with_pages(make_client, "/a", "/=cmd")
    runtime_of(client).flush(timeout=30)
    response = client.get("/_koekje/my-data?format=csv")
    assert response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == ["consent_ledger.csv", "engagement.csv", "page_views.csv"]
    rows = list(csv.DictReader(io.StringIO(archive.read("page_views.csv").decode())))
    assert sorted(row["path"] for row in rows) == ["/=cmd", "/a"]


def test_forget_erases_everywhere_checked_and_the_proof_stays(make_client: MakeClient) -> None:
    client, visitor_id = visitor_with_pages(make_client, "/a", "/b", "/c")
    assert held_by(client, visitor_id) == {"page_views": 3, "engagement": 0, "consent_ledger": 1}

    response = client.post("/_koekje/forget", json={}, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["erased"] == {"page_views": 3, "engagement": 0, "consent_ledger": 1}
    assert "koekje_consent" in set_cookie_names(response) and "Max-Age=0" in response.headers["set-cookie"]
    assert held_by(client, visitor_id) == {"page_views": 0, "engagement": 0, "consent_ledger": 0}

    rows = ledger(client)
    assert [row["method"] for row in rows][-1] == "erasure" and len(rows) == 2
    assert all(row["visitor_id"] is None for row in rows)  # pseudonymous, and still a proof:
    runtime = runtime_of(client)
    retention = timedelta(days=runtime.config.analytics.ledger_retention_days)
    result = verify(runtime.store, runtime.config.site.id, datetime.now(UTC), retention, [])
    assert result.ok, result.breaks

    client.cookies.clear()
    assert client.post("/_koekje/forget", json={}, headers=JSON).json()["erased"] == {}  # idempotent

    # Found by a helper: ClickHouse keeps the text of finished mutations on disk, and they named the id.
    data = Path(runtime.store.settings.dsn.removeprefix("chdb://"))
    named = [p for p in data.rglob("*.txt") if str(visitor_id) in p.read_text(errors="replace")]
    assert named == [] and list(data.rglob("mutation_*.txt"))  # (mutations there, without the id)


def test_events_that_arrive_after_the_erasure_are_erased_too(make_client: MakeClient) -> None:
    client, visitor_id = visitor_with_pages(make_client, "/a")
    assert client.post("/_koekje/forget", json={}, headers=JSON).status_code == 200
    runtime = runtime_of(client)
    # Another worker's write buffer still held one of the visitor's page views: it reaches the spool now.
    late = PageView(
        datetime.now(UTC), "default", visitor_id, "/late", (), "", "", "203.0.113.0", user_agent=BROWSER
    )
    runtime.recorder.submit(late)
    assert held_by(client, visitor_id)["page_views"] == 0
    assert [note for note, _ in runtime.subjects.notes()] == [visitor_id]  # kept until nothing older can come


def test_forget_is_refused_cross_site(make_client: MakeClient) -> None:
    client, visitor_id = visitor_with_pages(make_client, "/a")
    for headers in (
        {"content-type": "application/json", "sec-fetch-site": "cross-site"},
        {"content-type": "application/x-www-form-urlencoded", "origin": "https://evil.test"},
        {"content-type": "text/plain"},  # a simple request another site can send
    ):
        assert client.post("/_koekje/forget", content=b"{}", headers=headers).status_code == 403
    assert held_by(client, visitor_id)["page_views"] == 1


FORM = {"content-type": "application/x-www-form-urlencoded", "sec-fetch-site": "same-origin"}


def test_the_your_data_page_works_without_javascript(make_client: MakeClient) -> None:
    client, visitor_id = visitor_with_pages(make_client, "/a")
    page = client.get("/_koekje/your-data?lang=en&return=/a").text
    cookie = client.get("/_koekje/my-data").json()["cookie"]
    digits = uuid.UUID(cookie["id"]).hex[:12].upper()
    assert f"{digits[:4]}-{digits[4:8]}-{digits[8:]}" in page  # the reference to quote in a letter
    assert 'href="/_koekje/my-data?format=csv"' in page and 'action="/_koekje/forget"' in page
    assert 'value="personalization">Object to personalisation' in page  # granted: may be objected to
    assert 'value="marketing"' not in page  # not granted: nothing to object to

    response = client.post("/_koekje/forget", content=b"lang=nl", headers=FORM)
    assert response.status_code == 200
    assert re.search(r"uw gegevens zijn gewist\. Gewiste regels: \d+\.", response.text), response.text[-600:]
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert held_by(client, visitor_id)["page_views"] == 0

    client.cookies.clear()
    assert "nothing stored about you" in client.get("/_koekje/your-data?lang=en").text


def test_an_objection_withdraws_and_the_app_sees_it(make_client: MakeClient) -> None:
    client = make_client()
    consent(client, "analytics", "personalization", "marketing")
    response = client.post("/_koekje/object", content=b"to=marketing&lang=en", headers=FORM)
    assert response.status_code == 200 and "Your objection is recorded" in response.text
    rows = ledger(client)
    assert rows[-1]["method"] == "objection"
    assert rows[-1]["categories"] == ["analytics", "necessary", "personalization"]
    visitor = client.get("/_koekje/my-data").json()["cookie"]
    assert visitor["method"] == "objection" and "marketing" not in visitor["categories"]

    answer = client.post("/_koekje/object", json={"to": ["personalization"]}, headers=JSON)
    assert answer.json()["consent"]["categories"] == ["necessary", "analytics"]
    assert client.post("/_koekje/object", json={"to": ["analytics"]}, headers=JSON).status_code == 400
    assert (
        client.post(
            "/_koekje/object", content=b"to=marketing", headers={**FORM, "sec-fetch-site": "cross-site"}
        ).status_code
        == 403
    )


def test_an_objection_is_visible_to_the_app() -> None:
    from koekje.analytics.ledger import Method
    from koekje.middleware import Config
    from koekje.middleware.consent import Consent
    from koekje.middleware.geo import GeoLookup
    from koekje.middleware.ip import Proxies, Truncator
    from koekje.middleware.visitor import Locator, Visitor

    config = Config()
    locator = Locator(
        Proxies(config.site.trusted_proxies, config.site.proxy_header),
        Truncator(config.geo.ipv4_prefix, config.geo.ipv6_prefix),
        GeoLookup(None),
        config.consent.region_rules(),
    )

    objection = Consent(
        frozenset({"necessary", "analytics"}),
        frozenset(),
        1,
        uuid.uuid4(),
        datetime.now(UTC),
        Method.OBJECTION,
    )
    visitor = Visitor(objection, gpc=False, scope={}, locator=locator)
    assert visitor.objected("marketing") and not visitor.objected("analytics")
    later = Visitor(
        Consent(frozenset({"necessary"}), frozenset(), 1, uuid.uuid4(), datetime.now(UTC), Method.BANNER),
        gpc=False,
        scope={},
        locator=locator,
    )
    assert not later.objected("marketing")  # a refusal is no objection


def test_the_cookie_declaration_lists_declared_and_undeclared_cookies(
    make_client: MakeClient, make_config: Callable[..., Any]
) -> None:
    client = make_client(demo_config(make_config()))
    client.get("/cookies?set=cart%3D1")  # the site sets a cookie it never declared (report mode)
    client.get("/cookies?set=tw_interest%3D1")  # and one it did (refused: no consent, but declared)
    runtime_of(client).flush(timeout=30)
    page = client.get("/_koekje/cookies?lang=en").text
    assert "<h1" in page and "Cookies on this site" in page
    name = '<td data-label="Name">'  # (each cell labelled: a list on a narrow screen)
    assert f"{name}koekje_consent</td>" in page and f"{name}koekje_visit</td>" in page  # koekje's own
    assert f'{name}tw_interest</td><td data-label="Provider">Tandwerk Support</td>' in page  # the site's
    assert "YouTube" in page  # services, with their purpose
    undeclared = page.split("Seen on this site, not declared")[-1]
    assert f"{name}cart</td>" in undeclared and "tw_interest" not in undeclared
    dutch = client.get("/_koekje/cookies?lang=nl").text
    assert "Cookies op deze site" in dutch and "90 dagen" in dutch


def test_every_visitor_id_of_the_visitor_is_exported_and_erased(make_client: MakeClient) -> None:
    """Found by trying: statistics withdrawn and granted again make a new visitor id; forget erased only the
    current one, and after a withdrawal none at all."""
    client = make_client()
    consent(client, "analytics")
    client.get("/first", headers={"user-agent": BROWSER})
    first = uuid.UUID(client.get("/_koekje/my-data").json()["visitor_id"])
    consent(client)  # withdrawn: no visitor id in the cookie any more
    consent(client, "analytics")  # granted again: a new one
    client.get("/second", headers={"user-agent": BROWSER})
    second = uuid.UUID(client.get("/_koekje/my-data").json()["visitor_id"])
    assert first != second
    runtime_of(client).flush(timeout=30)
    assert sorted(row["path"] for row in client.get("/_koekje/my-data").json()["page_views"]) == [
        "/first",
        "/second",
    ]
    assert client.post("/_koekje/forget", json={}, headers=JSON).json()["erased"]["page_views"] == 2
    assert (
        held_by(client, first)
        == held_by(client, second)
        == {"page_views": 0, "engagement": 0, "consent_ledger": 0}
    )


def test_a_reference_from_an_earlier_decision_reaches_the_later_ones(make_client: MakeClient) -> None:
    """Found when tried as a privacy officer would: a visitor wrote quoting the reference of their
    withdrawal, then granted statistics again (a new visitor id) before the request was handled; the
    erasure by that reference left the new id's page views and was logged as done."""
    client = make_client()
    consent(client, "analytics")
    client.get("/first", headers={"user-agent": BROWSER})
    consent(client)  # withdrawn: the decision whose reference the letter quotes
    consent(client, "analytics")  # granted again: a new visitor id
    client.get("/second", headers={"user-agent": BROWSER})
    decisions = ledger(client)
    assert len(decisions) == 3 and decisions[1]["visitor_id"] is None
    first, later = decisions[0]["visitor_id"], decisions[2]["visitor_id"]
    assert first is not None and later is not None and first != later
    subjects = runtime_of(client).subjects
    assert subjects.visitor_ids(None, decisions[1]["consent_id"]) == {first, later}
    assert subjects.visitor_ids(first, decisions[0]["consent_id"]) == {first, later}
    exported = subjects.export(None, decisions[1]["consent_id"])
    assert sorted(row["path"] for row in exported["page_views"]) == ["/first", "/second"]
    assert len(exported["consent_ledger"]) == 3


def test_rows_the_loader_erased_first_are_still_counted_in_the_answer(make_client: MakeClient) -> None:
    """Found by a chaos test: with several workers the owner's loader may erase the rows once the note is
    written, before the erasure counts them; the answer said no page views had been held."""
    client, visitor_id = visitor_with_pages(make_client, "/a", "/b")
    runtime = runtime_of(client)
    assert runtime.flush(timeout=30)

    def flush_as_the_loader_erases() -> bool:
        runtime.subjects.after_load(None)  # the owner's loader, right after the note
        return True

    assert held_by(client, visitor_id)["page_views"] == 2
    counted = runtime.subjects.erase({visitor_id}, flush_as_the_loader_erases)
    assert counted["page_views"] == 2
    assert held_by(client, visitor_id)["page_views"] == 0


def test_a_decision_that_waited_in_the_spool_during_an_erasure_is_erased_when_it_is_loaded(
    make_client: MakeClient,
) -> None:
    """Found by a test that failed once its loader loaded a second later: the officer's erasure (which
    cannot flush the site's spool) ran while the visitor's decision still waited there; loaded afterwards,
    the ledger kept their visitor id. Only page views loaded in the same pass erased late rows."""
    client = make_client()
    runtime = runtime_of(client)
    runtime.loader.stop()  # nothing loads but an explicit flush
    consent(client, "analytics")
    visitor_id = uuid.UUID(client.get("/_koekje/my-data").json()["visitor_id"])
    assert runtime.spool.pending("consent_ledger")  # the decision waits, durable, in the spool
    runtime.subjects.erase({visitor_id}, lambda: True)  # what the officer's command does
    assert held_by(client, visitor_id) == {"page_views": 0, "engagement": 0, "consent_ledger": 0}
    [(proofs,)] = runtime.store.query(f"SELECT count() FROM {runtime.store.table('consent_ledger')}")
    assert proofs == 1  # the proof stays, pseudonymised


def test_an_old_cookie_of_an_erased_visitor_records_nothing(make_client: MakeClient) -> None:
    """Found by trying: after `koekje subject erase` (no new decision, no new cookie) the browser kept
    browsing, and once the erasure note had served its ten minutes its page views were stored again."""
    client, visitor_id = visitor_with_pages(make_client, "/a")
    runtime = runtime_of(client)
    runtime.subjects.erase({visitor_id}, lambda: True)  # what the officer's command does
    client.get("/b", headers={"user-agent": BROWSER})
    assert runtime.capture.dropped["erased"] == 1
    # The banner's engagement beacon from that page too (found by a chaos test: it was stored, for good).
    beacon = {"t": "engagement", "path": "/b", "visible_ms": 5000, "scroll": 50}
    answer = client.post(
        "/_koekje/collect", json=[beacon], headers={"sec-fetch-site": "same-origin", "user-agent": BROWSER}
    )
    assert answer.status_code < 300
    assert runtime.collect.dropped["erased"] == 1
    assert held_by(client, visitor_id) == {"page_views": 0, "engagement": 0, "consent_ledger": 0}
    other = make_client(client_ip="198.51.100.3")  # another worker learns it from the notes
    other.app.runtime.subjects.refresh(every=0)  # type: ignore[attr-defined]
    assert visitor_id in other.app.runtime.subjects.erased  # type: ignore[attr-defined]


def test_a_malformed_objection_is_a_400(make_client: MakeClient) -> None:
    client = make_client()
    consent(client, "marketing")
    bodies: list[dict[str, Any]] = [{"to": [["x"]]}, {"to": [1, None]}, {"to": "marketing"}, {"to": []}]
    for body in bodies:
        assert client.post("/_koekje/object", json=body, headers=JSON).status_code == 400
    stranger = make_client(client_ip="198.51.100.4")
    answer = stranger.post("/_koekje/object", json={"to": ["marketing"]}, headers=JSON)
    assert answer.status_code == 200 and answer.json()["consent"] is None  # nothing to object to
    assert len(ledger(client)) == 1  # no decision recorded for the stranger


def test_a_long_history_streams_month_by_month(make_client: MakeClient) -> None:
    from koekje.analytics import PageViewSink

    client, visitor_id = visitor_with_pages(make_client, "/a")
    runtime = runtime_of(client)
    months = [datetime(2026, month, 3, tzinfo=UTC) for month in range(1, 11)]
    PageViewSink(runtime.store).write(
        [
            PageView(ts, "default", visitor_id, f"/old/{ts.month}/{i}", (), "", "NL", "203.0.113.0")
            for ts in months
            for i in range(50)
        ]
    )
    runtime.flush(timeout=30)
    with client.stream("GET", "/_koekje/my-data") as response:
        chunks = list(response.iter_bytes())
    data = json.loads(b"".join(chunks))
    assert len(data["page_views"]) == 501 and len(data["consent_ledger"]) == 1 and data["stored"] is True
    assert len(chunks) > 500  # row by row, never the whole history at once
