"""koekje's consent endpoints as an attacker would try them: floods, replayed cookies, proxies; and the
middleware under trio as well as asyncio."""

import json
from collections.abc import Callable
from typing import Any

import anyio
import msgspec
import pytest
from starlette.testclient import TestClient
from support import CLIENT_IP, FakeClock, consent, cookie_from, ledger, page_views, runtime_of, site

from koekje.middleware import Config, KoekjeMiddleware
from koekje.middleware.config import SiteSection

MakeClient = Callable[..., TestClient]


async def call(
    app: Any, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """One request through the ASGI app, without a client library: the status, headers and body."""
    raw = [(b"host", b"shop.test"), *((k.encode(), v.encode()) for k, v in (headers or {}).items())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": raw,
        "client": (CLIENT_IP, 50000),
        "server": ("shop.test", 80),
    }
    sent = False
    result: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await anyio.sleep_forever()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            result["status"] = message["status"]
            result["headers"] = [(k.decode(), v.decode()) for k, v in message["headers"]]
        elif message["type"] == "http.response.body":
            result["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return result


JSON = {"content-type": "application/json"}


def test_a_flood_of_decisions_from_one_network_is_bounded(make_client: MakeClient) -> None:
    """300 concurrent decisions from one address: a bounded number is recorded, in a few inserts; the rest
    are refused with Retry-After instead of each costing an fsynced row kept for years."""
    client = make_client()
    app = client.app
    body = json.dumps({"categories": ["analytics", "marketing"]}).encode()
    statuses: list[int] = []
    retry_after: set[str] = set()

    async def flood() -> None:
        async def one() -> None:
            response = await call(app, "POST", "/_koekje/consent", body, JSON)
            statuses.append(response["status"])
            retry_after.update(v for k, v in response["headers"] if k == "retry-after")

        async with anyio.create_task_group() as group:
            for _ in range(300):
                group.start_soon(one)

    client.portal.call(flood)  # type: ignore[union-attr]
    assert statuses.count(200) == 30 and statuses.count(429) == 270
    assert retry_after and all(1 <= int(v) <= 60 for v in retry_after)
    runtime = runtime_of(client)
    assert len(ledger(client)) == 30
    assert runtime.ledger.groups < 30  # decisions waiting together share an fsync


def test_withdrawal_is_never_refused_by_the_flood_limit(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    config = make_config()
    config = msgspec.structs.replace(
        config, consent=msgspec.structs.replace(config.consent, decisions_per_minute=1)
    )
    client = make_client(config)
    consent(client, "analytics")
    refused = client.post("/_koekje/consent", json={"categories": ["analytics", "marketing"]})
    assert refused.status_code == 429 and "retry-after" in refused.headers
    withdrawn = client.post("/_koekje/consent", json={"categories": []})
    assert withdrawn.status_code == 200  # takes effect, unrecorded (counted)
    client.get("/implantologie")
    assert page_views(client) == []


def test_a_superseded_cookie_presented_again_counts_for_nothing(make_client: MakeClient) -> None:
    client = make_client()
    granted = cookie_from(consent(client, "analytics", "marketing"), "koekje_consent")
    consent(client)  # withdraw
    client.cookies.set("koekje_consent", granted, domain="shop.test")  # the old cookie, replayed
    assert client.get("/_koekje/config.json").json()["consent"] is None
    client.get("/implantologie")
    assert page_views(client) == []
    assert runtime_of(client).engine.counts["superseded_cookie"] >= 2


def test_another_process_learns_of_a_withdrawal_from_the_ledger(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    config = make_config()
    first, second = make_client(config), make_client(config)  # two workers on one store
    granted = cookie_from(consent(first, "analytics"), "koekje_consent")
    consent(first)
    ledger(first)
    second.cookies.set("koekje_consent", granted, domain="shop.test")
    runtime_of(second).ledger.poll()  # what its ledger thread does every few seconds
    second.get("/implantologie")
    assert page_views(second) == []


def test_proxies_address_forms_reach_the_page_view(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    client = make_client(make_config(site=SiteSection(trusted_proxies=("203.0.113.0/24",))))
    consent(client, "analytics")
    client.get("/implantologie", headers={"x-forwarded-for": "198.51.100.7:54321"})
    client.get("/cursussen", headers={"x-forwarded-for": "[2001:db8:1:2::9]:443"})
    assert sorted(v["ip_prefix"] for v in page_views(client)) == ["198.51.100.0", "2001:db8:1::"]


def test_the_dashboard_and_consent_use_the_proxys_scheme(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    client = make_client(make_config(site=SiteSection(trusted_proxies=("203.0.113.0/24",))))
    headers = {"origin": "https://shop.test", "x-forwarded-proto": "https"}
    response = client.post("/_koekje/consent", json={"categories": []}, headers=headers)
    assert response.status_code == 200
    assert (
        response.headers["set-cookie"].startswith("__Host-koekje_consent=")
        and "Secure" in response.headers["set-cookie"]
    )
    headers["x-forwarded-proto"] = "http"
    assert client.post("/_koekje/consent", json={"categories": []}, headers=headers).status_code == 403


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_two_first_requests_at_once_without_lifespan(
    make_config: Callable[..., Config], clock: FakeClock, backend: str
) -> None:
    """Starlette runs on anyio, so a site may run on trio; the first requests start koekje themselves."""
    app = KoekjeMiddleware(site(), make_config(), clock=clock)
    results: list[dict[str, Any]] = []

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for path in ("/a", "/b"):
                group.start_soon(_append, results, call(app, "GET", path))
            body = b'{"categories":["analytics"]}'
            group.start_soon(_append, results, call(app, "POST", "/_koekje/consent", body, JSON))
        await app.runtime.stop()

    anyio.run(main, backend=backend)
    assert sorted(r["status"] for r in results) == [200, 200, 200]
    assert all(b"banner.js" in r["body"] for r in results if r["body"].startswith(b"<!doctype"))
    with app.runtime.store as store:
        store.command(f"DROP DATABASE IF EXISTS `{store.settings.database}` SYNC")


async def _append(results: list[dict[str, Any]], request: Any) -> None:
    results.append(await request)
