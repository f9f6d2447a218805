"""What the request path must not cost: guards of its performance that a test can see (the figures
themselves are benchmarks, in benchmarks/RESULTS.md)."""

import gc
from collections.abc import Callable
from typing import Any

import anyio
from starlette.testclient import TestClient
from support import CLIENT_IP, consent, declared, runtime_of

MakeClient = Callable[..., TestClient]


def _scope(path: str, cookie: str) -> dict[str, Any]:
    headers = [(b"host", b"shop.test"), (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": (CLIENT_IP, 5000),
        "server": ("shop.test", 80),
    }


def _garbage(app: Any, cookies: list[str]) -> list[str]:
    """The kinds of object that requests through ``app`` leave in reference cycles."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    async def requests() -> None:
        for cookie in cookies:
            for path in ("/implantologie", "/api", "/missing"):
                await app(_scope(path, cookie), receive, send)

    anyio.run(requests)  # warm: caches filled, nothing left to set up
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        anyio.run(requests)
        before = len(gc.garbage)
        anyio.run(requests)  # what anyio's own run leaves is in both; the difference is the requests'
        gc.collect()
        return sorted({type(found).__name__ for found in gc.garbage[before:]})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_a_request_leaves_no_reference_cycles(make_client: MakeClient) -> None:
    """Garbage in cycles waits for the collector, whose runs then cost every request (a Visitor that held
    its scope, which holds the visitor, once made the collector run every few requests)."""
    client = make_client()
    response = consent(client, "analytics", "personalization")
    consented = "; ".join(f"{name}={value}" for name, value in response.cookies.items())
    # Its threads stopped (their store client's garbage is not the requests'); requests still go through
    # every step of capture, up to the queue that now refuses them.
    anyio.run(runtime_of(client).stop)

    async def nothing(scope: Any, receive: Any, send: Any) -> None:
        pass

    baseline = _garbage(nothing, [""])  # what anyio leaves, if anything
    assert _garbage(client.app, ["", consented]) == baseline


async def _lifespan(receive: Any, send: Any) -> None:
    """A raw ASGI app's side of the lifespan protocol."""
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


def test_send_is_a_coroutine_function_that_works_in_the_order_its_calls_run(make_client: MakeClient) -> None:
    """An app may make tasks of its sends, or gather them (created before any runs): koekje's ``send`` is a
    coroutine function (asgiref's WsgiToAsgi checks, and warns otherwise) and works on each message when it
    runs, so a page whose head ends before its last part still goes out whole, with the banner."""
    import asyncio
    import inspect

    page = b"<!doctype html><html><head><title>t</title></head><body><p>hello</p>" + b"<p>more</p>" * 20
    seen: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        seen.append(inspect.iscoroutinefunction(send))
        html = scope["path"] == "/page"
        body = page if html else b"{}"
        kind = b"text/html" if html else b"application/json"
        headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
        start = {"type": "http.response.start", "status": 200, "headers": headers}
        if scope["query_string"] == b"gather":  # the head and the body's start in the first of two parts
            first, rest = body[:80], body[80:]
            await asyncio.gather(
                send(start),
                send({"type": "http.response.body", "body": first, "more_body": True}),
                send({"type": "http.response.body", "body": rest}),
            )
            return
        for message in (start, {"type": "http.response.body", "body": body}):
            await asyncio.create_task(send(message))  # TypeError unless send(...) is a coroutine

    client = make_client(app=app)
    for query in ("", "gather"):
        html = client.get("/page?" + query)
        assert html.status_code == 200 and b'id="koekje"' in html.content, query
        assert html.content.endswith(b"<p>more</p>" * 20) and b"<p>hello</p>" in html.content
        assert int(html.headers["content-length"]) == len(html.content) > len(page)
        assert client.get("/api?" + query).content == b"{}"
    assert seen and all(seen)


def test_headers_given_as_lists_are_read_like_pairs(
    make_client: MakeClient, make_config: Callable[..., Any]
) -> None:
    """ASGI allows a response's headers as [name, value] lists (uvicorn takes them): the page still gets its
    banner and its length, and a marketing cookie is still held back (compiled code reads pairs only)."""
    page = b"<!doctype html><html><head><title>t</title></head><body><p>hello</p></body></html>"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        headers = [
            [b"Content-Type", b"text/html; charset=utf-8"],
            [b"content-length", str(len(page)).encode()],
            [b"set-cookie", b"_fbp=fb.1; Path=/"],  # a marketing cookie, declared
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": page})

    client = make_client(make_config(consent=declared(enforce="strict")), app=app)
    response = client.get("/page")
    assert response.status_code == 200 and b'id="koekje"' in response.content
    assert int(response.headers["content-length"]) == len(response.content) > len(page)
    assert "_fbp" not in response.cookies
