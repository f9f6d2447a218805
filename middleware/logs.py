"""The web server's logs: uvicorn writes every visitor's full address (``203.0.113.77:51234 - "GET / ..."``)
into its access log, and into its WebSocket and trace lines. koekje never keeps a full address, so it offers
a logging filter that shortens those addresses as koekje does (IPv4 /24, IPv6 /48) and drops the port, and
a ready logging configuration for uvicorn that applies it:

    uvicorn app:app --log-config uvicorn-logging.json     # the file `koekje init` writes
    uvicorn.run(app, log_config=koekje.middleware.logs.LOG_CONFIG)

A site that starts with uvicorn's default access log gets a warning from koekje at startup.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from uvicorn.config import LOGGING_CONFIG

from .ip import Truncator

# uvicorn's loggers: the access log, and the error log that also carries WebSocket and trace lines.
ACCESS_LOGGER = "uvicorn.access"
FILTER = f"{__name__}.TruncateClientAddresses"
log = logging.getLogger("koekje")


class TruncateClientAddresses(logging.Filter):
    """Shortens the client address at the start of uvicorn's log lines, before any handler writes them.

    uvicorn logs the client first, as the first argument of a message that starts with ``%s``
    (``"%s - "%s %s HTTP/%s" %d"``, ``'%s - "WebSocket %s" [accepted]'``, ``"%sHTTP connection made"``), as
    ``host:port`` (``::1:51234`` for IPv6), or as ``"host:port - "``. That argument becomes the truncated
    address without its port; any other record passes unchanged. Put it on the handlers (a filter on a
    logger does not see the records of its children)."""

    def __init__(self, name: str = "", ipv4_prefix: int = 24, ipv6_prefix: int = 48) -> None:
        super().__init__(name)
        self._truncate = Truncator(ipv4_prefix, ipv6_prefix)

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args and isinstance(args[0], str) and _starts_with_client(record):
            shortened = self.shorten(args[0])
            if shortened is not None:
                record.args = (shortened, *args[1:])
        return True

    def shorten(self, client: str) -> str | None:
        """``"203.0.113.77:51234"`` -> ``"203.0.113.0"``; None when ``client`` is no address (and port)."""
        text = client.removesuffix(" - ")
        suffix = client[len(text) :]
        host, colon, port = text.rpartition(":")
        if colon and port.isdigit():
            shortened = self._truncate(host.strip("[]"))
            if shortened is not None:
                return shortened + suffix
        shortened = self._truncate(text.strip("[]"))
        return None if shortened is None else shortened + suffix


def _starts_with_client(record: logging.LogRecord) -> bool:
    return isinstance(record.msg, str) and record.msg.startswith("%s")


def _log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration (same formats, same streams) with the filter on every handler."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["koekje_truncate"] = {"()": FILTER}
    for handler in config["handlers"].values():
        handler["filters"] = [*handler.get("filters", ()), "koekje_truncate"]
    return config


LOG_CONFIG: dict[str, Any] = _log_config()


def access_log_unfiltered() -> bool:
    """Whether uvicorn's access log is on in this process and writes through a handler without the filter
    (uvicorn's default). Off (``--no-access-log``), quiet, or filtered: False."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if logger.disabled or not logger.handlers or not logger.isEnabledFor(logging.INFO):
        return False
    if any(isinstance(f, TruncateClientAddresses) for f in logger.filters):
        return False
    return not all(any(isinstance(f, TruncateClientAddresses) for f in h.filters) for h in logger.handlers)


def warn_if_access_log_unfiltered() -> bool:
    """Say so, once per process start, when the access log writes full addresses. True when it warned."""
    if not access_log_unfiltered():
        return False
    log.warning(
        "koekje: uvicorn's access log writes every visitor's full IP address. Start uvicorn with "
        "--log-config uvicorn-logging.json (written by `koekje init`; koekje's filter shortens the addresses "
        "as koekje does) or with --no-access-log."
    )
    return True
