"""``--update-declaration``'s draft: appended, commented out, unfinished parts marked, never twice;
switched on unfinished it stops the site, finished it declares the cookie."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import SECRET, audit_report

from koekje.middleware import ConfigError, load_config
from koekje.middleware.audit.draft import append, draft

CONFIG = '[banner]\nlanguages = ["nl", "en"]\n\n[[consent.cookies]]\nname = "_ga"\ncategory = "analytics"\nduration = "13 months"\npurpose = { nl = "Telt bezoekers.", en = "Counts visitors." }'  # noqa: E501


def switched_on(text: str) -> str:
    """What an owner does with an entry: remove the "# " in front of its lines."""
    head, entry = text.split("# [[consent.cookies]]", 1)
    return head + "\n".join(
        line.removeprefix("# ") for line in ("# [[consent.cookies]]" + entry).splitlines()
    )


def test_the_draft_names_what_was_seen_and_leaves_the_rest_to_the_owner() -> None:
    text, names = draft(audit_report(), ["nl", "en"])
    assert names == ["mystery"]  # _ga is declared
    assert "DRAFT by `koekje audit` of https://www.example.nl/ on 2026-11-25 10:00 UTC" in text
    assert "NOT IN EFFECT" in text
    lines = [line for line in text.splitlines() if line.startswith("# ") and " = " in line]
    assert lines == [
        '# name = "mystery"   # first seen on https://www.example.nl/, set by script https://cdn.tracker.example/t.js',
        '# category = "TODO"   # "necessary" only if the site cannot work without it '
        "(it was set without consent); seen for: no choice, accepted all",
        '# provider = ""   # TODO: who sets it ("" means this site), e.g. "Google Ireland Limited"',
        '# purpose = { nl = "", en = "" }   # TODO: what it is for, in each language (`koekje check` asks)',
        '# duration = "TODO"   # seen: 1 day; write "session" or e.g. "13 months"',
        '# party = "first"   # its domain: www.example.nl',
    ]


def test_appended_it_changes_nothing_and_the_site_still_starts(tmp_path: Path) -> None:
    path = tmp_path / "koekje.toml"
    path.write_text(CONFIG)  # no newline at the end
    text, _ = draft(audit_report(), ["nl", "en"], already=path.read_text())
    append(path, text)
    assert path.read_text().startswith(CONFIG + "\n")
    config = load_config(path, {"KOEKJE_SECRET_KEY": SECRET})
    assert [c.name for c in config.consent.cookies] == ["_ga"]
    assert draft(audit_report(), ["nl", "en"], already=path.read_text()) == ("", [])  # drafted already


def test_switched_on_unfinished_it_stops_the_site_and_finished_it_declares_the_cookie(tmp_path: Path) -> None:
    path = tmp_path / "koekje.toml"
    text, _ = draft(audit_report(), ["nl", "en"])
    path.write_text(CONFIG + "\n" + switched_on(text))
    with pytest.raises(ConfigError, match="duration 'TODO'"):
        load_config(path, {"KOEKJE_SECRET_KEY": SECRET})
    finished = (
        switched_on(text)
        .replace('category = "TODO"', 'category = "marketing"')
        .replace('duration = "TODO"', 'duration = "1 day"')
        .replace('nl = "", en = ""', 'nl = "Onthoudt de advertentie.", en = "Remembers the ad."')
    )
    path.write_text(CONFIG + "\n" + finished)
    config = load_config(path, {"KOEKJE_SECRET_KEY": SECRET})
    rule = config.declarations().rule("mystery")
    assert rule is not None and rule.category == "marketing" and rule.max_seconds == 86400


def test_a_cookie_seen_only_once_a_category_was_granted_suggests_that_category() -> None:
    report = audit_report()
    accepted = report.visitors[2]
    only_marketing = type(accepted)(
        "granted marketing only", "category", ("necessary", "marketing"), cookies=accepted.cookies
    )
    text, _ = draft(
        audit_report(visitors=(accepted, only_marketing), declared={"_ga": "", "mystery": ""}), ["en"]
    )
    assert '# category = "TODO"   # it was set once marketing was granted' in text
    assert text.count("# [[consent.cookies]]") == 2  # _ga and mystery
