"""``koekje notice``: the section of the site's privacy policy about what koekje does, generated from the
configuration, so that the policy says what the software really does (purposes, legal bases, retention,
cookies, processors, and how to exercise each right)."""

from __future__ import annotations

from datetime import date

from koekje.banner import render_notice

from .config import Config
from .shown import BannerContent

NOTICE_LANGUAGES = ("nl", "en")


def banner_content(config: Config) -> BannerContent:
    """What the banner shows, in every language of the site, from the configuration."""
    consent = config.consent
    return BannerContent(
        config.declarations(),
        languages=config.banner.languages,
        categories=consent.categories,
        policy_revision=consent.policy_revision,
        privacy_url=config.banner.privacy_url,
        consent_cookie=consent.cookie,
        consent_days=consent.max_age_days,
        overrides=config.banner.texts,
    )


def notice(config: Config, lang: str, today: date) -> str:
    if lang not in NOTICE_LANGUAGES:
        raise ValueError(f"the notice is written in {' and '.join(NOTICE_LANGUAGES)}")
    a = config.analytics
    return render_notice(
        lang,
        c=banner_content(config).body(lang),
        site=config.site.name or config.site.id,
        today=today.isoformat(),
        prefix=config.site.prefix,
        ipv4=config.geo.ipv4_prefix,
        ipv6=config.geo.ipv6_prefix,
        raw_days=a.raw_retention_days,
        aggregate_days=a.aggregate_retention_days,
        ledger_days=a.ledger_retention_days,
        consent_days=config.consent.max_age_days,
        requests_days=a.request_log_retention_days,
        processors=config.site.processors,
        embedded=not a.dsn,  # on this site's own machine
    )
