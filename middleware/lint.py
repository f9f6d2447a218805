"""``koekje check``: the configuration against the rules koekje stands for, beyond what loading it already
refuses (a consent lifetime over 13 months, IP truncation short of /24 and /48, weak secret keys).

Each finding says what is wrong and what to change. Errors make the command exit non-zero, for CI.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from . import page
from .config import Config
from .logs import FILTER

# Raw visitor data longer than this needs a reason written down (analytics.retention_justification).
MAX_RAW_RETENTION_DAYS = 760  # 25 months
# A trusted proxy network wider than this is almost certainly a mistake: its clients could pose as anyone.
WIDEST_PROXY_PREFIX = {4: 8, 6: 32}


@dataclass(frozen=True, slots=True)
class Finding:
    level: Literal["error", "warning"]
    where: str
    message: str

    def line(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


def check(config: Config, environ: Mapping[str, str] | None = None) -> list[Finding]:
    findings: list[Finding] = []
    findings += compiled(page.__file__ or "")
    findings += _server_log(os.environ if environ is None else environ)
    findings += _retention(config)
    findings += _declared(config)
    findings += _regions(config)
    findings += _proxies(config)
    findings += _paths(config)
    if config.analytics.dsn and not config.site.processors:
        findings.append(
            Finding(
                "warning",
                "site.processors",
                "the statistics are in a ClickHouse server: if someone else runs it (a hosted service), "
                "declare them as a processor, so `koekje notice` names them",
            )
        )
    return findings


def _retention(config: Config) -> list[Finding]:
    a = config.analytics
    if a.raw_retention_days > MAX_RAW_RETENTION_DAYS and not a.retention_justification.strip():
        return [
            Finding(
                "error",
                "analytics.raw_retention_days",
                f"{a.raw_retention_days} days keeps raw visitor data longer than 25 months: lower it to at "
                f"most {MAX_RAW_RETENTION_DAYS}, or write down why in analytics.retention_justification",
            )
        ]
    return []


def _declared(config: Config) -> list[Finding]:
    """Every declared cookie and service speaks every banner language: a visitor must be able to read what
    they are asked about."""
    findings = []
    languages = config.banner.languages
    consent = config.consent
    declared = [(f"consent.cookies[{rule.name}]", rule.purpose) for rule in consent.cookies]
    declared += [(f"consent.services.{sid}", service.purpose) for sid, service in consent.services.items()]
    for where, purpose in declared:
        missing = [lang for lang in languages if not purpose.get(lang, "").strip()]
        if missing:
            findings.append(
                Finding(
                    "error", where, f'no purpose in {", ".join(missing)}: add purpose.{missing[0]} = "..."'
                )
            )
    for service_id, service in consent.services.items():
        untitled = [lang for lang in languages if lang not in service.title]
        if untitled and service.title:
            findings.append(
                Finding(
                    "warning",
                    f"consent.services.{service_id}",
                    f"no title in {', '.join(untitled)} (the id {service_id!r} is shown there)",
                )
            )
    return findings


def _regions(config: Config) -> list[Finding]:
    regions = config.consent.regions
    if config.geo.database:
        return []
    if regions.default == "opt-out" or regions.opt_out:
        return [
            Finding(
                "warning",
                "geo.database",
                "no GeoIP database: every visitor's region is unknown, so the opt-out rules in "
                "consent.regions never apply (everyone gets opt-in, the strictest). Configure a GeoLite2 or "
                "DB-IP country database, or set consent.regions.opt_out = [] to say opt-in everywhere",
            )
        ]
    return []


def _paths(config: Config) -> list[Finding]:
    """Files and directories the site needs, as this user sees them (found by trying: a spool directory that
    could not be made, and a GeoIP database that was not there, passed the check and stopped the site).
    Run the check as the site's user."""
    findings = []
    spool = config.spool_path()
    existing = next((p for p in (spool, *spool.parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        where = existing if existing is not None else spool
        findings.append(
            Finding(
                "error",
                "analytics.spool_dir",
                f"{spool} cannot be created or written ({where} is in the way): koekje could not start",
            )
        )
    database = config.geo_database()
    if database is not None and not database.is_file():
        findings.append(
            Finding("error", "geo.database", f"{database} is not a file: the site would not start")
        )
    return findings


def _proxies(config: Config) -> list[Finding]:
    findings = []
    if config.site.proxy_header == "forwarded":
        findings.append(
            Finding(
                "warning",
                "site.proxy_header",
                "'forwarded': start uvicorn with --forwarded-allow-ips '' (or --no-proxy-headers), or it "
                "takes the client address from X-Forwarded-For, which a proxy that writes Forwarded passes "
                "through from the visitor (see docs/deployment.md)",
            )
        )
    for text in config.site.trusted_proxies:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue  # refused on load
        widest = WIDEST_PROXY_PREFIX[network.version]
        if network.prefixlen == 0:
            findings.append(
                Finding(
                    "error",
                    "site.trusted_proxies",
                    f"{text} trusts every address: any client could say which address it has. List your "
                    "proxies' own addresses (e.g. 10.0.0.5/32)",
                )
            )
        elif network.prefixlen < widest:
            findings.append(
                Finding(
                    "warning",
                    "site.trusted_proxies",
                    f"{text} is a wide network to trust as proxies; list the proxies themselves if you can",
                )
            )
    return findings


def compiled(page_module: str) -> list[Finding]:
    """Whether the request path runs compiled (setup.py), told by where its page module was loaded from."""
    if not page_module.endswith(".py"):
        return []
    return [
        Finding(
            "warning",
            "installation",
            "koekje's request path runs as plain Python (built with KOEKJE_COMPILE=0, or where no compiled "
            "build was made): it works the same, at about twice the cost per request. Install a compiled "
            "build on a machine with a C compiler and the Python headers: `pip install --force-reinstall "
            "--no-deps --no-cache-dir koekje` (pip's cache may hold the plain build)",
        )
    ]


def _server_log(environ: Mapping[str, str]) -> list[Finding]:
    """uvicorn's access log writes full client addresses. How the server is started is mostly out of sight
    here (its command line), but uvicorn also reads its options from UVICORN_* variables: where those say
    the access log is on without koekje's filter, say so. (The site itself warns at startup in any case.)"""
    if environ.get("UVICORN_ACCESS_LOG", "").strip().lower() in ("false", "f", "0", "no", "n", "off"):
        return []
    log_config = environ.get("UVICORN_LOG_CONFIG", "").strip()
    if log_config:
        try:
            filtered = FILTER in Path(log_config).read_text(encoding="utf-8", errors="replace")
        except OSError:
            filtered = False
        if filtered:
            return []
        said = f"UVICORN_LOG_CONFIG ({log_config}) configures no {FILTER}"
    elif environ.get("UVICORN_ACCESS_LOG", "").strip().lower() in ("true", "t", "1", "yes", "y", "on"):
        said = "UVICORN_ACCESS_LOG turns uvicorn's access log on"
    else:
        return []  # the command line decides: not visible from here
    return [
        Finding(
            "warning",
            "server log",
            f"{said}, so it writes every visitor's full IP address: use the log configuration `koekje init` "
            "writes (uvicorn-logging.json, with koekje's filter that shortens addresses) or --no-access-log",
        )
    ]
