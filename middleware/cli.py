"""The ``koekje`` command."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from koekje.analytics import Accounts, Role, Store, StoreError, migrate
from koekje.analytics.accounts import MIN_PASSWORD_LENGTH

from .config import Config, ConfigError, load_config

CONFIG_ENV = "KOEKJE_CONFIG"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        result: int = args.run(args)
    except (ConfigError, StoreError, ValueError) as exc:
        print(f"koekje: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="koekje",
        description="Consent-first analytics for ASGI websites.",
        epilog=f"The configuration is read from --config, ${CONFIG_ENV} or ./koekje.toml; "
        "secrets from KOEKJE_SECRET_KEY.",
    )
    parser.add_argument("--config", type=Path, help="path to koekje.toml")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    demo = commands.add_parser("demo", help="run the demo site with banner, capture and dashboard")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".koekje-demo"),
        help="where the demo keeps its embedded store (default ./.koekje-demo)",
    )
    demo.add_argument(
        "--no-sample-traffic",
        action="store_true",
        help="do not fill an empty store with a month of generated visits",
    )
    demo.set_defaults(run=_demo)

    mig = commands.add_parser("migrate", help="create or update koekje's tables")
    mig.set_defaults(run=_migrate)

    users = commands.add_parser("users", help="dashboard accounts").add_subparsers(
        title="users commands", metavar="ACTION"
    )
    add = users.add_parser("add", help="create an account, or reset its password and role")
    add.add_argument("username")
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.MARKETER.value)
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(run=_users_add)
    users.add_parser("list", help="list the accounts").set_defaults(run=_users_list)
    remove = users.add_parser("remove", help="remove an account (its sessions end at once)")
    remove.add_argument("username")
    remove.set_defaults(run=_users_remove)
    return parser


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config or Path(os.environ.get(CONFIG_ENV, "koekje.toml")))


def _open_store(config: Config) -> Store:
    """The store, migrated first unless the configuration leaves that to `koekje migrate`."""
    store = Store(config.store_settings(), prepare=migrate if config.analytics.auto_migrate else None)
    store.open()
    return store


def _demo(args: argparse.Namespace) -> int:
    from koekje.demo.run import run_demo

    return run_demo(
        host=args.host, port=args.port, data_dir=args.data_dir, sample_traffic=not args.no_sample_traffic
    )


def _migrate(args: argparse.Namespace) -> int:
    config = _config(args)
    store = Store(config.store_settings())
    with store:
        applied = migrate(store)
    print(f"applied migrations {applied}" if applied else "the schema is up to date")
    return 0


def _users_add(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(
            f"password for {args.username} (at least {MIN_PASSWORD_LENGTH} characters): "
        )
        if getpass.getpass("again: ") != password:
            print("koekje: the passwords differ", file=sys.stderr)
            return 1
    with _open_store(_config(args)) as store:
        account = Accounts(store).add(args.username, password, Role(args.role))
    print(f"account {account.username} ({account.role.value}) saved")
    return 0


def _users_list(args: argparse.Namespace) -> int:
    with _open_store(_config(args)) as store:
        for account in Accounts(store).list():
            print(f"{account.username}\t{account.role.value}")
    return 0


def _users_remove(args: argparse.Namespace) -> int:
    with _open_store(_config(args)) as store:
        removed = Accounts(store).remove(args.username)
    print(
        f"account {args.username} removed" if removed else f"koekje: no account {args.username}",
        file=sys.stdout if removed else sys.stderr,
    )
    return 0 if removed else 1
