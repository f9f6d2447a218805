"""What a user agent says: a crawler or not, and the device class, browser and OS families.

Two maintained sources: ua-parser (the uap-core regexes, Rust-backed) for families and its "Spider"
device, and the crawler-user-agents list (1,500 patterns of crawlers, uptime checkers, HTTP libraries).
A new user agent costs ~130 µs (up to ~0.8 ms for a 512-character one, linearly: no pattern backtracks
badly), nearly all of it the crawler list's regular expressions; so it never runs on the request path: the
write buffer's thread classifies each batch, and a cache of 16,384 makes a returning user agent a dict
lookup. (A flood of unique user agents costs that thread CPU, ~1,500 a second per worker, not the site.)
The user agent string itself is never stored; only these families are.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

MAX_USER_AGENT = 512


@dataclass(frozen=True, slots=True)
class Device:
    bot: bool
    kind: str  # "desktop", "mobile", "tablet" or "" (unknown)
    browser: str
    os: str


_TABLETS = ("ipad", "tablet", "kindle", "nexus 7", "nexus 9", "nexus 10", "sm-t", "tab")
_MOBILE_OS = ("ios", "android", "windows phone", "blackberry os", "kaios")
_DESKTOP_OS = ("windows", "mac os x", "linux", "ubuntu", "chrome os", "fedora", "debian", "freebsd")


@lru_cache(maxsize=16_384)
def classify(user_agent: str) -> Device:
    """The device behind a user agent (clipped to MAX_USER_AGENT characters); no user agent is a bot."""
    from crawleruseragents import is_crawler  # imported on first use: its 1,500 patterns compile lazily
    from ua_parser import parse

    if not user_agent.strip():
        return Device(True, "", "", "")
    result = parse(user_agent)
    device = (result.device.family if result.device else "") or ""
    browser = (result.user_agent.family if result.user_agent else "") or ""
    os = (result.os.family if result.os else "") or ""
    bot = device == "Spider" or is_crawler(user_agent)
    return Device(bot, "" if bot else _kind(device, os), browser[:64], os[:64])


def _kind(device: str, os: str) -> str:
    device, os = device.lower(), os.lower()
    if any(mark in device for mark in _TABLETS):
        return "tablet"
    if os.startswith(_MOBILE_OS):
        return "mobile"
    if os.startswith(_DESKTOP_OS):
        return "desktop"
    return ""
