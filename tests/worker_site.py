"""The site the multi-worker tests run under ``uvicorn --workers`` (configured through $KOEKJE_CONFIG)."""

import os

from support import site

from koekje.middleware import KoekjeMiddleware, load_config


def app() -> KoekjeMiddleware:
    return KoekjeMiddleware(site(), load_config(os.environ["KOEKJE_CONFIG"]))
