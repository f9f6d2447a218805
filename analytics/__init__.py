"""koekje's analytics side: the ClickHouse store and its migrations, the write pipeline, the consent
ledger, dashboard accounts and the dashboard. Never imports ``koekje.middleware``."""

from . import retention
from .accounts import Account, Accounts, Role
from .clock import Clock, utcnow
from .dashboard import Dashboard, DashboardSettings
from .events import PageView, PageViewRows, PageViewSink
from .ledger import ConsentRecord, Method
from .migrations import migrate
from .recorder import Recorder
from .reports import Selection, Table, topic_report
from .settings import RecorderSettings, StoreSettings
from .store import Store, StoreError, StoreUnavailable

__all__ = [
    "Account",
    "Accounts",
    "Clock",
    "ConsentRecord",
    "Dashboard",
    "DashboardSettings",
    "Method",
    "PageView",
    "PageViewRows",
    "PageViewSink",
    "Recorder",
    "RecorderSettings",
    "Role",
    "Selection",
    "Store",
    "StoreError",
    "StoreSettings",
    "StoreUnavailable",
    "Table",
    "migrate",
    "retention",
    "topic_report",
    "utcnow",
]
