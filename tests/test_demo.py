"""The demo: what `make demo` prepares and serves."""

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from starlette.testclient import TestClient
from support import demo_config, runtime_of

from koekje.analytics import Accounts, Store, topic_report
from koekje.demo.run import CLI_CONFIG, DEMO_USER, prepare
from koekje.demo.run import demo_config as run_config
from koekje.demo.site import create_site
from koekje.demo.traffic import generate
from koekje.middleware import Config, load_config
from koekje.middleware.config import SECRET_ENV
from koekje.middleware.topics import TopicRules

DEMO_TOPICS = {"mondhygiene", "implantologie", "personeel", "cursussen", "praktijkmanagement"}


def test_prepare_creates_the_account_and_a_month_of_traffic(make_config: Callable[..., Config]) -> None:
    config = demo_config(make_config())
    first_password, added = prepare(config, sample_traffic=True)
    assert added > 1000
    password, added_again = prepare(config, sample_traffic=True)
    assert added_again == 0  # only an empty store gets sample traffic
    now = datetime.now(UTC)
    with Store(config.store_settings()) as store:
        accounts = Accounts(store)
        assert accounts.authenticate(DEMO_USER, first_password) is None  # a new password on every start
        assert accounts.authenticate(DEMO_USER, password) is not None
        today = now.astimezone(ZoneInfo(config.site.timezone)).date()
        report = topic_report(store, config.site.id, today - timedelta(days=31), today, min_visitors=5)
        assert {row[0] for row in report.rows} >= DEMO_TOPICS
        store.command(f"DROP DATABASE `{config.analytics.database}` SYNC")


def test_generated_traffic_is_deterministic_and_synthetic() -> None:
    rules = TopicRules({"cursussen": ["/cursussen", "/en/courses"]})
    now = datetime(2026, 11, 22, tzinfo=UTC)
    first, second = generate(rules, "s", now), generate(rules, "s", now)
    assert first == second
    assert all(now - timedelta(days=30) <= event.ts <= now for event in first)
    assert {event.ip_prefix for event in first} <= {"192.0.2.0", "198.51.100.0", "203.0.113.0"}
    course_details = [e for e in first if e.path == "/cursussen/implantologie-basis"]
    assert course_details and all(e.topics == ("cursussen", "implantologie") for e in course_details)


def test_every_demo_page_carries_the_banner(
    make_client: Callable[..., TestClient], make_config: Callable[..., Config]
) -> None:
    client = make_client(demo_config(make_config()), app=create_site())
    for path in ("/", "/en/", "/mondhygiene", "/en/courses/implantology-basics", "/privacy"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert re.search(r'<script src="/_koekje/banner\.js\?v=\w+" defer></script></head>', response.text), (
            path
        )
        assert "data-koekje-open" in response.text
    assert client.get("/nope").status_code == 404
    assert runtime_of(client).capture.counts()["no_consent"] == 5


def test_you_might_also_like_skips_what_the_visitor_read(
    make_client: Callable[..., TestClient], make_config: Callable[..., Config]
) -> None:
    client = make_client(demo_config(make_config()), app=create_site())
    client.get("/en/implantology")
    assert "You might also like" not in client.get("/en/").text  # no personalization consent: nothing
    client.post("/_koekje/consent", json={"categories": ["personalization"]})
    client.get("/en/implantology")
    client.get("/en/implantology")
    home = client.get("/en/").text
    suggested = re.findall(r'<aside class="suggestions".*?</aside>', home, re.S)
    assert suggested and 'href="/en/courses/implantology-basics"' in suggested[0]
    assert 'href="/en/implantology"' not in suggested[0]  # read already
    client.get("/en/courses/implantology-basics")  # the course is about courses, too
    [suggested] = re.findall(r'<aside class="suggestions".*?</aside>', client.get("/en/").text, re.S)
    assert re.findall(r'href="([^"]+)"', suggested) == ["/en/courses"]  # nothing unread left on implants


def test_the_demo_leaves_a_configuration_for_the_command_line(tmp_path: Path) -> None:
    """Found by a helper: `koekje subject`, `consent verify` and the rest need a configuration file, and the
    demo made its configuration in memory only."""
    config = run_config(tmp_path / "data")
    secret = (tmp_path / "data" / "secret-key").read_text()
    cli = load_config(tmp_path / "data" / CLI_CONFIG, {SECRET_ENV: secret})
    assert cli.store_settings().dsn == config.store_settings().dsn
    assert cli.spool_path() == config.spool_path() and cli.site == config.site
