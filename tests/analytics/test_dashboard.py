"""The dashboard, mounted by the middleware, on a real store."""

import csv
import io
import re
import string
import threading
import uuid
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from jinja2 import Environment, PackageLoader
from starlette.testclient import TestClient
from support import FakeClock, consent, html_table, page_views, runtime_of

from koekje.analytics import PageView, PageViewSink, Role, views
from koekje.analytics.aggregates import draw_salts
from koekje.analytics.charts import _nice_top, buckets, long_date, per
from koekje.analytics.dashboard import SESSION_COOKIE
from koekje.analytics.reports import Column, Series, Table
from koekje.middleware import Config
from koekje.middleware.config import DashboardSection

MakeClient = Callable[..., TestClient]
DASH = "/_koekje/dashboard"
ALPHABET = string.ascii_letters + string.digits + "-_"  # base64 for URLs
PASSWORD = "marketing password 1"


@pytest.fixture
def client(make_client: MakeClient, make_config: Callable[..., Config]) -> TestClient:
    client = make_client(make_config(dashboard=DashboardSection(min_visitors=3)))
    runtime_of(client).accounts.add("sanne", PASSWORD, Role.MARKETER)
    return client


def login(client: TestClient, password: str = PASSWORD) -> int:
    return client.post(
        f"{DASH}/login", data={"username": "sanne", "password": password}, follow_redirects=False
    ).status_code


def add_views(client: TestClient, clock: FakeClock, topic: str, visitors: int, views_each: int = 1) -> None:
    events = [
        PageView(
            clock.now - timedelta(days=1),  # yesterday: today is left out until it is over
            "default",
            visitor,
            f"/{topic}",
            (topic,) if topic else (),
            "",
            "NL",
            "192.0.2.0",
        )
        for visitor in (uuid.uuid4() for _ in range(visitors))
        for _ in range(views_each)
    ]
    store = runtime_of(client).store
    draw_salts(store, {event.ts.date() for event in events}, clock)  # as the loader does before it loads
    PageViewSink(store).write(events)


def rows(html: str, table: str = "topics") -> dict[str, tuple[int, int]]:
    """Page views and visitors (per day) per topic, as the table shows them."""
    found = html_table(html, table)[1:]
    return {row[0]: (_int(row[1]), _int(row[2])) for row in found if len(row) > 2}


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def test_anonymous_users_are_sent_to_login(client: TestClient) -> None:
    response = client.get(f"{DASH}/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"{DASH}/login"
    login_page = client.get(f"{DASH}/login")
    assert "Log in" in login_page.text
    assert "frame-ancestors 'none'" in login_page.headers["content-security-policy"]


def test_wrong_password(client: TestClient) -> None:
    assert login(client, "not the password") == 401
    assert SESSION_COOKIE not in client.cookies


def test_login_sets_a_strict_session_cookie(client: TestClient) -> None:
    response = client.post(
        f"{DASH}/login", data={"username": "sanne", "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and f"Path={DASH}/" in cookie


def test_cross_site_login_is_refused(client: TestClient) -> None:
    response = client.post(
        f"{DASH}/login",
        data={"username": "sanne", "password": PASSWORD},
        headers={"origin": "https://evil.test"},
    )
    assert response.status_code == 403


def test_topics_with_page_views_and_visitors(client: TestClient, clock: FakeClock) -> None:
    add_views(client, clock, "implantologie", visitors=4, views_each=3)
    add_views(client, clock, "mondhygiene", visitors=3)
    assert login(client) == 303
    page = client.get(f"{DASH}/")
    assert page.status_code == 200
    assert rows(page.text) == {"implantologie": (12, 4), "mondhygiene": (3, 3)}


def test_invariant_6_small_segments_are_suppressed(client: TestClient, clock: FakeClock) -> None:
    add_views(client, clock, "implantologie", visitors=3)
    add_views(client, clock, "personeel", visitors=2, views_each=10)  # many views, too few people
    add_views(client, clock, "cursussen", visitors=1)
    login(client)
    page = client.get(f"{DASH}/").text
    assert rows(page) == {"implantologie": (3, 3)}
    assert "personeel" not in page and "cursussen" not in page


def test_date_range(client: TestClient, clock: FakeClock) -> None:
    add_views(client, clock, "implantologie", visitors=3)
    login(client)
    today = clock.now.date()
    yesterday = today - timedelta(days=1)
    assert rows(client.get(f"{DASH}/?from={yesterday}&to={yesterday}").text) == {"implantologie": (3, 3)}
    before = yesterday - timedelta(days=1)
    assert rows(client.get(f"{DASH}/?from={before}&to={before}").text) == {}
    assert rows(client.get(f"{DASH}/?from={yesterday}&to={today}").text) == {"implantologie": (3, 3)}
    # Today is not over: a range of today alone is refused, its numbers would change under one's eyes.
    response = client.get(f"{DASH}/?from={today}&to={today}")
    assert response.status_code == 400 and "today is not over" in response.text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2026-11-30&to=2026-11-01", "start date is after the end date"),
        ("from=2020-01-01&to=2026-01-01", "at most 400 days"),
        ("from=<script>alert(1)</script>", "is not a date"),
        ("to=9999-12-31", "from 2000 to 2999"),
        ("to=0001-01-05", "from 2000 to 2999"),
    ],
)
def test_bad_ranges_are_explained_and_escaped(client: TestClient, query: str, message: str) -> None:
    login(client)
    response = client.get(f"{DASH}/?{query}")
    assert response.status_code == 400
    assert message in response.text
    assert "<script>" not in response.text


def test_tampered_session_is_no_session(client: TestClient) -> None:
    login(client)
    tampered = client.cookies[SESSION_COOKIE][:-3] + "xyz"
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, tampered)
    assert client.get(f"{DASH}/", follow_redirects=False).status_code == 303


def test_session_expires(client: TestClient, clock: FakeClock) -> None:
    login(client)
    clock.advance(hours=13)
    assert client.get(f"{DASH}/", follow_redirects=False).status_code == 303


def test_removing_an_account_ends_its_session(client: TestClient, clock: FakeClock) -> None:
    login(client)
    assert client.get(f"{DASH}/", follow_redirects=False).status_code == 200
    clock.advance(seconds=1)
    runtime_of(client).accounts.remove("sanne")
    assert client.get(f"{DASH}/", follow_redirects=False).status_code == 303


def test_a_new_password_ends_the_old_sessions(client: TestClient, clock: FakeClock) -> None:
    login(client)
    assert client.get(f"{DASH}/", follow_redirects=False).status_code == 200
    clock.advance(seconds=1)
    runtime_of(client).accounts.add("sanne", "a brand new password", Role.MARKETER)
    assert client.get(f"{DASH}/", follow_redirects=False).status_code == 303


def test_logout(client: TestClient) -> None:
    login(client)
    token = client.cookies[SESSION_COOKIE]
    response = client.post(f"{DASH}/logout", follow_redirects=False)
    assert response.status_code == 303
    assert client.get(f"{DASH}/", follow_redirects=False).status_code == 303
    # Found when tried as an attacker would: a copy of the token stayed valid for 12 hours after logout.
    client.cookies.set(SESSION_COOKIE, token, path="/_koekje/dashboard/")
    assert client.get(f"{DASH}/", follow_redirects=False).status_code == 303
    login(client)  # a new session works
    assert client.get(f"{DASH}/", follow_redirects=False).status_code == 200


def test_a_logout_from_another_site_is_refused_not_pretended(client: TestClient) -> None:
    """Found by trying: it answered like a logout (303 to the login page) and the session went on."""
    login(client)
    for headers in ({"origin": "null"}, {"sec-fetch-site": "cross-site"}):
        response = client.post(f"{DASH}/logout", headers=headers, follow_redirects=False)
        assert response.status_code == 403 and "sent from the dashboard" in response.text
    assert client.get(f"{DASH}/", follow_redirects=False).status_code == 200


def test_a_logged_out_session_stays_ended_however_its_token_is_spelled(client: TestClient) -> None:
    """Found when tried as an attacker would: the signature's last base64 letter has unused bits (and
    padding is accepted), so a logged-out token came back with its last letter changed."""
    login(client)
    token = client.cookies[SESSION_COOKIE]
    spellings = [token[:-1] + letter for letter in ALPHABET if letter != token[-1]] + [token + "="]
    working = []
    for spelling in spellings:  # the spellings the signature accepts, while the session lives
        client.cookies.set(SESSION_COOKIE, spelling, path="/_koekje/dashboard/")
        if client.get(f"{DASH}/", follow_redirects=False).status_code == 200:
            working.append(spelling)
    assert working  # (or there is nothing to prove)
    client.cookies.set(SESSION_COOKIE, token, path="/_koekje/dashboard/")
    assert client.post(f"{DASH}/logout", follow_redirects=False).status_code == 303
    for spelling in [token, *working]:
        client.cookies.set(SESSION_COOKIE, spelling, path="/_koekje/dashboard/")
        assert client.get(f"{DASH}/", follow_redirects=False).status_code == 303, spelling


def test_enabling_a_disabled_account_does_not_bring_its_sessions_back(client: TestClient) -> None:
    """Disabling is what an admin does about a stolen session: enabling the account again gives it its
    password back, not its sessions."""
    login(client)
    accounts = runtime_of(client).accounts
    assert client.get(f"{DASH}/", follow_redirects=False).status_code == 200
    accounts.set_disabled("sanne", True)
    assert client.get(f"{DASH}/", follow_redirects=False).status_code == 303
    accounts.set_disabled("sanne", False)
    assert client.get(f"{DASH}/", follow_redirects=False).status_code == 303
    assert login(client) == 303  # the password it had
    assert client.get(f"{DASH}/", follow_redirects=False).status_code == 200


def test_dashboard_can_be_disabled(make_client: MakeClient, make_config: Callable[..., Config]) -> None:
    client = make_client(make_config(dashboard=DashboardSection(enabled=False)))
    assert client.get(f"{DASH}/login").status_code == 404


def test_invented_visitor_ids_cannot_lift_a_suppressed_topic(client: TestClient, clock: FakeClock) -> None:
    """Found by trying: five made-up koekje_vid cookies beside one consent used to count as five visitors.
    The visitor id now comes from the signed consent, so one visitor stays one visitor."""
    add_views(client, clock, "implantologie", visitors=1)  # with this visitor: 2, below min_visitors=3
    consent(client, "analytics")
    for i in range(5):
        client.cookies.set("koekje_vid", f"{i}" * 22, domain="shop.test")
        client.get("/implantologie")
    mine = [v for v in page_views(client) if v["ts"] == clock.now.replace(tzinfo=None)]
    assert len(mine) == 5 and len({v["visitor_id"] for v in mine}) == 1
    assert login(client) == 303
    html = client.get(f"{DASH}/").text
    assert "implantologie" not in rows(html)  # six "visitors" would have shown it


def test_a_store_that_does_not_answer_gets_a_503_page_and_the_site_goes_on(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    """Found by trying: a hung store used to hold every dashboard request (and the site's threads)."""
    # (3 s: long enough for a whole view on a busy machine once the store answers again, with the view
    # abandoned while it hung finishing first.)
    client = make_client(make_config(dashboard=DashboardSection(min_visitors=1, store_timeout_seconds=3)))
    runtime_of(client).accounts.add("sanne", PASSWORD, Role.MARKETER)
    assert login(client) == 303
    store = runtime_of(client).store
    release = threading.Event()
    held = threading.Event()

    def hang() -> None:  # a query that does not come back, holding the store
        with store._locked():
            held.set()
            release.wait(30)

    threading.Thread(target=hang, daemon=True).start()
    assert held.wait(10)
    try:
        page = client.get(f"{DASH}/")
        assert page.status_code == 503 and page.headers["retry-after"] == "30"
        assert "not available just now" in page.text
        assert client.get("/implantologie").status_code == 200  # the site itself is not affected
    finally:
        release.set()
    assert client.get(f"{DASH}/").status_code == 200


def test_the_privacy_page_lists_open_requests_for_admins_only(client: TestClient, clock: FakeClock) -> None:
    from koekje.analytics.requests_log import RequestLog

    log = RequestLog(runtime_of(client).store, clock)
    today = clock.now.date()
    late = log.open("AAAA-BBBB-CCCC", "erasure", today - timedelta(days=40), "anna")
    log.open("1234-5678-9ABC", "access", today - timedelta(days=3), "anna")
    log.close(
        log.open("DDDD-EEEE-FFFF", "access", today - timedelta(days=5), "anna"), "anna", {"action": "export"}
    )
    assert login(client) == 303
    assert client.get(f"{DASH}/privacy").status_code == 403  # a marketer
    runtime_of(client).accounts.add("anna", "admin password 12", Role.ADMIN)
    client.post(f"{DASH}/login", data={"username": "anna", "password": "admin password 12"})
    page = client.get(f"{DASH}/privacy").text
    opened = page.split("Answered")[0]
    assert opened.index("AAAA-BBBB-CCCC") < opened.index("1234-5678-9ABC")  # soonest due first
    assert f"{(today - late.due).days} overdue" in opened and "DDDD-EEEE-FFFF" not in opened
    assert "DDDD-EEEE-FFFF" in page.split("Answered")[1]
    assert 'href="/_koekje/dashboard/privacy"' in client.get(f"{DASH}/").text


def test_password_guesses_are_throttled_per_account_and_per_network(
    client: TestClient, make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    """Found when tried as an attacker would: 40 wrong passwords in a row never slowed anyone."""
    statuses = [login(client, "wrong password") for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    refused = client.post(f"{DASH}/login", data={"username": "sanne", "password": PASSWORD})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1  # no hash was even checked
    assert "Too many attempts" in refused.text

    # Guessing other accounts from the same network: refused once the network's budget is spent.
    other = make_client(make_config(dashboard=DashboardSection(min_visitors=3)), client_ip="198.51.100.20")
    answers = [
        other.post(f"{DASH}/login", data={"username": f"user{i}", "password": "x" * 12}).status_code
        for i in range(21)
    ]
    assert answers.count(401) == 20 and answers[-1] == 429
    # Another network is not affected.
    third = make_client(make_config(dashboard=DashboardSection(min_visitors=3)), client_ip="192.0.2.44")
    runtime_of(third).accounts.add("piet", PASSWORD, Role.MARKETER)
    assert (
        third.post(
            f"{DASH}/login", data={"username": "piet", "password": PASSWORD}, follow_redirects=False
        ).status_code
        == 303
    )


def test_the_ip_allowlist_keeps_other_networks_out(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    config = make_config(dashboard=DashboardSection(allow=("10.1.0.0/16", "2001:db8::/32")))
    allowed = [("10.1.2.3", 200), ("2001:db8::7", 200), ("::ffff:10.1.2.3", 200)]
    for address, status in [*allowed, ("10.2.0.1", 403), ("203.0.113.9", 403), ("::ffff:10.2.0.1", 403)]:
        client = make_client(config, client_ip=address)
        response = client.get(f"{DASH}/login")
        assert response.status_code == status, address
        if status == 403:
            assert "cannot be reached from this network" in response.text
            # Refused before anything else: no login attempt, no stylesheet, no report.
            assert client.post(f"{DASH}/login", data={"username": "sanne"}).status_code == 403
            assert client.get(f"{DASH}/dashboard.css").status_code == 403
    with pytest.raises(ValueError, match=r"dashboard\.allow"):
        make_config(dashboard=DashboardSection(allow=("10.1.0.0/16", "everyone"))).dashboard_settings()


def _value(text: str) -> object:
    """A table cell or CSV field as a value: numbers without separators, percentages as fractions."""
    text = text.replace(",", "")
    if text in ("", "—"):
        return None
    if text.endswith("%"):
        return round(float(text[:-1]) / 100, 2)
    try:
        return round(float(text), 2)
    except ValueError:
        return text


@pytest.mark.parametrize("view", ["", "topics", "pages"])
def test_every_table_exports_as_csv_with_the_rows_it_shows(
    client: TestClient, clock: FakeClock, view: str
) -> None:
    add_views(client, clock, "implantologie", visitors=4, views_each=3)
    add_views(client, clock, "mondhygiene", visitors=3)
    add_views(client, clock, "", visitors=5)  # pages without a topic: "(no topic)" in both
    login(client)
    page = client.get(f"{DASH}/{view}?preset=7d").text
    names = re.findall(r'<table data-table="([a-z-]+)"', page)
    assert len(names) >= 4
    for name in set(names) - {"consent"}:
        shown = html_table(page, name)
        response = client.get(f"{DASH}/{view}", params={"preset": "7d", "format": "csv", "table": name})
        assert response.headers["content-type"].startswith("text/csv")
        assert f"koekje-{name}-" in response.headers["content-disposition"]
        exported = list(csv.reader(io.StringIO(response.text)))
        assert exported[0] == shown[0], name  # the same columns
        if shown[1:] and "Nothing with" in shown[1][0]:
            assert exported[1:] == [], name
        else:
            assert [[_value(c) for c in row] for row in exported[1:]] == [
                [_value(c) for c in row] for row in shown[1:]
            ], name
    assert client.get(f"{DASH}/{view}", params={"format": "csv", "table": "nope"}).status_code == 404


def test_csv_cells_that_a_spreadsheet_would_run_are_defused() -> None:
    table = Table(
        "campaigns", "Campaigns", [Column("campaign", "utm_campaign", numeric=False), Column("n", "n")]
    )
    table.rows = [
        ('=HYPERLINK("http://evil.test")', 5),
        ("+1+1", 6),
        ("@SUM(A1)", 7),
        ("-2", 8),
        ("najaar", 9),
    ]
    rows = list(csv.reader(io.StringIO(views.csv_text(table))))
    assert [row[0] for row in rows[1:]] == [
        '\'=HYPERLINK("http://evil.test")',
        "'+1+1",
        "'@SUM(A1)",
        "'-2",
        "najaar",
    ]
    assert [row[1] for row in rows[1:]] == ["5", "6", "7", "8", "9"]


def test_csv_text_stays_one_cell_in_a_spreadsheet_that_splits_on_semicolons() -> None:
    """Where a comma is the decimal sign (Dutch, German, French) a spreadsheet opens a CSV file splitting on
    ";": a visitor's campaign name "x;=cmd|..." must not become a cell that starts a formula there."""
    table = Table(
        "campaigns", "Campaigns", [Column("campaign", "utm_campaign", numeric=False), Column("n", "n")]
    )
    table.rows = [("x;=cmd|' /C calc'!A0;", 2), ("a,b;-1", 3)]
    text = views.csv_text(table)
    for delimiter in (",", ";"):
        cells = [cell for row in csv.reader(io.StringIO(text), delimiter=delimiter) for cell in row]
        assert not [cell for cell in cells if cell.lstrip('"').startswith(("=", "+", "-", "@"))], delimiter
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1:] == [["x;=cmd|' /C calc'!A0;", "2"], ["a,b;-1", "3"]]  # read back as they were


def test_at_most_two_filters_and_unknown_values_are_harmless(client: TestClient, clock: FakeClock) -> None:
    add_views(client, clock, "implantologie", visitors=4)
    login(client)
    too_many = client.get(f"{DASH}/", params={"topic": "implantologie", "country": "NL", "device": "mobile"})
    assert too_many.status_code == 400 and "at most 2 filters" in too_many.text
    odd = client.get(f"{DASH}/topics", params={"topic": "<img src=x onerror=alert(1)>", "country": "NL"})
    assert odd.status_code == 200 and "<img src=x" not in odd.text and "&lt;img src=x" in odd.text
    nl = client.get(f"{DASH}/", params={"country": "NL"}).text
    assert rows(nl) == {"implantologie": (4, 4)}
    assert rows(client.get(f"{DASH}/", params={"country": "BE"}).text) == {}


def admin(client: TestClient) -> None:
    runtime_of(client).accounts.add("anna", "admin password 12", Role.ADMIN)
    login_as = {"username": "anna", "password": "admin password 12"}
    assert client.post(f"{DASH}/login", data=login_as, follow_redirects=False).status_code == 303


def test_the_privacy_page_shows_retention_undeclared_cookies_and_on_request_the_ledger(
    client: TestClient, clock: FakeClock
) -> None:
    consent(client, "analytics")
    client.get("/cookies?set=theme%3Ddark")  # a cookie koekje.toml does not declare
    assert runtime_of(client).flush(timeout=30)
    admin(client)
    page = client.get(f"{DASH}/privacy").text
    retention = {row[0]: row for row in html_table(page, "retention")[1:]}
    assert retention["page_views"][1] == "730" and retention["consent_ledger"][1] == "1,095"
    assert int(retention["consent_ledger"][2]) >= 1
    assert html_table(page, "undeclared-cookies")[1][0] == "theme"
    assert "Check the ledger's hash chains now" in page and "Intact" not in page
    checked = client.get(f"{DASH}/privacy", params={"verify": "1"}).text
    assert "Intact: 1 row in 1 chain" in checked
    store = runtime_of(client).store
    store.command(
        f"ALTER TABLE {store.table('consent_ledger')} UPDATE lang = 'xx' WHERE 1 SETTINGS mutations_sync = 2"
    )
    broken = client.get(f"{DASH}/privacy", params={"verify": "1"}).text
    assert "Broken: 1 problem" in broken and "does not match its hash" in broken


def test_admins_manage_accounts_from_the_dashboard(client: TestClient) -> None:
    admin(client)
    page = client.get(f"{DASH}/accounts")
    assert page.status_code == 200
    assert [row[:3] for row in html_table(page.text, "accounts")[1:]] == [
        ["anna", "admin", "active"],
        ["sanne", "marketer", "active"],
    ]
    added = client.post(f"{DASH}/accounts", data={"action": "add", "username": "Piet", "role": "marketer"})
    [password] = re.findall(r'<code class="password">([^<]+)</code>', added.text)
    piet = TestClient(client.app, base_url="http://shop.test")
    assert login_client(piet, "piet", password) == 303

    client.post(f"{DASH}/accounts", data={"action": "disable", "username": "piet"})
    assert piet.get(f"{DASH}/", follow_redirects=False).status_code == 303  # the session ended
    assert login_client(piet, "piet", password) == 401
    client.post(f"{DASH}/accounts", data={"action": "enable", "username": "piet"})
    assert login_client(piet, "piet", password) == 303  # the same password again

    client.post(f"{DASH}/accounts", data={"action": "role", "username": "piet", "role": "admin"})
    assert piet.get(f"{DASH}/accounts").status_code == 200
    reset = client.post(f"{DASH}/accounts", data={"action": "reset", "username": "piet"})
    [new_password] = re.findall(r'<code class="password">([^<]+)</code>', reset.text)
    assert piet.get(f"{DASH}/accounts", follow_redirects=False).status_code == 303  # ended by the reset
    assert login_client(piet, "piet", password) == 401 and login_client(piet, "piet", new_password) == 303

    # A new password for a disabled account leaves it disabled; enabled, it has that new password.
    client.post(f"{DASH}/accounts", data={"action": "disable", "username": "piet"})
    locked = client.post(f"{DASH}/accounts", data={"action": "reset", "username": "piet"})
    [locked_password] = re.findall(r'<code class="password">([^<]+)</code>', locked.text)
    accounts = runtime_of(client).accounts  # (piet's logins are used up for this minute)
    assert accounts.authenticate("piet", locked_password) is None
    client.post(f"{DASH}/accounts", data={"action": "enable", "username": "piet"})
    assert accounts.authenticate("piet", locked_password) is not None

    own = client.post(f"{DASH}/accounts", data={"action": "remove", "username": "anna"})
    assert own.status_code == 400 and "your own account" in own.text
    client.post(f"{DASH}/accounts", data={"action": "remove", "username": "piet"})
    assert [row[0] for row in html_table(client.get(f"{DASH}/accounts").text, "accounts")[1:]] == [
        "anna",
        "sanne",
    ]
    # Marketers may not, and nobody may from another site.
    assert login(client) == 303  # sanne
    assert client.get(f"{DASH}/accounts").status_code == 403
    assert client.post(f"{DASH}/accounts", data={"action": "add", "username": "eve"}).status_code == 403
    cross = client.post(
        f"{DASH}/accounts", data={"action": "add", "username": "eve"}, headers={"Origin": "https://evil.test"}
    )
    assert cross.status_code == 403
    assert runtime_of(client).accounts.get("eve") is None


def login_client(client: TestClient, username: str, password: str) -> int:
    response = client.post(
        f"{DASH}/login", data={"username": username, "password": password}, follow_redirects=False
    )
    return response.status_code


def test_an_erased_visitors_day_has_no_reports_from_raw_rows(client: TestClient, clock: FakeClock) -> None:
    """Found on a second try: the statistics keep counting an erased visitor (anonymously), so on their
    day the topics (statistics) minus the pages (raw rows) were what that visitor read."""
    consent(client, "analytics")
    client.get("/implantologie")
    client.get("/implantologie")
    add_views(client, clock, "implantologie", visitors=4)  # yesterday: not the erased visitor's day
    clock.advance(days=1)  # the erased visitor's day is yesterday now
    add_views(client, clock, "implantologie", visitors=4)
    forgotten = client.post("/_koekje/forget", json={}, headers={"Sec-Fetch-Site": "same-origin"})
    assert forgotten.status_code == 200, forgotten.text
    login(client)
    day = (clock.now - timedelta(days=1)).date()
    before = day - timedelta(days=1)
    on_the_day = client.get(f"{DASH}/pages", params={"from": day.isoformat(), "to": day.isoformat()}).text
    assert html_table(on_the_day, "pages")[1][0].startswith("Nothing with")
    day_before = client.get(
        f"{DASH}/pages", params={"from": before.isoformat(), "to": before.isoformat()}
    ).text
    assert html_table(day_before, "pages")[1][:3] == ["/implantologie", "4", "4"]
    # The statistics of the day still count the visitor, anonymously: 4 + 1 visitors, 4 + 2 views.
    assert rows(client.get(f"{DASH}/", params={"from": day.isoformat(), "to": day.isoformat()}).text) == {
        "implantologie": (6, 5)
    }


def test_what_visitors_sent_is_shown_escaped(client: TestClient, clock: FakeClock) -> None:
    """Paths and campaign values come from visitors (a beacon, a link anyone can make): the views show
    them as text, never as markup."""
    hostile = "<script>alert(1)</script>"
    events = [
        PageView(
            clock.now - timedelta(days=1),
            "default",
            uuid.uuid4(),
            f"/zoek/{hostile}",
            ("zoek",),
            "",
            "NL",
            "192.0.2.0",
            utm_source=hostile,
            utm_medium=hostile,
            utm_campaign=hostile,
        )
        for _ in range(5)
    ]
    store = runtime_of(client).store
    draw_salts(store, {event.ts.date() for event in events}, clock)
    PageViewSink(store).write(events)
    assert login(client) == 303
    shown = 0
    for view in ("/", "/pages", "/topics", "/pages?topic=zoek"):
        text = client.get(f"{DASH}{view}").text
        assert "<script>alert" not in text, view
        shown += text.count("&lt;script&gt;alert(1)&lt;/script&gt;")
    assert shown >= 2  # (shown at all: the path and the campaign)


def test_figures_a_filter_would_skew_are_not_shown(client: TestClient, clock: FakeClock) -> None:
    """Found by a helper trying it as a marketer: under a topic filter, visits were those that began on its
    pages (fewer than its visitors) and pages per visit far too high; a row linked to a third filter, which
    is an error page; rising topics listed pages without one."""
    add_views(client, clock, "implantologie", visitors=6, views_each=3)
    add_views(client, clock, "", visitors=6)
    login(client)
    page = client.get(f"{DASH}/", params={"topic": "implantologie", "metric": "visits"})
    assert page.status_code == 200
    tiles = re.findall(r'class="kpi-title">([^<]+)</span>\s*<span class="kpi-value">([^<]+)<', page.text)
    shown = dict(tiles)
    assert shown["Visits"] == shown["Pages per visit"] == "—" and shown["Visitors"] != "—"
    assert re.search(r'aria-current="true">\s*<span class="kpi-title">Visitors<', page.text)  # not visits
    two = client.get(f"{DASH}/", params={"topic": "implantologie", "country": "NL"}).text
    assert "device=" not in two and "source=" not in two  # no link to a third filter
    assert "country=NL" in two  # (changing one of the two still is)
    topics_page = client.get(f"{DASH}/topics").text
    rising = topics_page.split('id="h-rising"')[1].split("</section>")[0]
    assert "(no topic)" not in rising and "implantologie" in rising


def test_a_year_is_drawn_in_whole_weeks() -> None:
    """Found by a helper: 12 months are 52 weeks and a day, and the last point (one day's worth) looked like
    a fall; the heading said per day."""
    days = [date(2025, 12, 7) + timedelta(days=n) for n in range(365)]
    points, [summed] = buckets(days, [Series("v", [10] * 365)])
    assert len(points) == 52 and set(summed.values) == {70} and per(days) == "week"
    assert per(days[:92]) == "day"


def test_the_axis_is_four_equal_whole_steps() -> None:
    """Found by a helper: a top of 25 labelled its lines 0, 6, 12, 18, 25."""
    for value, top in ((0, 4), (3, 4), (5, 8), (25, 40), (41, 80), (99, 100), (330, 400), (1001, 2000)):
        assert _nice_top(value) == top, value
        assert top % 4 == 0 and _nice_top(top) == top


def test_an_unknown_site_is_said(client: TestClient, clock: FakeClock) -> None:
    add_views(client, clock, "implantologie", visitors=5)
    login(client)
    assert "holds no page views of the site “other”" in client.get(f"{DASH}/", params={"site": "other"}).text
    assert "holds no page views" not in client.get(f"{DASH}/").text


def test_a_change_of_a_share_is_in_points() -> None:
    """Found by a helper: returning visits of 52% after 46% read "+13%"."""
    env = Environment(loader=PackageLoader("koekje.analytics", "templates"), autoescape=True)
    env.filters["long_date"] = long_date  # (the dashboard's, which the macros use)
    macros = env.from_string('{% import "macros.html" as m %}{{ m.change(now, before, percent=share) }}')
    assert "+6 points" in macros.render(now=0.52, before=0.46, share=True)
    assert "+13%" in macros.render(now=52, before=46, share=False)
