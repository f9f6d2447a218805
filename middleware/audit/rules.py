"""From evidence to findings: what the audit holds against the site, each with its page and its evidence.

Errors are what the law or the site's own declaration rules out: a cookie beyond the strictly necessary
without consent, a request to another party before consent, a cookie the declaration does not name or that
lives longer than declared, a banner without a refusal on its first layer or with choices ticked in advance.
Warnings are what a person must judge: web storage (its purpose is not declared anywhere), a refusal that is
harder to see than the acceptance, a page that did not load.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from koekje.middleware.declarations import NECESSARY, Declarations

from .evidence import BannerCheck, Cookie, Finding, Request, Visitor

# Browsers and clocks round: a cookie is not held to have outlived its declaration by less than this.
LIFETIME_SLACK_SECONDS = 120
# A refusal whose button is this much smaller than the acceptance's is less prominent (EDPB guidelines
# 03/2022 on deceptive design: the options must be equally visible).
PROMINENCE_RATIO = 0.8


def findings(
    visitors: Sequence[Visitor],
    banner: BannerCheck,
    declarations: Declarations,
) -> list[Finding]:
    """Every finding, errors first, in a stable order."""
    found = [
        *_banner(banner, declarations),
        *_visits(visitors),
        *_without_consent(visitors, declarations),
        *_undeclared(visitors, declarations),
        *_lifetimes(visitors, declarations),
        *_third_parties(visitors),
        *_storage(visitors),
    ]
    return sorted(found, key=lambda f: f.severity != "error")  # stable: each group keeps its own order


def _banner(banner: BannerCheck, declarations: Declarations) -> Iterable[Finding]:
    if not banner.found:
        yield Finding(
            "error",
            "banner-missing",
            "no koekje banner was shown to a visitor who had not chosen: nobody can give or refuse consent",
        )
        return
    if not banner.reject_on_first_layer:
        yield Finding(
            "error",
            "reject-not-on-first-layer",
            "the banner's first layer has no visible way to refuse: refusing must be as easy as accepting",
        )
    if banner.reject_size and banner.accept_size:
        reject, accept = (w * h for w, h in (banner.reject_size, banner.accept_size))
        if accept and reject < PROMINENCE_RATIO * accept:
            yield Finding(
                "warning",
                "reject-less-prominent",
                "the refusal button is smaller than the acceptance button",
                evidence=(
                    f"reject {_size(banner.reject_size)}, accept {_size(banner.accept_size)} (CSS pixels)",
                ),
            )
    if banner.pre_ticked:
        yield Finding(
            "error",
            "pre-ticked-choice",
            "choices are ticked before the visitor chose: consent must be given actively",
            evidence=tuple(f"ticked: {choice}" for choice in banner.pre_ticked),
        )
    for category in declarations.categories:
        if category != NECESSARY and category not in banner.offered:
            yield Finding(
                "error",
                "category-without-choice",
                f"koekje.toml declares the category {category!r}, but the banner offers no choice for it",
            )


def _visits(visitors: Sequence[Visitor]) -> Iterable[Finding]:
    for visitor in visitors:
        if visitor.problem:
            yield Finding("error", "choice-not-kept", visitor.problem, visitor=visitor.name)
        for load in visitor.pages:
            if load.error or load.status is None or load.status >= 400:
                yield Finding(
                    "warning",
                    "page-failed",
                    "a page did not load, so it was not checked for this visitor",
                    visitor=visitor.name,
                    page=load.url,
                    evidence=(load.error or f"HTTP status {load.status}",),
                )


def _without_consent(visitors: Sequence[Visitor], declarations: Declarations) -> Iterable[Finding]:
    """Cookies of a purpose the visitor did not grant. An undeclared cookie has no known purpose, so for a
    visitor who granted nothing it is beyond the strictly necessary too."""
    for visitor in visitors:
        refused_all = set(visitor.granted) == {NECESSARY}
        for cookie in visitor.cookies:
            rule = declarations.rule(cookie.name)
            if rule is None and not refused_all:
                continue  # the undeclared-cookie finding covers it
            category = rule.category if rule else "undeclared"
            if category == NECESSARY or category in visitor.granted:
                continue
            yield Finding(
                "error",
                "cookie-without-consent",
                f"cookie {cookie.name} ({category}) was set for a visitor who "
                + ("made no choice" if visitor.choice == "none" else f"granted {_granted(visitor)}"),
                visitor=visitor.name,
                page=cookie.page,
                evidence=_cookie_evidence(cookie),
            )


def _undeclared(visitors: Sequence[Visitor], declarations: Declarations) -> Iterable[Finding]:
    seen: dict[str, list[tuple[Visitor, Cookie]]] = defaultdict(list)
    for visitor in visitors:
        for cookie in visitor.cookies:
            if declarations.rule(cookie.name) is None:
                seen[cookie.name].append((visitor, cookie))
    for name, sightings in seen.items():
        first = sightings[0][1]
        yield Finding(
            "error",
            "undeclared-cookie",
            f"cookie {name} is not declared in koekje.toml, so the cookie declaration visitors read is "
            "incomplete (`koekje audit --update-declaration` drafts its entry)",
            page=first.page,
            evidence=(
                *_cookie_evidence(first),
                "seen for: " + ", ".join(dict.fromkeys(visitor.name for visitor, _ in sightings)),
            ),
        )


def _lifetimes(visitors: Sequence[Visitor], declarations: Declarations) -> Iterable[Finding]:
    longest: dict[str, Cookie] = {}
    for visitor in visitors:
        for cookie in visitor.cookies:
            known = longest.get(cookie.name)
            if known is None or _longer(cookie, known):
                longest[cookie.name] = cookie
    for name, cookie in longest.items():
        rule = declarations.rule(name)
        if rule is None:
            continue
        lifetime = cookie.lifetime
        if lifetime is None:
            continue  # a session cookie outlives no declaration
        if rule.max_seconds is None or lifetime > rule.max_seconds + LIFETIME_SLACK_SECONDS:
            yield Finding(
                "error",
                "lifetime-exceeds-declaration",
                f"cookie {name} lives {duration_text(lifetime)}, but koekje.toml declares {rule.duration!r}",
                page=cookie.page,
                evidence=_cookie_evidence(cookie),
            )


def _third_parties(visitors: Sequence[Visitor]) -> Iterable[Finding]:
    for visitor in visitors:
        if visitor.choice not in ("none", "reject"):
            continue
        hosts: dict[str, list[Request]] = defaultdict(list)
        for request in visitor.requests:
            hosts[request.host].append(request)
        for host, requests in hosts.items():
            kinds = ", ".join(dict.fromkeys(r.kind for r in requests))
            yield Finding(
                "error",
                "third-party-without-consent",
                f"{host} was contacted ({kinds}) for a visitor who "
                + _refusal(visitor)
                + ": it learns their IP address and the page",
                visitor=visitor.name,
                page=requests[0].page,
                evidence=tuple(f"{r.kind} {r.url} (on {r.page})" for r in requests[:5])
                + ((f"... and {len(requests) - 5} more",) if len(requests) > 5 else ()),
            )


def _refusal(visitor: Visitor) -> str:
    """How a visitor who granted nothing came to (for a finding's text)."""
    return "made no choice" if visitor.choice == "none" else "rejected everything"


def _storage(visitors: Sequence[Visitor]) -> Iterable[Finding]:
    for visitor in visitors:
        if visitor.choice not in ("none", "reject"):
            continue
        for item in visitor.storage:
            yield Finding(
                "warning",
                "storage-without-consent",
                f"{item.area} key {item.key!r} was written for a visitor who "
                + _refusal(visitor)
                + ": fine only if it is strictly necessary",
                visitor=visitor.name,
                page=item.page,
                evidence=(f"origin {item.origin}",),
            )


def _longer(a: Cookie, b: Cookie) -> bool:
    if a.lifetime is None:
        return False
    return b.lifetime is None or a.lifetime > b.lifetime


def _granted(visitor: Visitor) -> str:
    optional = [c for c in visitor.granted if c != NECESSARY]
    return " and ".join(optional) if optional else "nothing (rejected everything)"


def _cookie_evidence(cookie: Cookie) -> tuple[str, ...]:
    lifetime = "session" if cookie.lifetime is None else duration_text(cookie.lifetime)
    flags = [flag for flag, on in (("HttpOnly", cookie.http_only), ("Secure", cookie.secure)) if on]
    return (
        f"domain {cookie.domain}, path {cookie.path}, lifetime {lifetime}, "
        + ", ".join([*flags, f"SameSite={cookie.same_site}"]),
        "set by " + ("; ".join(cookie.set_by) or "an unknown source"),
    )


def duration_text(seconds: float) -> str:
    """A lifetime in the largest whole unit a reader thinks in: "395 days", "30 minutes"."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size * 0.99:  # a day-long cookie seen a few seconds after it was set is "1 day"
            count = round(seconds / size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{round(seconds)} seconds"


def _size(size: tuple[float, float]) -> str:
    return f"{size[0]:.0f}x{size[1]:.0f}"
