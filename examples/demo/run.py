"""``koekje demo``: the demo site behind KoekjeMiddleware on the embedded store, with sample traffic."""

from __future__ import annotations

import logging
import os
import secrets
import shlex
from importlib.resources import as_file, files
from pathlib import Path

import msgspec
import uvicorn

from koekje.analytics import Accounts, Role, Store, migrate, utcnow
from koekje.middleware import Config, KoekjeMiddleware, load_config
from koekje.middleware.config import SECRET_ENV
from koekje.middleware.topics import TopicRules

from .site import create_site
from .traffic import fill_if_empty

DEMO_USER = "demo"
CLI_CONFIG = "koekje-demo.toml"  # (not koekje.toml: `--data-dir .` in a project must not replace its own)
log = logging.getLogger("koekje.demo")


def demo_config(data_dir: Path) -> Config:
    """The demo's koekje.toml, with its store under ``data_dir`` and a secret kept there."""
    data_dir.mkdir(parents=True, exist_ok=True)
    environ = dict(os.environ)
    environ.setdefault(SECRET_ENV, _demo_secret(data_dir / "secret-key"))
    with as_file(files("koekje.demo").joinpath("koekje.toml")) as path:
        config = load_config(path, environ)
    analytics = msgspec.structs.replace(
        config.analytics,
        data_dir=str(data_dir.resolve() / "store"),
        spool_dir=str(data_dir.resolve() / "spool"),
    )
    _write_cli_config(data_dir)
    return msgspec.structs.replace(config, analytics=analytics)


def _write_cli_config(data_dir: Path) -> None:
    """The same configuration as a file beside the data, for the command line (`koekje --config ...`):
    found by a helper, the demo's data could not be reached by `koekje subject`, `consent verify` and the
    rest, whose configuration is a file. Its paths are relative to it, as the site's are."""
    text = files("koekje.demo").joinpath("koekje.toml").read_text(encoding="utf-8")
    stored = 'data_dir = "koekje-data"'
    assert stored in text, "the demo's koekje.toml names its store differently: update this"
    text = text.replace(stored, 'data_dir = "store"\nspool_dir = "spool"', 1)
    (data_dir / CLI_CONFIG).write_text("# Written by `koekje demo` for the command line.\n" + text)


def prepare(config: Config, *, sample_traffic: bool) -> tuple[str, int]:
    """Create the schema, (re)set the demo account's password and add sample traffic to an empty store.
    Returns the demo password and the number of sample page views added."""
    password = secrets.token_urlsafe(12)
    with Store(config.store_settings()) as store:
        migrate(store)
        Accounts(store).add(DEMO_USER, password, Role.ADMIN)
        added = (
            fill_if_empty(store, TopicRules(config.analytics.topics), config.site.id, utcnow())
            if sample_traffic
            else 0
        )
    return password, added


def run_demo(*, host: str, port: int, data_dir: Path, sample_traffic: bool) -> int:
    config = demo_config(data_dir)
    password, added = prepare(config, sample_traffic=sample_traffic)
    app = KoekjeMiddleware(create_site(), config)
    url = f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0') else host}:{port}"  # noqa: S104
    print(
        "\nkoekje demo\n"
        f"  site:       {url}/\n"
        f"  dashboard:  {url}{config.site.prefix}/dashboard/\n"
        f"  log in as:  {DEMO_USER} / {password}   (a new password on every start)\n"
        f"  store:      embedded chDB in {data_dir.resolve() / 'store'}"
        + (f" (added {added} sample page views)" if added else "")
        + f"\n  commands:   {_cli(data_dir)} users list   (or any other)"
        + "\n  stop with Ctrl+C\n",
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0


def _cli(data_dir: Path) -> str:
    """The command line that reaches the demo's data, as a shell takes it."""
    config = shlex.quote(str((data_dir / CLI_CONFIG).resolve()))
    if SECRET_ENV in os.environ:  # the demo's key is the one set, not the one kept with the data
        return f"koekje --config {config}"
    secret = shlex.quote(str((data_dir / "secret-key").resolve()))
    return f'{SECRET_ENV}="$(cat {secret})" koekje --config {config}'


def _demo_secret(path: Path) -> str:
    """A signing key kept with the demo data, so consent cookies survive a restart of the demo."""
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(key)
    return key
