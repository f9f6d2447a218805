"""koekje check's rules about the web server's log, where the environment lets it see how uvicorn starts,
and about the installation."""

import json
from pathlib import Path

from koekje.middleware import Config
from koekje.middleware.config import AnalyticsSection, GeoSection, SiteSection
from koekje.middleware.lint import check, compiled
from koekje.middleware.logs import FILTER, LOG_CONFIG


def _server_log(environ: dict[str, str]) -> list[str]:
    config = Config()
    return [f.line() for f in check(config, environ) if f.where == "server log"]


def test_an_access_log_turned_on_by_the_environment_is_a_warning() -> None:
    [line] = _server_log({"UVICORN_ACCESS_LOG": "true"})
    assert line.startswith("warning: server log: UVICORN_ACCESS_LOG turns uvicorn's access log on")
    assert "full IP address" in line and "uvicorn-logging.json" in line
    assert _server_log({"UVICORN_ACCESS_LOG": "false"}) == []  # --no-access-log


def test_a_log_configuration_without_koekjes_filter_is_a_warning(tmp_path: Path) -> None:
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"version": 1, "handlers": {}}))
    [line] = _server_log({"UVICORN_LOG_CONFIG": str(plain)})
    assert f"UVICORN_LOG_CONFIG ({plain}) configures no {FILTER}" in line
    assert _server_log({"UVICORN_LOG_CONFIG": str(tmp_path / "missing.json")})  # unreadable: not filtered
    ready = tmp_path / "uvicorn-logging.json"
    ready.write_text(json.dumps(LOG_CONFIG))
    assert _server_log({"UVICORN_LOG_CONFIG": str(ready)}) == []


def test_nothing_is_said_where_the_command_line_decides() -> None:
    assert _server_log({}) == []  # the site warns at startup instead (tests/middleware/test_logs.py)


def test_a_request_path_not_compiled_is_a_warning() -> None:
    assert "installation" not in [f.where for f in check(Config(), {})]  # compiled (tests/test_compiled.py)
    [finding] = compiled("/site-packages/koekje/middleware/page.py")
    assert finding.level == "warning" and "KOEKJE_COMPILE=0" in finding.message


def test_paths_the_site_could_not_start_with_are_errors(tmp_path: Path) -> None:
    """Found by a helper: a spool directory that could not be made, and a GeoIP database that was not
    there, passed the check and stopped the site."""
    (tmp_path / "a-file").write_text("")
    config = Config(
        base_dir=str(tmp_path),
        analytics=AnalyticsSection(spool_dir="a-file/spool"),
        geo=GeoSection(database="missing.mmdb"),
    )
    found = {f.where: f for f in check(config, {})}
    assert found["analytics.spool_dir"].level == found["geo.database"].level == "error"
    fine = Config(base_dir=str(tmp_path), analytics=AnalyticsSection(spool_dir="new/spool"))
    assert not [f for f in check(fine, {}) if f.level == "error"]


def test_proxies_that_write_forwarded_need_uvicorn_told_not_to_read_x_forwarded_for() -> None:
    site = SiteSection(trusted_proxies=("127.0.0.1/32",), proxy_header="forwarded")
    [finding] = [f for f in check(Config(site=site), {}) if f.where == "site.proxy_header"]
    assert finding.level == "warning" and "--forwarded-allow-ips ''" in finding.message
    usual = SiteSection(trusted_proxies=("127.0.0.1/32",))
    assert "site.proxy_header" not in [f.where for f in check(Config(site=usual), {})]
