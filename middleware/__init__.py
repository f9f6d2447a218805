"""koekje's ASGI middleware: consent state, the /_koekje endpoints, capture of consented page views."""

from .asgi import KoekjeMiddleware
from .config import Config, ConfigError, load_config
from .consent import Consent
from .visitor import Visitor

__all__ = ["Config", "ConfigError", "Consent", "KoekjeMiddleware", "Visitor", "load_config"]
