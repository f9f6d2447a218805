"""The web server's log: uvicorn's lines carry the client's address; koekje's filter shortens it. (A real
uvicorn with koekje's log configuration: tests/examples/test_multi_worker.py.)"""

import io
import logging
import logging.config
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from koekje.middleware.ip import Truncator
from koekje.middleware.logs import (
    ACCESS_LOGGER,
    LOG_CONFIG,
    TruncateClientAddresses,
    access_log_unfiltered,
)

ACCESS = '%s - "%s %s HTTP/%s" %d'


def _record(msg: str, *args: object, name: str = ACCESS_LOGGER) -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)


@pytest.mark.parametrize(
    ("client", "shown"),
    [
        ("203.0.113.77:51234", "203.0.113.0"),
        ("2001:db8:1234:5678::1:443", "2001:db8:1234::"),
        ("::ffff:198.51.100.9:8080", "198.51.100.0"),
        ("[2001:db8::1]:80", "2001:db8::"),
        ("198.51.100.77:0", "198.51.100.0"),  # behind a proxy uvicorn believes: the port is 0
    ],
)
def test_the_access_line_shows_the_truncated_address_without_its_port(client: str, shown: str) -> None:
    record = _record(ACCESS, client, "GET", "/x", "1.1", 200)
    assert TruncateClientAddresses().filter(record) is True  # shortened, never dropped
    assert record.getMessage() == f'{shown} - "GET /x HTTP/1.1" 200'


def test_websocket_and_trace_lines_are_shortened_too() -> None:
    websocket = _record('%s - "WebSocket %s" [accepted]', "203.0.113.77:5000", "/ws", name="uvicorn.error")
    trace = _record("%sHTTP connection made", "203.0.113.77:5000 - ", name="uvicorn.error")
    for record in (websocket, trace):
        TruncateClientAddresses().filter(record)
        assert "203.0.113.77" not in record.getMessage()
    assert trace.getMessage() == "203.0.113.0 - HTTP connection made"


def test_other_lines_pass_unchanged() -> None:
    running = _record("Uvicorn running on %s://%s:%d (Press CTRL+C to quit)", "http", "127.0.0.1", 8000)
    no_client = _record(ACCESS, "", "GET", "/", "1.1", 200)  # a Unix socket has no client address
    for record in (running, no_client):
        before = record.getMessage()
        TruncateClientAddresses().filter(record)
        assert record.getMessage() == before


@given(st.ip_addresses(), st.integers(0, 65535))
def test_no_address_survives_whole(address: object, port: int) -> None:
    text = str(address)
    client = f"{text}:{port}"
    shown = TruncateClientAddresses().shorten(client)
    assert shown == Truncator()(text)  # what koekje itself keeps of it, and nothing more


@pytest.fixture
def uvicorn_logging() -> Iterator[io.StringIO]:
    """uvicorn's loggers configured by koekje's LOG_CONFIG, writing to a buffer; put back afterwards."""
    loggers = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", ACCESS_LOGGER)]
    saved = [(lg.handlers[:], lg.level, lg.propagate, lg.disabled, lg.filters[:]) for lg in loggers]
    logging.config.dictConfig(LOG_CONFIG)
    stream = io.StringIO()
    for logger in loggers:
        for handler in logger.handlers:
            handler.setStream(stream)  # type: ignore[attr-defined]
    yield stream
    for logger, (handlers, level, propagate, disabled, filters) in zip(loggers, saved, strict=True):
        logger.handlers, logger.filters = handlers, filters
        logger.propagate, logger.disabled = propagate, disabled
        logger.setLevel(level)


def test_the_ready_configuration_writes_uvicorns_format_with_short_addresses(
    uvicorn_logging: io.StringIO,
) -> None:
    logging.getLogger(ACCESS_LOGGER).info(ACCESS, "203.0.113.77:51234", "GET", "/", "1.1", 200)
    logging.getLogger("uvicorn.error").info('%s - "WebSocket %s" 403', "203.0.113.77:51235", "/ws")
    written = uvicorn_logging.getvalue()
    assert '203.0.113.0 - "GET / HTTP/1.1" 200' in written
    assert '203.0.113.0 - "WebSocket /ws" 403' in written
    assert "203.0.113.77" not in written


def test_the_site_warns_at_startup_about_an_unfiltered_access_log(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    access = logging.getLogger(ACCESS_LOGGER)
    saved = access.handlers, access.level
    handler = logging.StreamHandler(io.StringIO())  # what uvicorn's default configuration sets up
    access.handlers = [handler]  # (pytest's own capture handlers left out)
    access.setLevel(logging.INFO)
    try:
        assert access_log_unfiltered()
        with caplog.at_level("WARNING", logger="koekje"):
            make_client().get("/")
        assert "uvicorn's access log writes every visitor's full IP address" in caplog.text
        caplog.clear()
        handler.addFilter(TruncateClientAddresses())
        assert not access_log_unfiltered()
        with caplog.at_level("WARNING", logger="koekje"):
            make_client().get("/")
        assert "access log" not in caplog.text
        access.handlers = []
        assert not access_log_unfiltered()  # no handler: --no-access-log, or another server
    finally:
        access.handlers = saved[0]
        access.setLevel(saved[1])
