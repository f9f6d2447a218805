"""An audit as something to read or file: plain text for a terminal, JSON for tools, Markdown and a
self-contained HTML page for a privacy officer (date, site, koekje version, per-visitor tables, the banner
as shown)."""

from __future__ import annotations

import base64
import dataclasses
import html
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from .evidence import Cookie, Report, Screenshot
from .rules import duration_text

Format = Literal["text", "json", "html", "markdown"]
FORMATS: tuple[Format, ...] = ("text", "json", "html", "markdown")
# What each rule checks, in the reader's words: the report says what was looked for, not only what was found.
CHECKS = (
    (
        "cookie-without-consent",
        "a cookie beyond the strictly necessary for a visitor who did not grant its "
        "purpose: before a choice, after rejecting, or of a category not granted",
    ),
    ("third-party-without-consent", "requests to other hosts before a choice or after rejecting"),
    ("undeclared-cookie", "cookies that koekje.toml does not declare"),
    ("lifetime-exceeds-declaration", "cookies that live longer than koekje.toml declares"),
    (
        "banner-missing, reject-not-on-first-layer, pre-ticked-choice, category-without-choice",
        "the banner: shown, a refusal on its first layer, nothing ticked in advance, every category offered",
    ),
    (
        "storage-without-consent (warning)",
        "localStorage and sessionStorage written before a choice or after rejecting",
    ),
    ("reject-less-prominent (warning)", "a refusal button smaller than the acceptance button"),
)


def render(report: Report, format: Format, *, images: Mapping[int, str] | None = None) -> str:
    """The report as ``format``. Markdown links its screenshots by the file names in ``images`` (by
    their place in ``report.banner.screenshots``); without them it says where to find them."""
    if format == "json":
        return json.dumps(as_data(report), indent=2, ensure_ascii=False) + "\n"
    if format == "text":
        return _ENV.get_template("audit.txt").render(**_context(report))
    if format == "markdown":
        return _ENV.get_template("audit.md").render(**_context(report), images=images or {})
    return _ENV.get_template("audit.html").render(**_context(report))


def write(report: Report, format: Format, path: Path) -> list[Path]:
    """Write the report to ``path``; Markdown's screenshots go beside it (``<stem>-banner-1.png``, ...).
    Returns every file written."""
    written = [path]
    images: dict[int, str] = {}
    if format == "markdown":
        for index, shot in enumerate(report.banner.screenshots, 1):
            image = path.with_name(f"{path.stem}-banner-{index}.png")
            image.write_bytes(shot.png)
            images[index - 1] = image.name
            written.append(image)
    path.write_text(render(report, format, images=images), encoding="utf-8")
    return written


def as_data(report: Report) -> dict[str, Any]:
    """The whole report as JSON-ready data (screenshots by caption only)."""
    data: dict[str, Any] = _plain(dataclasses.asdict(report))
    data["banner"]["screenshots"] = [shot.caption for shot in report.banner.screenshots]
    data.update(passed=report.passed, errors=report.errors, warnings=report.warnings)
    for visitor, cookies in zip(data["visitors"], (v.cookies for v in report.visitors), strict=True):
        for plain, cookie in zip(visitor["cookies"], cookies, strict=True):
            plain["lifetime_seconds"] = None if cookie.lifetime is None else round(cookie.lifetime)
            plain["declared"] = report.declared.get(cookie.name, "")
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return value


def _context(report: Report) -> dict[str, Any]:
    return {"r": report, "checks": CHECKS}


def _lifetime(cookie: Cookie) -> str:
    """How long it lives and until when, as seen: "365 days (to 2027-12-06)"."""
    if cookie.lifetime is None or cookie.expires is None:
        return "session"
    until = datetime.fromtimestamp(cookie.expires, UTC)
    return f"{duration_text(cookie.lifetime)} (to {until:%Y-%m-%d})"


def _flags(cookie: Cookie) -> str:
    on = [flag for flag, set_ in (("HttpOnly", cookie.http_only), ("Secure", cookie.secure)) if set_]
    return ", ".join([*on, f"SameSite={cookie.same_site}"])


def _data_uri(shot: Screenshot) -> str:
    return "data:image/png;base64," + base64.b64encode(shot.png).decode("ascii")


def _cell(text: object) -> str:
    """Text that stays text inside one Markdown table cell: Markdown viewers render HTML, and what the
    audited site wrote (storage keys, addresses) is not to be rendered."""
    return html.escape(" ".join(str(text).split()), quote=False).replace("|", "\\|")


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


# HTML is escaped; the text and Markdown templates are not HTML (Markdown cells go through `cell`).
_ENV = Environment(
    loader=PackageLoader("koekje.middleware.audit", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_ENV.filters.update(lifetime=_lifetime, flags=_flags, data_uri=_data_uri, cell=_cell, when=_when)
