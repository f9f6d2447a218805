"""The examples in examples/, run as written: their own app code and koekje.toml, with only the store moved to
this test's database (chDB allows one engine per process). The multi-worker example runs under a real
uvicorn: test_multi_worker.py."""

import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest
from starlette.testclient import TestClient
from support import CLIENT_IP, SECRET, page_views, server_dsn

from koekje.analytics import Store
from koekje.middleware import Config, KoekjeMiddleware, load_config
from koekje.middleware.config import DSN_ENV, SECRET_ENV
from koekje.middleware.lint import check
from koekje.middleware.logs import LOG_CONFIG

EXAMPLES = Path(__file__).parents[2] / "examples"
BROWSER = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36"}


def load(path: Path) -> ModuleType:
    """An example's module, imported from its file (the examples are not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would (Litestar reads its handlers' module from there)
    spec.loader.exec_module(module)
    return module


def example_config(name: str, make_config: Callable[..., Config]) -> Config:
    """The example's own koekje.toml, loaded as its site would load it, on this test's store and spool."""
    loaded = load_config(EXAMPLES / name / "koekje.toml", {SECRET_ENV: SECRET})
    mine = make_config().analytics
    analytics = msgspec.structs.replace(
        loaded.analytics,
        dsn=mine.dsn,
        database=mine.database,
        spool_dir=mine.spool_dir,
        flush_interval_seconds=mine.flush_interval_seconds,
    )
    return msgspec.structs.replace(loaded, analytics=analytics)


def koekje_of(app: Any) -> KoekjeMiddleware:
    """The KoekjeMiddleware inside an app's middleware stack."""
    while not isinstance(app, KoekjeMiddleware):
        app = getattr(app, "middleware_stack", None) or app.app
    return app


@contextmanager
def running(app: Any) -> Iterator[TestClient]:
    with TestClient(
        app, base_url="http://example.test", headers=BROWSER, client=(CLIENT_IP, 50000)
    ) as client:
        yield client
    runtime = koekje_of(app).runtime
    with Store(runtime.store.settings) as store:
        store.command(f"DROP DATABASE IF EXISTS `{runtime.store.settings.database}` SYNC")


def _topics_by_path(client: TestClient, app: Any) -> dict[str, list[str]]:
    return {row["path"]: sorted(row["topics"]) for row in page_views(koekje_of(app).runtime)}


def test_fastapi_topics_per_route_and_interests_in_the_template(make_config: Callable[..., Config]) -> None:
    fastapi_app = load(EXAMPLES / "fastapi_site" / "fastapi_app.py")
    app = fastapi_app.create_app(example_config("fastapi_site", make_config))
    with running(app) as client:
        home = client.get("/")
        assert home.status_code == 200 and "data-koekje-banner" in home.text
        assert "Picked for you" not in home.text
        ping = client.get("/api/ping")
        assert ping.json() == {"pong": "yes"} and "set-cookie" not in ping.headers

        client.post("/_koekje/consent", json={"categories": ["analytics", "personalization"]})
        for path in ("/implants", "/implants/aftercare", "/courses", "/hygiene", "/implants"):
            assert client.get(path).status_code == 200
        page = client.get("/hygiene").text
        assert "Picked for you" in page and "You read about implants" in page  # read most: first
        assert '<a href="/implants/aftercare">Aftercare</a></li>' in page  # suggested from the template
        assert _topics_by_path(client, app) == {
            "/courses": ["courses", "implants"],
            "/hygiene": ["hygiene"],
            "/implants": ["implants"],
            "/implants/aftercare": ["aftercare", "implants"],
        }


def test_plain_asgi_labels_topics_in_the_scope(make_config: Callable[..., Config]) -> None:
    asgi_app = load(EXAMPLES / "plain_asgi" / "asgi_app.py")
    app = asgi_app.create_app(example_config("plain_asgi", make_config))
    with running(app) as client:
        first = client.get("/implants")
        assert "data-koekje-banner" in first.text and "Statistics: not allowed." in first.text
        assert client.get("/nope").status_code == 404
        client.post("/_koekje/consent", json={"categories": ["analytics"]})
        assert "Statistics: allowed." in client.get("/implants").text
        assert client.get("/").status_code == 200
        assert _topics_by_path(client, app) == {"/": [], "/implants": ["implants"]}


def test_litestar_wrapped_whole(make_config: Callable[..., Config]) -> None:
    litestar_app = load(EXAMPLES / "litestar_site" / "litestar_app.py")
    app = litestar_app.create_app(example_config("litestar_site", make_config))
    with running(app) as client:
        home = client.get("/")
        assert "data-koekje-banner" in home.text and "Statistics not allowed." in home.text
        assert client.get("/_koekje/banner.js").status_code == 200  # koekje's own endpoints answer
        assert client.get("/api/ping").json() == {"pong": "yes"}
        client.post("/_koekje/consent", json={"categories": ["analytics"]})
        assert "Statistics allowed." in client.get("/").text
        client.get("/implants")
        assert _topics_by_path(client, app) == {"/": [], "/implants": ["implants"]}


def test_the_clickhouse_configuration_loads_and_passes_the_check() -> None:
    path = EXAMPLES / "clickhouse_server" / "koekje.toml"
    config = load_config(path, {SECRET_ENV: SECRET})
    assert config.store_settings().dsn == "https://koekje@clickhouse.internal:8443"
    overridden = load_config(path, {SECRET_ENV: SECRET, DSN_ENV: "https://koekje:pw@ch.example:8443"})
    assert overridden.store_settings().dsn == "https://koekje:pw@ch.example:8443"  # the password's place
    findings = [f for f in check(config, {}) if f.level == "error" or f.where == "site.processors"]
    assert findings == []  # the hosted server is declared as a processor


@pytest.mark.skipif(server_dsn() is None, reason="no ClickHouse server (set KOEKJE_TEST_CLICKHOUSE_URL)")
def test_the_clickhouse_configuration_on_a_real_server(tmp_path: Path, database: str) -> None:
    environ = {SECRET_ENV: SECRET, DSN_ENV: str(server_dsn())}
    config = load_config(EXAMPLES / "clickhouse_server" / "koekje.toml", environ)
    analytics = msgspec.structs.replace(
        config.analytics, database=database, spool_dir=str(tmp_path / "spool")
    )
    config = msgspec.structs.replace(config, analytics=analytics)
    plain = load(EXAMPLES / "plain_asgi" / "asgi_app.py")
    app = plain.create_app(config)
    with running(app) as client:
        client.post("/_koekje/consent", json={"categories": ["analytics"]})
        client.get("/implants")
        assert [row["topics"] for row in page_views(koekje_of(app).runtime)] == [["implants"]]


def test_the_examples_logging_configuration_is_koekjes() -> None:
    assert json.loads((EXAMPLES / "uvicorn-logging.json").read_text()) == json.loads(json.dumps(LOG_CONFIG))


def test_every_example_is_listed_and_documented() -> None:
    listed = (EXAMPLES / "README.md").read_text()
    documented = (EXAMPLES.parent / "docs" / "examples.md").read_text()
    for directory in sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir() and p.name != "__pycache__"):
        assert f"`{directory}/`" in listed, directory
        assert f"examples/{directory}/" in documented, directory
