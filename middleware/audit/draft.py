"""``--update-declaration``: the cookies an audit saw that koekje.toml does not declare, drafted as
``[[consent.cookies]]`` entries for the owner to finish.

What only the owner knows (purpose, duration, who provides it) is left as TODO, with what the audit observed
beside it. The draft is appended to the file commented out, so the site keeps running on the declaration it
has; an entry counts once the owner fills it in and removes the ``#``. A TODO left in an entry that is
switched on stops the site at start-up with the key named, so a draft cannot go live unfinished.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from koekje.middleware.declarations import NECESSARY

from .evidence import Cookie, Report, Visitor
from .rules import duration_text
from .site import Site

# An entry's name line, commented out as the draft writes it: a name already drafted is not drafted again.
_DRAFTED = re.compile(r'^# name = "((?:[^"\\]|\\.)*)"', re.MULTILINE)


def draft(report: Report, languages: Sequence[str], *, already: str = "") -> tuple[str, list[str]]:
    """The draft (TOML, commented out) of every undeclared cookie in ``report`` that ``already`` (the
    configuration's text) has not drafted yet, and their names; ("", []) when there is nothing to draft."""
    skip = set(_DRAFTED.findall(already))
    sightings: dict[str, list[tuple[Visitor, Cookie]]] = {}
    for visitor in report.visitors:
        for cookie in visitor.cookies:
            if not report.declared.get(cookie.name) and cookie.name not in skip:
                sightings.setdefault(cookie.name, []).append((visitor, cookie))
    if not sightings:
        return "", []
    site = Site(report.site)
    lines = [
        "",
        "# " + "-" * 100,
        f"# DRAFT by `koekje audit` of {report.site} on {_day(report.started)}: cookies the site's pages set",
        "# that this file does not declare. NOT IN EFFECT: fill in every TODO (and check the category),",
        '# then remove the "# " in front of the entry\'s lines. Until then they are reported as undeclared.',
        "# " + "-" * 100,
    ]
    for name, seen in sightings.items():
        lines += _entry(name, seen, site, languages)
    return "\n".join(lines) + "\n", list(sightings)


def append(path: Path, text: str) -> None:
    """Add ``text`` at the end of the file; nothing in it is changed or lost."""
    existing = path.read_text(encoding="utf-8")
    with path.open("a", encoding="utf-8") as file:
        file.write(("" if existing.endswith("\n") or not existing else "\n") + text)


def _entry(name: str, seen: list[tuple[Visitor, Cookie]], site: Site, languages: Sequence[str]) -> list[str]:
    """One commented-out entry. Notes ride on the key lines, so removing "# " leaves valid TOML."""
    cookie = max((c for _, c in seen), key=lambda c: -1 if c.lifetime is None else c.lifetime)
    visitors = ", ".join(dict.fromkeys(v.name for v, _ in seen))
    lifetime = "session" if cookie.lifetime is None else duration_text(cookie.lifetime)
    party = "first" if site.owns(cookie.domain.lstrip(".")) else "third"
    purposes = ", ".join(f'{lang} = ""' for lang in languages)
    return [
        "",
        "# [[consent.cookies]]",
        f"# name = {_string(name)}   # first seen on {cookie.page}, set by {'; '.join(cookie.set_by)}",
        f'# category = "TODO"   # {_category_hint(seen)}; seen for: {visitors}',
        '# provider = ""   # TODO: who sets it ("" means this site), e.g. "Google Ireland Limited"',
        f"# purpose = {{ {purposes} }}   # TODO: what it is for, in each language (`koekje check` asks)",
        f'# duration = "TODO"   # seen: {lifetime}; write "session" or e.g. "13 months"',
        f'# party = "{party}"   # its domain: {cookie.domain}',
    ]


def _category_hint(seen: list[tuple[Visitor, Cookie]]) -> str:
    """What the visitors it was seen for suggest about its category."""
    granted = [set(v.granted) - {NECESSARY} for v, _ in seen]
    if any(not g for g in granted):
        return f'"{NECESSARY}" only if the site cannot work without it (it was set without consent)'
    common = set.intersection(*granted)
    if len(common) == 1 and any(len(g) == 1 for g in granted):
        return f"it was set once {next(iter(common))} was granted"
    return "which purpose does it serve? (`koekje audit --per-category` narrows it down)"


def _string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z")
