"""The koekje command, run as users run it: a separate process (with its own chDB engine)."""

import json
import os
import re
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest
from support import SECRET

from koekje.analytics import Store
from koekje.analytics.remote import Ownership
from koekje.analytics.spool import Spool


def koekje(
    *args: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "KOEKJE_SECRET_KEY": SECRET} if env is None else env
    return subprocess.run(
        [str(Path(sys.executable).parent / "koekje"), *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    (tmp_path / "koekje.toml").write_text("[analytics]\ndata_dir = 'data'\n")
    return tmp_path


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = koekje("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("demo", "migrate", "users"):
        assert command in result.stdout
    assert "KOEKJE_SECRET_KEY" in result.stdout


def test_migrate_then_accounts(site_dir: Path) -> None:
    applied = koekje("migrate", cwd=site_dir).stdout.strip()
    assert applied == "applied migrations [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]"
    assert koekje("migrate", cwd=site_dir).stdout.strip() == "the schema is up to date"
    added = koekje(
        "users",
        "add",
        "anna",
        "--role",
        "admin",
        "--password-stdin",
        cwd=site_dir,
        stdin="a long enough password\n",
    )
    assert added.returncode == 0 and "account anna (admin) created" in added.stdout, added.stderr
    assert koekje("users", "list", cwd=site_dir).stdout == "anna\tadmin\n"
    # Found by a helper: the command line let the last admin go, which the dashboard never does.
    secret = "another long password\n"
    for change in (("remove", "anna"), ("add", "anna", "--role", "marketer", "--password-stdin")):
        refused = koekje("users", *change, cwd=site_dir, stdin=secret)
        assert refused.returncode == 1 and "without an admin" in refused.stderr, (change, refused)
        assert koekje("users", "list", cwd=site_dir).stdout == "anna\tadmin\n"
    koekje("users", "add", "ben", "--password-stdin", cwd=site_dir, stdin=secret)
    reset = koekje("users", "add", "ben", "--role", "admin", "--password-stdin", cwd=site_dir, stdin=secret)
    assert "account ben (admin) reset: new password and role" in reset.stdout, reset.stderr
    assert koekje("users", "remove", "anna", cwd=site_dir).returncode == 0
    missing = koekje("users", "remove", "anna", cwd=site_dir)
    assert missing.returncode == 1 and "no account anna" in missing.stderr


def test_short_password_is_refused(site_dir: Path) -> None:
    result = koekje("users", "add", "anna", "--password-stdin", cwd=site_dir, stdin="short\n")
    assert result.returncode == 1 and "at least 12 characters" in result.stderr


def test_errors_say_what_to_do(site_dir: Path) -> None:
    no_secret = koekje(
        "migrate", cwd=site_dir, env={k: v for k, v in os.environ.items() if k != "KOEKJE_SECRET_KEY"}
    )
    assert no_secret.returncode == 1 and "set KOEKJE_SECRET_KEY" in no_secret.stderr
    no_file = koekje("--config", "missing.toml", "migrate", cwd=site_dir)
    assert no_file.returncode == 1 and "cannot read the koekje configuration" in no_file.stderr


def test_a_data_dir_held_by_another_process_is_explained(tmp_path: Path, store: Store) -> None:
    # This test process holds the session's chDB engine (the `store` fixture opened it).
    (tmp_path / "koekje.toml").write_text(f"[analytics]\ndsn = '{store.settings.dsn}'\n")
    result = koekje("users", "list", cwd=tmp_path)
    assert result.returncode == 1
    assert "one process per data directory" in result.stderr
    assert "Traceback" not in result.stderr


DECIDE = """
import sys
from starlette.testclient import TestClient
from koekje.middleware import KoekjeMiddleware
from support import site

app = KoekjeMiddleware(site(), "koekje.toml")
with TestClient(app, base_url="http://shop.test", client=("203.0.113.77", 1)) as client:
    first = client.post("/_koekje/consent", json={"categories": ["analytics"], "lang": "nl"}).json()
    client.post("/_koekje/consent", json={"categories": [], "method": "settings"})
    client.get("/cookies?set=cart%3D1")
    print(first["consent"]["id"])
"""

TAMPER = """
from koekje.analytics import Store
from koekje.analytics.remote import Ownership
from koekje.analytics.spool import Spool
from koekje.middleware import load_config

with Store(load_config("koekje.toml").store_settings()) as store:
    store.command(
        f"ALTER TABLE {store.table('consent_ledger')} UPDATE ip_prefix = '198.51.100.0' WHERE seq = 0 "
        "SETTINGS mutations_sync = 2"
    )
"""


def python(script: str, cwd: Path) -> str:
    env = {**os.environ, "KOEKJE_SECRET_KEY": SECRET, "PYTHONPATH": str(Path(__file__).parent)}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_consent_verify_show_and_cookies(site_dir: Path) -> None:
    (site_dir / "koekje.toml").write_text(
        "[analytics]\ndata_dir = 'data'\n"
        "[[consent.cookies]]\nname = '_fbp'\ncategory = 'marketing'\nduration = '3 months'\n"
    )
    consent_id = python(DECIDE, site_dir).strip()

    verified = koekje("consent", "verify", "--save-heads", "heads.txt", cwd=site_dir)
    assert verified.returncode == 0, verified.stderr
    assert "2 rows in 1 chain" in verified.stdout and "every chain is whole" in verified.stdout
    assert len((site_dir / "heads.txt").read_text().splitlines()) == 1

    shown = koekje("consent", "show", consent_id, "--texts", cwd=site_dir)
    assert shown.returncode == 0, shown.stderr
    assert "banner" in shown.stdout and "settings" in shown.stdout
    assert "granted: analytics, necessary" in shown.stdout and "network 203.0.113.0" in shown.stdout
    assert "Uw keuze over cookies" in shown.stdout  # the texts the visitor was shown
    assert koekje("consent", "show", "not-an-id", cwd=site_dir).returncode == 1

    cookies = koekje("cookies", cwd=site_dir)
    assert "_fbp" in cookies.stdout and "marketing" in cookies.stdout
    assert "cart" in cookies.stdout and "e.g. /cookies" in cookies.stdout

    python(TAMPER, site_dir)
    broken = koekje("consent", "verify", "--heads", "heads.txt", cwd=site_dir)
    assert broken.returncode == 1
    assert "BROKEN: chain" in broken.stderr and "edited?" in broken.stderr


def test_spool_status_and_replay(site_dir: Path) -> None:
    assert "no spool" in koekje("spool", "status", cwd=site_dir).stderr
    spool = Spool(site_dir / "koekje-spool")
    spool.open()
    row = {"ts": 1795593600, "site": "default", "visitor_id": str(uuid.uuid4()), "path": "/x", "topics": [],
           "referrer_host": "", "country": "", "ip_prefix": "203.0.113.0"}  # fmt: skip
    spool.write("page_views", json.dumps(row).encode(), rows=1)
    (spool.root / "page_views" / "notes.txt").write_text("not a batch")  # set aside by the replay
    status = koekje("spool", "status", cwd=site_dir)
    assert "page_views: 1 batches waiting" in status.stdout, status.stderr
    replay = koekje("spool", "replay", cwd=site_dir)
    assert replay.returncode == 0 and "page_views: 1 rows loaded" in replay.stdout, replay.stderr
    after = koekje("spool", "status", cwd=site_dir).stdout
    assert "waiting" not in after and "rejected (malformed or not koekje's, moved aside): 1 files" in after


def test_retention_status_and_apply(site_dir: Path) -> None:
    assert koekje("migrate", cwd=site_dir).returncode == 0
    status = koekje("retention", "status", cwd=site_dir)
    assert status.returncode == 0
    assert "page_views" in status.stdout and "730 days" in status.stdout and "by TTL only" in status.stdout
    applied = koekje("retention", "apply", cwd=site_dir)
    assert "page_views: 0 rows past their retention removed" in applied.stdout
    assert "(0 rows)" in koekje("retention", "status", cwd=site_dir).stdout


def test_publish_status(site_dir: Path) -> None:
    assert koekje("migrate", cwd=site_dir).returncode == 0
    status = koekje("publish", "status", cwd=site_dir)
    assert status.returncode == 0, status.stderr
    # A site without page views has nothing to publish (the numbers themselves: tests/analytics).
    assert re.search(r"^\(none\) +0 +0 +0  -$", status.stdout, re.M), status.stdout


def test_spool_replay_leaves_a_running_site_to_load_its_own_spool(site_dir: Path) -> None:
    """Found by trying: a replay next to the running site's loader formed other groups and duplicated."""
    spool = Spool(site_dir / "koekje-spool")
    spool.open()
    running_site = Ownership(spool.root)
    assert running_site.try_acquire()
    replay = koekje("spool", "replay", cwd=site_dir)
    assert replay.returncode == 0 and "the running site loads the spool itself" in replay.stdout
    running_site.release()


VISIT = """
from starlette.testclient import TestClient
from koekje.middleware import KoekjeMiddleware
from support import site

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
app = KoekjeMiddleware(site(), "koekje.toml")
with TestClient(app, base_url="http://shop.test", client=("203.0.113.77", 1)) as client:
    client.post("/_koekje/consent", json={"categories": ["analytics"], "lang": "nl"})
    for path in ("/a", "/b"):
        client.get(path, headers={"user-agent": UA})
    page = client.get("/_koekje/your-data?lang=en").text
    print(page.split('class="koekje-reference">')[1].split("<")[0])
"""


def test_a_request_by_letter_found_exported_erased_and_logged(site_dir: Path) -> None:
    reference = python(VISIT, site_dir).strip()
    opened = koekje(
        "subject", "open", reference, "--kind", "erasure", "--received", "2026-01-31", cwd=site_dir
    )
    assert opened.returncode == 0, opened.stderr
    assert "due 2026-02-28" in opened.stdout  # one month, the month's last day at most

    found = koekje("subject", "find", reference.replace("-", " ").lower(), cwd=site_dir)
    assert found.returncode == 0, found.stderr
    assert "page_views: 2 rows" in found.stdout and "consent_ledger: 1 rows" in found.stdout
    exported = koekje("subject", "export", reference, "--out", "copy.json", cwd=site_dir)
    assert exported.returncode == 0, exported.stderr
    copy = json.loads((site_dir / "copy.json").read_text())
    assert sorted(row["path"] for row in copy["page_views"]) == ["/a", "/b"]

    assert "OPEN" in koekje("subject", "requests", "--open", cwd=site_dir).stdout
    erased = koekje("subject", "erase", reference, "--by", "officer", cwd=site_dir)
    assert erased.returncode == 0, erased.stderr
    assert "erased 3 rows" in erased.stdout  # two page views, and the ledger row's visitor id
    assert "page_views: 0 rows" in koekje("subject", "find", reference, cwd=site_dir).stdout
    assert koekje("subject", "requests", "--open", cwd=site_dir).stdout.strip() == "no requests open"
    log = koekje("subject", "requests", cwd=site_dir).stdout
    assert f"2026-02-28  {reference}  erasure" in log and "by officer" in log

    assert koekje("subject", "find", "0000-0000-0000", cwd=site_dir).returncode == 1
    assert koekje("subject", "find", "'; DROP TABLE x", cwd=site_dir).returncode == 1


def test_a_request_is_checked_before_it_is_handled_and_its_copy_is_private(site_dir: Path) -> None:
    """Found by trying: with --received 1969-12-31 the erasure was done and then failed to be logged; an
    export came out readable by every local user."""
    reference = python(VISIT, site_dir).strip()
    refused = koekje("subject", "erase", reference, "--received", "1969-12-31", cwd=site_dir)
    assert refused.returncode == 1 and "before any request" in refused.stderr, refused.stderr
    assert "page_views: 2 rows" in koekje("subject", "find", reference, cwd=site_dir).stdout  # nothing done
    (site_dir / "copy.json").write_text("")
    (site_dir / "copy.json").chmod(0o644)
    for name in ("copy.json", "copy.zip"):
        exported = koekje("subject", "export", reference, "--out", name, cwd=site_dir)
        assert exported.returncode == 0, exported.stderr
        assert (site_dir / name).stat().st_mode & 0o777 == 0o600, name
    # Found by trying: `--out copy.csv` wrote JSON under a spreadsheet's name. Refused before anything.
    wrong = koekje("subject", "export", reference, "--out", "copy.csv", cwd=site_dir)
    assert wrong.returncode == 2 and "name a .json file, or a .zip" in wrong.stderr, wrong.stderr
    assert not (site_dir / "copy.csv").exists()
    assert zipfile.is_zipfile(site_dir / "copy.zip")


def test_files_and_input_that_are_not_there_are_said_not_a_traceback(site_dir: Path) -> None:
    """Found by a helper: these printed Python tracebacks."""
    for args, stdin in (
        (("consent", "verify", "--heads", "missing-heads.txt"), ""),
        (("consent", "verify", "--save-heads", "."), ""),  # a directory
        (("--config", "new/koekje.toml", "init", "--interactive"), ""),  # stdin closed at the first question
    ):
        result = koekje(*args, cwd=site_dir, stdin=stdin)
        assert result.returncode == 1 and "Traceback" not in result.stderr, (args, result.stderr)
        assert result.stderr.strip().splitlines()[-1].startswith("koekje: "), result.stderr


def test_check_says_what_to_change_and_fails_ci_on_errors(site_dir: Path) -> None:
    assert koekje("check", cwd=site_dir).returncode == 0  # the defaults follow the rules (with a warning)
    (site_dir / "koekje.toml").write_text(
        "[site]\ntrusted_proxies = ['0.0.0.0/0']\n"
        "[analytics]\ndata_dir = 'data'\nraw_retention_days = 1000\n"
        "[[consent.cookies]]\nname = '_fbp'\ncategory = 'marketing'\nduration = '3 months'\n"
        "purpose.nl = 'Advertenties'\n"
    )
    result = koekje("check", cwd=site_dir)
    assert result.returncode == 1
    assert "error: analytics.raw_retention_days: 1000 days" in result.stdout
    assert "error: site.trusted_proxies: 0.0.0.0/0 trusts every address" in result.stdout
    assert "error: consent.cookies[_fbp]: no purpose in en" in result.stdout
    assert "warning: geo.database: no GeoIP database" in result.stdout

    (site_dir / "koekje.toml").write_text(
        "[analytics]\ndata_dir = 'data'\nraw_retention_days = 1000\n"
        "retention_justification = 'accounting law: 7 years'\n[consent.regions]\nopt_out = []\n"
    )
    justified = koekje("check", cwd=site_dir)
    assert justified.returncode == 0 and "follows koekje's rules" in justified.stdout, justified.stdout
    weak = koekje("check", cwd=site_dir, env={**os.environ, "KOEKJE_SECRET_KEY": "short"})
    assert weak.returncode == 1 and "error:" in weak.stdout


def test_notice_describes_what_the_configuration_does(site_dir: Path) -> None:
    (site_dir / "koekje.toml").write_text(
        "[site]\nname = 'Tandwerk Support'\n"
        "[[site.processors]]\nname = 'Hoster B.V.'\npurpose.en = 'runs the server'\n"
        "location = 'EU (Amsterdam)'\n"
        "[analytics]\ndata_dir = 'data'\nraw_retention_days = 400\n[geo]\nipv4_prefix = 16\n"
        "[[consent.cookies]]\nname = '_fbp'\ncategory = 'marketing'\nduration = '3 months'\n"
        "purpose.en = 'Ads'\npurpose.nl = 'Advertenties'\n"
    )
    english = koekje("notice", "--lang", "en", cwd=site_dir)
    assert english.returncode == 0, english.stderr
    text = english.stdout
    assert text.startswith("## Cookies, statistics and your choice") and "Tandwerk Support asks" in text
    assert "first 16 bits (IPv4)" in text and "| Pages visited and time spent on them | 400 days |" in text
    assert "- `_fbp` (Marketing; this site; 3 months): Ads" in text
    assert "- Hoster B.V.: runs the server (EU (Amsterdam))" in text
    assert "/_koekje/your-data?lang=en" in text and "within one month" in text
    dutch = koekje("notice", "--lang", "nl", cwd=site_dir).stdout
    assert "AVG art. 6 lid 1 sub a" in dutch and "400 dagen" in dutch and "Advertenties" in dutch


WITHOUT_PLAYWRIGHT = """
import sys
sys.modules["playwright"] = None  # as if `koekje[audit]` were not installed: importing it fails
from koekje.middleware.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_audit_without_playwright_says_how_to_install_it(site_dir: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", WITHOUT_PLAYWRIGHT, *args],
            cwd=site_dir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert run("--help").returncode == 0  # the other commands never import it
    assert "audit" in run("--help").stdout
    missing = run("audit", "http://127.0.0.1:9/")
    assert missing.returncode == 2
    assert "pip install 'koekje[audit]'" in missing.stderr and "Traceback" not in missing.stderr


def test_a_reader_that_goes_away_is_no_error(site_dir: Path) -> None:
    """Found by a helper: `koekje ... | head` printed 'koekje: Broken pipe: output'."""
    command = f"'{Path(sys.executable).parent / 'koekje'}' notice | true"  # (gone before it writes)
    env = {**os.environ, "KOEKJE_SECRET_KEY": SECRET}
    ran = subprocess.run(
        ["bash", "-c", command], cwd=site_dir, env=env, capture_output=True, text=True, timeout=60
    )
    assert ran.stderr == "", ran.stderr
    assert koekje("notice", cwd=site_dir).stdout  # (it writes something)
