"""koekje's ASGI middleware: consent state, the /_koekje endpoints, capture of consented page views."""

from .asgi import KoekjeMiddleware
from .config import Config, ConfigError, load_config
from .consent import Consent
from .visitor import Visitor

# The one place koekje's version is written: the package's metadata is read from here when it is built.
__version__ = "0.2.0.dev0"

__all__ = ["Config", "ConfigError", "Consent", "KoekjeMiddleware", "Visitor", "__version__", "load_config"]
