"""Valid but unusual ASGI apps behind koekje, each found by a helper who tried them: a WebSocket refused
with an HTTP answer, several Content-Security-Policies, a Content-Length list, a zerocopy part after a held
one, HTML answers that are no pages (304, 204, a redirect), and an app setting koekje's own cookies."""

from collections.abc import Callable, MutableMapping
from typing import Any

import anyio
import pytest
from starlette.testclient import TestClient
from support import consent, declared, runtime_of, set_cookie_names

from koekje.middleware import Config
from koekje.middleware.config import ConsentModeSection, ConsentSection
from koekje.middleware.consent_mode import script_nonce

MakeClient = Callable[..., TestClient]
Message = dict[str, Any]
PAGE = b"<!doctype html><html><head><title>t</title></head><body><p>hello</p></body></html>"


def raw_app(*messages: Message) -> Any:
    """An ASGI app that sends these messages as they are (an HTTP response, or a WebSocket's)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        for message in messages:
            await send(dict(message))

    return app


def call(client: TestClient, scope_type: str = "http", method: str = "GET") -> list[Message]:
    """What the server was sent for one request through koekje (no cookies: a visitor without a choice)."""
    scope = {
        "type": scope_type,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http" if scope_type == "http" else "ws",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"shop.test"), (b"accept", b"text/html")],
        "client": ("203.0.113.7", 1),
        "server": ("shop.test", 80),
        "extensions": {"websocket.http.response": {}, "http.response.zerocopy": {}},
    }
    sent: list[Message] = []

    async def receive() -> Message:
        await anyio.sleep_forever()
        return {}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    async def run() -> None:
        with anyio.fail_after(10):  # (a page held for good would hang here, not pass)
            await client.app(scope, receive, send)

    anyio.run(run)
    return sent


def start(status: int, *headers: tuple[bytes, bytes]) -> Message:
    return {"type": "http.response.start", "status": status, "headers": list(headers)}


def body(data: bytes, more: bool = False) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


HTML = (b"content-type", b"text/html; charset=utf-8")


def with_consent_mode(make_config: Callable[..., Config]) -> Config:
    return make_config(consent=ConsentSection(google_consent_mode=ConsentModeSection(enabled=True)))


def test_a_websocket_refused_with_an_http_answer_has_its_cookies_enforced(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    app = raw_app(
        {
            "type": "websocket.http.response.start",
            "status": 403,
            "headers": [(b"set-cookie", b"_fbp=fb.1; Path=/"), (b"set-cookie", b"sessionid=1")],
        },
        {"type": "websocket.http.response.body", "body": b"no", "more_body": False},
    )
    client = make_client(make_config(consent=declared()), app=app)
    [refusal, _] = call(client, "websocket")
    cookies = [value.split(b"=")[0] for name, value in refusal["headers"] if name == b"set-cookie"]
    assert cookies == [b"sessionid"]  # marketing's removed, as on an accept and on any page


@pytest.mark.parametrize(
    "policies",
    [
        [b"script-src 'nonce-abc123'", b"frame-ancestors 'none'"],  # several headers, the nonce in the first
        [b"frame-ancestors 'none', script-src 'self' 'nonce-abc123'"],  # two policies in one header
        [b"script-src 'self' 'NONCE-abc123'"],  # the keyword in capitals
        [b"default-src 'self'; script-src\t'nonce-abc123'"],  # a tab after the name
    ],
)
def test_the_nonce_is_found_in_any_policy(policies: list[bytes]) -> None:
    assert script_nonce(policies) == "abc123"


def test_no_nonce_where_no_policy_has_one() -> None:
    assert script_nonce([b"script-src 'self'", b"default-src 'nonce-x'; script-src 'self'"]) is None
    assert script_nonce([b"img-src *; ;", b""]) is None


def test_every_injected_script_carries_the_nonce_of_any_of_the_pages_policies(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    csp = (b"content-security-policy", b"script-src 'self' 'nonce-r4nd0m'")
    frames = (b"content-security-policy", b"frame-ancestors 'none'")
    client = make_client(
        with_consent_mode(make_config), app=raw_app(start(200, HTML, csp, frames), body(PAGE))
    )
    page = b"".join(m.get("body", b"") for m in call(client))
    assert page.count(b"<script") == page.count(b'<script nonce="r4nd0m"') == 2


def test_a_content_length_list_is_read_not_a_crash(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    length = str(len(PAGE)).encode()
    app = raw_app(start(200, HTML, (b"content-length", length + b", " + length)), body(PAGE))
    first, rest = call(make_client(make_config(), app=app))[0], call(make_client(make_config(), app=app))[1:]
    page = b"".join(m.get("body", b"") for m in rest)
    assert first["status"] == 200 and b"koekje" in page
    assert [v for n, v in first["headers"] if n == b"content-length"] == [str(len(page)).encode()]
    junk = raw_app(start(200, HTML, (b"content-length", b"12, 13")), body(PAGE))
    [sent, *_] = call(make_client(make_config(), app=junk))
    assert sent["status"] == 200 and not [v for n, v in sent["headers"] if n == b"content-length"]


def test_a_zerocopy_part_after_a_held_one_loses_nothing(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    head = b"<!doctype html><html><head><title>T"
    zerocopy = {"type": "http.response.zerocopy", "file": 0, "more_body": False}
    app = raw_app(start(200, HTML), body(head, more=True), zerocopy)
    sent = call(make_client(make_config(), app=app))
    assert [m["type"] for m in sent] == [
        "http.response.start",
        "http.response.body",
        "http.response.zerocopy",
    ]
    assert sent[1]["body"] == head and sent[1]["more_body"] is True


@pytest.mark.parametrize("status", [204, 301, 302, 304])
def test_html_answers_that_are_no_pages_are_not_held_or_counted(
    make_client: MakeClient, make_config: Callable[..., Config], status: int
) -> None:
    client = make_client(make_config(), app=raw_app(start(status, HTML), body(b"")))
    sent = call(client)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sum(runtime_of(client).pages.counts.values()) == 0  # no "page without banner"


def test_a_changed_page_names_no_validator_of_the_apps_page(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    dated = (b"last-modified", b"Mon, 07 Dec 2026 10:00:00 GMT")
    app = raw_app(start(200, HTML, dated, (b"etag", b'"v1"'), (b"accept-ranges", b"bytes")), body(PAGE))
    [first, *_] = call(make_client(make_config(), app=app))
    names = {name for name, _ in first["headers"]}
    assert not names & {b"last-modified", b"etag", b"accept-ranges"}  # no If-Range can mix the two pages


def test_an_app_cannot_set_koekjes_own_cookies(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    client = make_client(make_config(consent=declared(enforce="strict")))

    def sets(*cookies: str) -> list[str]:
        return set_cookie_names(client.get("/cookies", params={"set": list(cookies)}))

    own = ("koekje_visit=from-app; Max-Age=31536000", "koekje_consent=forged", "sessionid=1")
    assert sets(*own) == ["sessionid"]
    consent(client, "analytics")
    assert sorted(sets(*own)) == ["koekje_visit", "sessionid"]  # the visit's cookie once: koekje's
    assert runtime_of(client).guard.removed[("koekje_consent", "own_name")] == 2
