"""The koekje command, run as users run it: a separate process (with its own chDB engine)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import SECRET

from koekje.analytics import Store


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
    assert koekje("migrate", cwd=site_dir).stdout.strip() == "applied migrations [1, 2]"
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
    assert added.returncode == 0, added.stderr
    assert koekje("users", "list", cwd=site_dir).stdout == "anna\tadmin\n"
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
