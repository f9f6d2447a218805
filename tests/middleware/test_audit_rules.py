"""The audit's rules, from evidence written by hand: which findings a browser's observations make."""

from __future__ import annotations

import time

import pytest

from koekje.middleware import Config
from koekje.middleware.audit import BannerCheck, Cookie, Request, StorageItem, Visitor, declarations_of
from koekje.middleware.audit.evidence import PageLoad
from koekje.middleware.audit.rules import LIFETIME_SLACK_SECONDS, duration_text, findings
from koekje.middleware.config import ConsentSection, CookieSection

PAGE = "https://www.example.nl/"
NOW = time.time()
GOOD_BANNER = BannerCheck(
    found=True,
    reject_on_first_layer=True,
    reject_size=(120, 40),
    accept_size=(120, 40),
    offered=("analytics", "personalization", "marketing"),
)
DECLARATIONS = declarations_of(
    Config(
        consent=ConsentSection(
            cookies=(
                CookieSection(name="_ga*", category="analytics", duration="13 months"),
                CookieSection(name="_fbp", category="marketing", duration="3 months"),
                CookieSection(name="cart", category="necessary", duration="1 hour"),
                CookieSection(name="lang", category="necessary", duration="session"),
            )
        )
    )
)


def cookie(name: str, lifetime: float | None = 3600, page: str = PAGE) -> Cookie:
    expires = None if lifetime is None else NOW + lifetime
    return Cookie(name, "www.example.nl", "/", expires, False, False, "Lax", page, NOW, ("script",))


def visitor(
    name: str, *cookies: Cookie, granted: tuple[str, ...] = (), requests: tuple[Request, ...] = ()
) -> Visitor:
    choice = {"no choice": "none", "rejected all": "reject", "accepted all": "accept"}.get(name, "category")
    return Visitor(name, choice, ("necessary", *granted), cookies=cookies, requests=requests)  # type: ignore[arg-type]


def rules_found(*visitors: Visitor, banner: BannerCheck = GOOD_BANNER) -> list[tuple[str, str]]:
    return [(f.rule, f.visitor) for f in findings(visitors, banner, DECLARATIONS)]


def test_a_cookie_counts_against_every_visitor_who_did_not_grant_its_category() -> None:
    ga = cookie("_ga_X1")  # matched by the pattern "_ga*"
    everything = ("analytics", "personalization", "marketing")
    found = rules_found(
        visitor("no choice", ga),
        visitor("rejected all", ga),
        visitor("accepted all", ga, granted=everything),
        visitor("granted analytics only", ga, granted=("analytics",)),
        visitor("granted marketing only", ga, granted=("marketing",)),
    )
    assert found == [
        ("cookie-without-consent", "no choice"),
        ("cookie-without-consent", "rejected all"),
        ("cookie-without-consent", "granted marketing only"),
    ]


def test_strictly_necessary_cookies_and_koekjes_own_pass_for_everyone() -> None:
    own = (cookie("koekje_consent", 365 * 86400), cookie("__Host-koekje_consent", 365 * 86400))
    assert rules_found(visitor("rejected all", cookie("cart"), cookie("lang", None), *own)) == []
    # koekje's visit cookie is declared too: statistics, 30 minutes.
    assert (
        rules_found(visitor("granted analytics only", cookie("koekje_visit", 1800), granted=("analytics",)))
        == []
    )
    assert rules_found(visitor("no choice", cookie("koekje_visit", 1800))) == [
        ("cookie-without-consent", "no choice")
    ]


def test_an_undeclared_cookie_is_one_finding_that_names_every_visitor_it_was_seen_for() -> None:
    mystery = cookie("mystery")
    found = findings(
        [
            visitor("no choice", mystery),
            visitor("accepted all", mystery, granted=("analytics", "personalization", "marketing")),
            visitor("granted analytics only", mystery, granted=("analytics",)),
        ],
        GOOD_BANNER,
        DECLARATIONS,
    )
    assert [(f.rule, f.visitor) for f in found] == [
        ("cookie-without-consent", "no choice"),  # beyond the necessary, as far as anyone can tell
        ("undeclared-cookie", ""),
    ]
    assert found[1].evidence[-1] == "seen for: no choice, accepted all, granted analytics only"


def test_a_cookie_outliving_its_declaration_is_found_once_by_its_longest_sighting() -> None:
    hour = 3600
    assert rules_found(visitor("no choice", cookie("cart", hour + LIFETIME_SLACK_SECONDS - 1))) == []
    longer = cookie("cart", 2 * hour, page=PAGE + "b")
    found = findings(
        [
            visitor("no choice", cookie("cart", hour + LIFETIME_SLACK_SECONDS + 1)),
            visitor("rejected all", longer),
        ],
        GOOD_BANNER,
        DECLARATIONS,
    )
    assert [(f.rule, f.page, f.message) for f in found] == [
        (
            "lifetime-exceeds-declaration",
            PAGE + "b",
            "cookie cart lives 2 hours, but koekje.toml declares '1 hour'",
        )
    ]
    # Declared for the session, it must not outlive it; a session cookie outlives no declaration.
    assert rules_found(visitor("no choice", cookie("lang", 60))) == [("lifetime-exceeds-declaration", "")]
    assert rules_found(visitor("no choice", cookie("cart", None))) == []


def test_third_party_requests_count_before_a_choice_and_after_a_refusal_per_host() -> None:
    requests = (
        Request("tracker.example", "script", "https://tracker.example/t.js", PAGE),
        Request("tracker.example", "pixel", "https://tracker.example/p.gif", PAGE),
        Request("fonts.example", "font", "https://fonts.example/a.woff2", PAGE),
    )
    everything = ("analytics", "personalization", "marketing")
    found = findings(
        [
            visitor("no choice", requests=requests),
            visitor("rejected all", requests=requests[:1]),
            visitor("accepted all", granted=everything, requests=requests),
        ],
        GOOD_BANNER,
        DECLARATIONS,
    )
    assert [(f.visitor, f.message.split(" was")[0]) for f in found] == [
        ("no choice", "tracker.example"),
        ("no choice", "fonts.example"),
        ("rejected all", "tracker.example"),
    ]
    assert found[0].message.startswith("tracker.example was contacted (script, pixel)")


def test_web_storage_without_consent_is_a_warning() -> None:
    item = StorageItem("localStorage", "https://www.example.nl", "seen_intro", PAGE)
    [warning] = findings(
        [Visitor("no choice", "none", ("necessary",), storage=(item,))], GOOD_BANNER, DECLARATIONS
    )
    assert warning.severity == "warning" and warning.rule == "storage-without-consent"
    accepted = Visitor("accepted all", "accept", ("necessary", "analytics"), storage=(item,))
    assert findings([accepted], GOOD_BANNER, DECLARATIONS) == []


@pytest.mark.parametrize(
    ("banner", "expected"),
    [
        (BannerCheck(found=False), ["banner-missing"]),
        (
            BannerCheck(found=True, reject_on_first_layer=False, offered=GOOD_BANNER.offered),
            ["reject-not-on-first-layer"],
        ),
        (
            BannerCheck(
                found=True, reject_on_first_layer=True, pre_ticked=("analytics",), offered=("analytics",)
            ),
            ["pre-ticked-choice", "category-without-choice", "category-without-choice"],
        ),
        (
            BannerCheck(
                found=True,
                reject_on_first_layer=True,
                reject_size=(79, 10),  # 79% of the acceptance's area
                accept_size=(100, 10),
                offered=GOOD_BANNER.offered,
            ),
            ["reject-less-prominent"],
        ),
        (GOOD_BANNER, []),
    ],
)
def test_the_banner_basics(banner: BannerCheck, expected: list[str]) -> None:
    assert [f.rule for f in findings([], banner, DECLARATIONS)] == expected


def test_a_refusal_80_percent_as_large_is_prominent_enough() -> None:
    banner = BannerCheck(
        found=True,
        reject_on_first_layer=True,
        reject_size=(80, 10),
        accept_size=(100, 10),
        offered=GOOD_BANNER.offered,
    )
    assert findings([], banner, DECLARATIONS) == []


def test_a_choice_not_kept_and_a_page_that_did_not_load_are_reported_errors_first() -> None:
    broken = Visitor("rejected all", "reject", ("necessary",), problem="the banner has no 'reject' button")
    failing = Visitor(
        "no choice",
        "none",
        ("necessary",),
        pages=(PageLoad(PAGE, 200), PageLoad(PAGE + "gone", 404), PageLoad(PAGE + "x", None, "net::ERR")),
    )
    found = findings([failing, broken], GOOD_BANNER, DECLARATIONS)
    assert [(f.severity, f.rule, f.page) for f in found] == [
        ("error", "choice-not-kept", ""),
        ("warning", "page-failed", PAGE + "gone"),
        ("warning", "page-failed", PAGE + "x"),
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (86399.5, "1 day"),
        (90 * 86400 - 3, "90 days"),
        (7200, "2 hours"),
        (1800, "30 minutes"),
        (12, "12 seconds"),
    ],
)
def test_lifetimes_read_in_whole_units(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text
