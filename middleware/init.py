"""``koekje init``: a commented ``koekje.toml`` for a new site, and a uvicorn logging configuration that
keeps full client addresses out of the server's log.

What it writes is loaded by the same loader the site uses before it is put in place, so a site started with
it starts. It never overwrites a file unless told to (``--force``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from koekje.banner import available_languages

from .config import SECRET_ENV, ConfigError, load_config
from .logs import LOG_CONFIG

LOG_CONFIG_NAME = "uvicorn-logging.json"
_SITE_ID = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Answers:
    """What the file says about the site; the defaults are what ``koekje init`` writes without asking."""

    site_id: str = "default"
    name: str = ""
    languages: Sequence[str] = ("nl", "en")
    privacy_url: str = ""
    trusted_proxies: Sequence[str] = field(default_factory=tuple)
    geo_database: str = ""


def site_id_for(directory: Path) -> str:
    """A site id from the directory's name (the site's project folder), as ``site.id`` allows it."""
    cleaned = _SITE_ID.sub("-", directory.resolve().name).strip("-.")[:64]
    return cleaned or "default"


def render(answers: Answers) -> str:
    """The commented koekje.toml."""

    def q(value: str) -> str:  # a TOML basic string (JSON's escapes are TOML's)
        return json.dumps(value, ensure_ascii=False)

    def q_list(values: Sequence[str]) -> str:
        return "[" + ", ".join(q(v) for v in values) + "]"

    proxies = (
        f"trusted_proxies = {q_list(answers.trusted_proxies)}"
        if answers.trusted_proxies
        else '# trusted_proxies = ["127.0.0.1/32"]'
    )
    privacy = (
        f"privacy_url = {q(answers.privacy_url)}" if answers.privacy_url else '# privacy_url = "/privacy"'
    )
    geo = (
        f"database = {q(answers.geo_database)}"
        if answers.geo_database
        else '# database = "/var/lib/GeoIP/GeoLite2-Country.mmdb"'
    )

    # The examples in every language the banner offers: `koekje check` wants each text in each of them
    # (found by a helper: switched on as written, the examples failed the check).
    def texts(key: str, which: int) -> str:
        return "\n".join(
            f"# {key}.{lang} = {q(_EXAMPLES.get(lang, _EXAMPLES['en'])[which])}" for lang in answers.languages
        )

    return _TEMPLATE.format(
        youtube=texts("title", 0) + "\n" + texts("purpose", 1),
        ga=texts("purpose", 2),
        site_id=q(answers.site_id),
        name=q(answers.name),
        proxies=proxies,
        languages=q_list(answers.languages),
        privacy=privacy,
        geo=geo,
        secret=SECRET_ENV,
    )


def ask(read: Callable[[str], str], directory: Path) -> Answers:
    """A few questions (``--interactive``); an empty answer keeps the default shown in brackets."""
    name = read("The site's or organisation's name, as the privacy notice says it []: ").strip()
    default_id = site_id_for(directory) if not name else _SITE_ID.sub("-", name.lower()).strip("-.")[:64]
    site_id = read(f"Site id, stored with each page view [{default_id}]: ").strip() or default_id
    offered = ", ".join(sorted(available_languages()))
    languages = _list(read(f"Banner languages, the first is the default ({offered}) [nl, en]: ")) or [
        "nl",
        "en",
    ]
    privacy_url = read("Your privacy statement, a path or an address (e.g. /privacy) []: ").strip()
    proxies = _list(read("Reverse proxies in front of the site, as CIDRs (e.g. 127.0.0.1/32) []: "))
    geo = read("A GeoLite2 or DB-IP country database (.mmdb), if you have one []: ").strip()
    return Answers(site_id, name, tuple(languages), privacy_url, tuple(proxies), geo)


def _list(answer: str) -> list[str]:
    return [part.strip() for part in answer.replace(" ", ",").split(",") if part.strip()]


def write(path: Path, answers: Answers, *, force: bool = False) -> list[Path]:
    """Write koekje.toml at ``path`` and the logging configuration beside it; returns the files written.
    The configuration is loaded (with a throwaway key) before it is put in place: a file koekje would
    refuse is never left behind. Refuses to replace an existing koekje.toml without ``force``; an existing
    logging configuration is kept unless ``force``."""
    if path.exists() and not force:
        raise ConfigError(f"{path} exists already: koekje init leaves it alone (--force replaces it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    checked = _checked(path, render(answers))
    try:
        if force:
            os.replace(checked, path)
        else:
            os.link(checked, path)  # fails if the file appeared meanwhile: never overwritten by a race
    finally:
        checked.unlink(missing_ok=True)
    written = [path]
    log_config = path.parent / LOG_CONFIG_NAME
    if force or not log_config.exists():
        log_config.write_text(json.dumps(LOG_CONFIG, indent=2) + "\n", encoding="utf-8")
        written.append(log_config)
    return written


def _checked(path: Path, text: str) -> Path:
    """``text`` in a temporary file beside ``path`` (relative paths resolve the same), loaded as the site
    would load it; the file, or ConfigError naming the problem."""
    descriptor, name = tempfile.mkstemp(prefix=".koekje-init-", suffix=".toml", dir=path.parent)
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, 0o666 & ~_umask())  # as any file the user writes (mkstemp's is 0600)
        load_config(temporary, {SECRET_ENV: secrets.token_urlsafe(32)})
    except (ConfigError, OSError) as exc:
        temporary.unlink(missing_ok=True)
        message = str(exc).replace(str(temporary), str(path))
        refused = f"koekje init: the answers make a configuration koekje refuses: {message}"
        raise ConfigError(refused) from None
    return temporary


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def next_steps(written: Sequence[Path]) -> str:
    """What to do after ``koekje init``: the secret key first."""
    toml = written[0]
    log_config = toml.parent / LOG_CONFIG_NAME
    kept = "" if log_config in written else f" ({log_config.name} was there already and is kept)"
    return f"""wrote {", ".join(str(p) for p in written)}{kept}

Next:
  1. Set the secret key that signs the consent cookie (at least 32 random characters; keep it out of
     version control; a comma-separated list rotates keys, newest last):
       export {SECRET_ENV}="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
  2. Add the middleware to your ASGI app:
       from koekje.middleware import KoekjeMiddleware
       app = KoekjeMiddleware(app, config="{toml}")
  3. Start it with koekje's log configuration (uvicorn's default access log writes full IP addresses):
       uvicorn yourapp:app --log-config {log_config}
  4. Check the configuration against koekje's rules: koekje check
"""


# The template's example declarations, in the languages koekje's banner has: a service's title and
# purpose, a cookie's purpose.
_EXAMPLES = {
    "en": (
        "YouTube videos",
        "Plays the videos embedded in our pages; YouTube sets its own cookies.",
        "Google Analytics: counts visits",
    ),
    "nl": (
        "YouTube-video's",
        "Speelt de video's in onze pagina's af; YouTube plaatst daarbij eigen cookies.",
        "Google Analytics: telt bezoeken",
    ),
    "de": (
        "YouTube-Videos",
        "Spielt die in unsere Seiten eingebetteten Videos ab; YouTube setzt dabei eigene Cookies.",
        "Google Analytics: zählt Besuche",
    ),
    "fr": (
        "Vidéos YouTube",
        "Lit les vidéos intégrées à nos pages ; YouTube dépose ses propres cookies.",
        "Google Analytics : compte les visites",
    ),
}

_TEMPLATE = """\
# koekje's configuration for this site, written by `koekje init`.
#
# Every key is checked when the site starts: a typo is an error that names the key. Every key, its default
# and why: the configuration reference (docs/configuration.md). Lines starting with '#' are examples to
# switch on. Secrets are never in this file: the signing key comes from {secret}.
# After a change, `koekje check` holds the file to koekje's rules.

[site]
# Stored with each page view; one store can hold several sites.
id = {site_id}
# The site's or organisation's name, as the privacy notice (`koekje notice`) says it.
name = {name}
# Behind a reverse proxy (nginx, Caddy, a load balancer), list its network, so that koekje believes its
# X-Forwarded-For and sees the visitor's address (truncated at once) instead of the proxy's.
{proxies}
# Files that are never pages and set no cookies (a StaticFiles mount): koekje lets their requests by
# untouched, which saves them most of what koekje costs a request. Only paths that set no cookies.
# asset_paths = ["/static"]

[consent]
# The purposes the banner offers; "necessary" is always on and cannot be refused.
categories = ["analytics", "personalization", "marketing"]
# Raise this when your cookie policy changes: every visitor is asked again.
policy_revision = 1
# How long a choice lasts (days; at most 396, 13 months).
max_age_days = 365
# Cookies your site sets that are not declared below: "report" lets them through and lists them
# (`koekje cookies`), "strict" removes them, "off" leaves your cookies alone.
enforce = "report"

# Declare every cookie your site or the scripts on it set: the banner lists them, and koekje removes them
# from the responses to visitors who did not allow their purpose. `koekje audit` finds the ones you missed.
#
# [consent.services.youtube]
# category = "marketing"
# provider = "Google Ireland Limited"
{youtube}
#
# [[consent.cookies]]
# name = "_ga*"                 # exact, or a prefix followed by '*'
# category = "analytics"        # or service = "..."
# provider = "Google Ireland Limited"
{ga}
# duration = "13 months"
# party = "first"

[banner]
# The languages offered (koekje has nl, en, de and fr); the first is the default.
languages = {languages}
# Your privacy statement, linked from the banner: a path on this site or an address.
{privacy}

[analytics]
# The embedded store and the spool (relative to this file). Keep both out of the web root; back them up.
data_dir = "koekje-data"
spool_dir = "koekje-spool"
# How long page views are kept (days). The anonymous daily statistics are kept longer.
raw_retention_days = 730
# A ClickHouse server instead of the embedded store: set KOEKJE_CLICKHOUSE_DSN in the environment (keeps
# its password out of this file), or:
# dsn = "https://koekje@clickhouse.internal:8443"
# Paths never recorded, with everything under them.
# exclude_paths = ["/admin"]

# Which pages are about what, by path prefix: the dashboard's topics.
[analytics.topics]
# implants = ["/implants", "/nl/implantaten"]

[geo]
# A GeoLite2-Country or DB-IP country database (.mmdb), so each visitor gets their region's rules. Without
# one every region is unknown, and unknown means the strictest rules (opt-in), which are allowed everywhere.
{geo}

[dashboard]
# A number on the dashboard needs this many distinct visitors behind it.
min_visitors = 5
# Networks (CIDRs) that may reach the dashboard at all; empty: any.
# allow = ["10.0.0.0/8"]
"""
