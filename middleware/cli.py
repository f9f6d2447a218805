"""The ``koekje`` command."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import select
import sys
import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from koekje.analytics import Accounts, Role, Store, StoreError, migrate, retention, utcnow
from koekje.analytics.accounts import MIN_PASSWORD_LENGTH, NoAdminLeft
from koekje.analytics.cookies_seen import undeclared_cookies
from koekje.analytics.ledger import Break, Head, history, shown_texts, verify
from koekje.analytics.loader import Loader
from koekje.analytics.publish import Publisher
from koekje.analytics.remote import Ownership
from koekje.analytics.requests_log import KINDS, RequestLog
from koekje.analytics.spool import REJECTED, Spool
from koekje.analytics.subjects import Subjects, as_csv_zip, find_reference
from koekje.analytics.subjects import reference as subject_reference

from . import init
from .config import Config, ConfigError, load_config
from .lint import check as check_config
from .notice import NOTICE_LANGUAGES, notice

CONFIG_ENV = "KOEKJE_CONFIG"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        result: int = args.run(args)
        sys.stdout.flush()  # (here: a reader gone away is said below, not at the interpreter's exit)
    except (ConfigError, StoreError, ValueError) as exc:
        print(f"koekje: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError as exc:
        if not _stdout_gone():  # another pipe broke (the running site's socket, say): said like any other
            print(f"koekje: {exc.strerror or exc}", file=sys.stderr)
            return 1
        # The reader went away (`koekje users list | head`): nothing to say, and nowhere to say it. Standard
        # output goes to /dev/null so that Python's flush at exit does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # a file that is not there, a full disk, a directory given for a file
        print(f"koekje: {exc.strerror or exc}: {exc.filename or 'output'}", file=sys.stderr)
        return 1
    except EOFError:  # a question asked (init --interactive) with nothing to read the answer from
        print("koekje: no answer to read (standard input is closed)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


def _stdout_gone() -> bool:
    """Whether standard output is a pipe nobody reads any more (found by a review: every broken pipe was
    taken for that, a lost connection to the running site too)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="koekje",
        description="Consent-first analytics for ASGI websites.",
        epilog=f"The configuration is read from --config, ${CONFIG_ENV} or ./koekje.toml; "
        "secrets from KOEKJE_SECRET_KEY.",
    )
    parser.add_argument("--config", type=Path, help="path to koekje.toml")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    start = commands.add_parser(
        "init",
        help="write a commented koekje.toml for this site (and uvicorn-logging.json beside it)",
        description="Write a commented koekje.toml (at --config, $KOEKJE_CONFIG or ./koekje.toml) that the "
        "site can start with, and uvicorn-logging.json beside it: uvicorn's logging with koekje's filter, "
        "which shortens visitors' addresses in the access log. Asks nothing unless --interactive.",
    )
    start.add_argument("--interactive", "-i", action="store_true", help="ask a few questions about the site")
    start.add_argument("--force", action="store_true", help="replace an existing koekje.toml")
    start.set_defaults(run=_init)

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

    consent = commands.add_parser("consent", help="the consent ledger (proof of consent)").add_subparsers(
        title="consent commands", metavar="ACTION"
    )
    check = consent.add_parser(
        "verify", help="check the ledger's hash chains; report the first broken link (exit 1 when broken)"
    )
    check.add_argument(
        "--heads",
        type=Path,
        help="a file of chain heads recorded earlier (--save-heads): each must still be in the ledger, "
        "unchanged, which also catches rows rewritten with recomputed hashes",
    )
    check.add_argument("--save-heads", type=Path, help="write the current chain heads to this file")
    check.set_defaults(run=_consent_verify)
    show = consent.add_parser(
        "show", help="one visitor's whole consent history, with the texts they were shown"
    )
    show.add_argument("id", help="a consent id (32 hex digits, as in the consent cookie and the ledger)")
    show.add_argument("--texts", action="store_true", help="print the full texts shown, not only their hash")
    show.set_defaults(run=_consent_show)

    spool = commands.add_parser("spool", help="batches waiting for the store").add_subparsers(
        title="spool commands", metavar="ACTION"
    )
    spool.add_parser("status", help="what waits in the spool, per table").set_defaults(run=_spool_status)
    spool.add_parser(
        "replay",
        help="load what waits into the store now (while the site is stopped, for the embedded store)",
    ).set_defaults(run=_spool_replay)

    keep = commands.add_parser("retention", help="how long each table keeps visitor data").add_subparsers(
        title="retention commands", metavar="ACTION"
    )
    keep.add_parser(
        "status", help="per table: retention, rows, the oldest row, rows past due, the last removal"
    ).set_defaults(run=_retention_status)
    keep.add_parser(
        "apply", help="remove every row past its retention now (ClickHouse's TTL does it eventually)"
    ).set_defaults(run=_retention_apply)

    publish = commands.add_parser(
        "publish", help="the dashboard's cells of finished days, worked out once"
    ).add_subparsers(title="publish commands", metavar="ACTION")
    publish.add_parser(
        "status", help="per kind of filter: finished days published, and days waiting (read only)"
    ).set_defaults(run=_publish_status)

    cookies = commands.add_parser("cookies", help="the declared cookies, and cookies seen but not declared")
    cookies.set_defaults(run=_cookies)
    _subject_commands(commands)
    commands.add_parser(
        "check", help="check the configuration against koekje's rules (exit 1 on errors, for CI)"
    ).set_defaults(run=_check)
    written = commands.add_parser("notice", help="the privacy-policy section about koekje, as Markdown")
    written.add_argument("--lang", choices=NOTICE_LANGUAGES, default="en")
    written.set_defaults(run=_notice)
    _audit_command(commands)
    return parser


def _audit_command(commands: Any) -> None:
    """``koekje audit``: its code and Playwright are imported only when it runs (an optional extra)."""
    audit = commands.add_parser(
        "audit",
        help="visit the site in Chromium as visitors who chose nothing, rejected and accepted, and report "
        "what they were given against the declarations (exit 1 on errors, for CI)",
        description="Visit the site in Chromium (pip install 'koekje[audit]') as a visitor who made no "
        "choice, one who rejected everything and one who accepted everything, each choosing in the real "
        "banner, and report cookies, web storage and requests to other hosts against koekje.toml. Exit "
        "status: 0 no errors, 1 errors found, 2 the audit could not run.",
    )
    audit.add_argument("url", help="the site's start page, e.g. https://www.example.nl/")
    audit.add_argument(
        "--pages",
        type=int,
        default=10,
        help="pages to visit, the start page included: those it links to, then /sitemap.xml (default 10)",
    )
    audit.add_argument("--lang", help="the browser's language (default: the first of banner.languages)")
    audit.add_argument("--format", choices=["text", "json", "html", "markdown"], default="text")
    audit.add_argument(
        "--output", "-o", type=Path, help="write the report to this file (Markdown: screenshots beside it)"
    )
    audit.add_argument(
        "--per-category", action="store_true", help="also one visitor per category, granting only that one"
    )
    audit.add_argument(
        "--update-declaration",
        action="store_true",
        help="append the undeclared cookies seen to koekje.toml as a draft, commented out, for you to finish",
    )
    audit.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="a host (with its subdomains) that is the site's own, e.g. its CDN; repeatable",
    )
    audit.add_argument(
        "--resolve",
        action="append",
        default=[],
        metavar="HOST=ADDRESS",
        help="send the browser's requests for HOST to ADDRESS (e.g. a staging server under the real name); "
        "repeatable",
    )
    audit.add_argument("--chromium", metavar="PATH", help="the browser to drive (default: the system's)")
    audit.add_argument(
        "--dwell",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="stay this much longer on each page, for scripts that wait before they act",
    )
    audit.set_defaults(run=_audit)


def _audit(args: argparse.Namespace) -> int:
    from .audit import AuditOptions, AuditUnavailable, audit
    from .audit.draft import append, draft
    from .audit.report import render, write

    path = _config_path(args)
    try:
        config = load_config(path, validate=False)  # the declarations: the site's secrets are not needed
        resolve = dict(_pair(item) for item in args.resolve)
        options = AuditOptions(
            pages=args.pages,
            lang=args.lang,
            per_category=args.per_category,
            allow_hosts=tuple(args.allow_host),
            resolve=resolve,
            chromium=args.chromium,
            dwell_seconds=args.dwell,
        )
        report = audit(args.url, config, options, declaration=str(path))
    except (AuditUnavailable, ValueError) as exc:
        print(f"koekje audit: {exc}", file=sys.stderr)
        return 2
    verdict = (
        "PASSED: no errors" if report.passed else f"FAILED: {report.errors} error(s)"
    ) + f", {report.warnings} warning(s)"
    if args.output:
        files = write(report, args.format, args.output)
        print(f"{verdict}; report: {', '.join(map(str, files))}", file=sys.stderr)
    else:
        print(render(report, args.format), end="")
    if args.update_declaration:
        text, names = draft(report, config.banner.languages, already=path.read_text(encoding="utf-8"))
        if names:
            append(path, text)
            print(
                f"{path}: {len(names)} undeclared cookie(s) drafted at the end, commented out "
                f"({', '.join(names)}); fill in each TODO, then remove the '# ' in front of the lines:"
                f"\n{text}",
                file=sys.stderr,
            )
        else:
            print(f"{path}: nothing to draft (no undeclared cookies, or drafted already)", file=sys.stderr)
    return 0 if report.passed else 1


def _pair(item: str) -> tuple[str, str]:
    host, equals, address = item.partition("=")
    if not equals:
        raise ValueError(f"--resolve {item!r}: give HOST=ADDRESS, e.g. www.example.nl=10.0.0.5")
    return host.strip(), address.strip()


def _init(args: argparse.Namespace) -> int:
    path = _config_path(args)
    if path.exists() and not args.force:  # before any question
        raise ConfigError(f"{path} exists already: koekje init leaves it alone (--force replaces it)")
    answers = init.ask(input, path.resolve().parent) if args.interactive else init.Answers()
    print(init.next_steps(init.write(path, answers, force=args.force)), end="")
    return 0


def _notice(args: argparse.Namespace) -> int:
    print(notice(_config(args), args.lang, utcnow().date()), end="")
    return 0


def _check(args: argparse.Namespace) -> int:
    try:
        config = _config(args).validate()
    except ConfigError as exc:
        print(f"error: {exc}")
        return 1
    findings = check_config(config)
    for finding in findings:
        print(finding.line())
    errors = sum(finding.level == "error" for finding in findings)
    if not findings:
        print("the configuration follows koekje's rules")
    elif errors:
        print(f"{errors} error(s)")
    return 1 if errors else 0


def _subject_commands(commands: Any) -> None:
    """``koekje subject``: requests that arrive by e-mail or letter, by the reference the visitor quotes."""
    subject = commands.add_parser(
        "subject", help="data-subject requests by reference: find, export, erase; the request log"
    ).add_subparsers(title="subject commands", metavar="ACTION")

    def with_reference(name: str, help: str) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = subject.add_parser(name, help=help)
        command.add_argument("reference", help="the reference the visitor quotes (as on /_koekje/your-data)")
        command.add_argument("--by", default=getpass.getuser(), help="who handles it (for the request log)")
        command.add_argument(
            "--received", type=date.fromisoformat, default=None, help="when the request came in (YYYY-MM-DD)"
        )
        return command

    with_reference("find", "what is stored under a reference").set_defaults(run=_subject_find)
    export = with_reference("export", "a copy of everything stored under a reference (logged)")
    export.add_argument(
        "--out", type=_export_path, required=True, help="the file to write (.json, or .zip for CSV)"
    )
    export.set_defaults(run=_subject_export)
    with_reference("erase", "erase everything stored under a reference, checked (logged)").set_defaults(
        run=_subject_erase
    )
    opened = with_reference("open", "log a request as received, due in one month")
    opened.add_argument("--kind", choices=KINDS, required=True)
    opened.set_defaults(run=_subject_open)
    listed = subject.add_parser("requests", help="the request log, soonest due first")
    listed.add_argument("--open", action="store_true", help="only requests not done yet")
    listed.set_defaults(run=_subject_requests)


def _subject_do(args: argparse.Namespace, kind: str, act: Any) -> int:
    """Find the reference, do ``act(store, subjects, consent_id, visitor_id)``, log it as done."""
    config = _config(args)
    with _open_store(config) as store:
        found = find_reference(store, args.reference)
        if found is None:
            print(
                f"koekje: no decision under reference {args.reference[:20]!r} (expired, or mistyped)",
                file=sys.stderr,
            )
            return 1
        consent_id, visitor_id = found
        if kind in _CLOSES:
            _received(args)  # checked before anything is done, not when logging what was
        keep = (
            config.consent.max_age_days * 86400.0
        )  # the visitor's old cookie is refused as long as it lives
        subjects = Subjects(store, config.spool_path(), keep_seconds=keep)
        try:
            details = act(store, subjects, consent_id, visitor_id)
        except OSError as exc:
            print(f"koekje: {exc}", file=sys.stderr)
            return 1
        if kind not in _CLOSES:
            return 0  # a look-up answers nothing by itself
        log = RequestLog(store, utcnow)
        reference = subject_reference(consent_id)
        waiting = [r for r in log.requests(reference=reference, open_only=True) if r.kind in _CLOSES[kind]]
        # Handled without being logged as received first: logged now, as received today unless told.
        for request in waiting or [log.open(reference, _CLOSES[kind][0], _received(args), args.by)]:
            log.close(request, args.by, {"action": kind, **details})
    return 0


Details = dict[str, Any]  # what a request's handling did, for the log
# Which open requests an action answers.
_CLOSES = {"export": ("access", "portability"), "erase": ("erasure",)}


def _received(args: argparse.Namespace) -> date:
    received: date = args.received or utcnow().date()
    if received > utcnow().date():
        raise ConfigError(f"--received {received} is in the future")
    if received < EARLIEST_REQUEST:  # (found by trying: 1969-12-31 failed in the log, after the erasure)
        raise ConfigError(f"--received {received} is before any request koekje could have had")
    return received


EARLIEST_REQUEST = date(2018, 5, 25)  # the GDPR applies from this day


def _subject_find(args: argparse.Namespace) -> int:
    def act(
        store: Store, subjects: Subjects, consent_id: uuid.UUID, visitor_id: uuid.UUID | None
    ) -> dict[str, Any]:
        data = subjects.export(visitor_id, consent_id)
        counts = {table: len(rows) for table, rows in data.items()}
        ids = sorted(str(v) for v in subjects.visitor_ids(visitor_id, consent_id))
        print(
            f"reference {subject_reference(consent_id)}: decision {consent_id.hex}, visitor id "
            f"{visitor_id or '(none under this decision: statistics not allowed, or erased)'}"
        )
        # (Every id along their decisions, before and after this one: what an erasure erases.)
        print(f"  visitor ids along their decisions: {', '.join(ids) or 'none'}")
        for table, n in counts.items():
            print(f"  {table}: {n} rows")
        return {"rows": counts}

    return _subject_do(args, "find", act)


EXPORT_SUFFIXES = (".json", ".zip")


def _export_path(value: str) -> Path:
    """An export's file, by what it will hold: JSON, or a ZIP of CSV files (found by trying: ``x.csv`` got
    JSON under a name that promised a spreadsheet)."""
    path = Path(value)
    if path.suffix.lower() not in EXPORT_SUFFIXES:
        raise argparse.ArgumentTypeError(f"{value!r}: name a .json file, or a .zip for CSV files")
    return path


def _write_private(path: Path, content: bytes) -> None:
    """A file of a visitor's data, readable by its owner only (0600, whatever the umask; found by trying:
    exports came out readable by every local user)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # (an existing file keeps its mode otherwise)
    with os.fdopen(fd, "wb") as file:
        file.write(content)


def _subject_export(args: argparse.Namespace) -> int:
    def act(
        store: Store, subjects: Subjects, consent_id: uuid.UUID, visitor_id: uuid.UUID | None
    ) -> dict[str, Any]:
        data = subjects.export(visitor_id, consent_id)
        content = (
            as_csv_zip(data)
            if args.out.suffix.lower() == ".zip"
            else json.dumps(data, indent=2, default=str).encode()
        )
        _write_private(args.out, content)
        counts = {table: len(rows) for table, rows in data.items()}
        print(f"exported {sum(counts.values())} rows to {args.out}")
        return {"rows": counts, "file": args.out.name}

    return _subject_do(args, "export", act)


def _subject_erase(args: argparse.Namespace) -> int:
    def act(
        store: Store, subjects: Subjects, consent_id: uuid.UUID, visitor_id: uuid.UUID | None
    ) -> dict[str, Any]:
        ids = subjects.visitor_ids(visitor_id, consent_id)  # every id along their consent history
        if not ids:
            print("nothing to erase: no visitor id under this reference (their decisions stay, as proof)")
            return {"erased": {}}
        counts = subjects.erase(ids, lambda: True)  # the site's own buffers: the erasure note
        print(f"erased {sum(counts.values())} rows: " + ", ".join(f"{t} {n}" for t, n in counts.items()))
        return {"erased": counts}

    return _subject_do(args, "erase", act)


def _subject_open(args: argparse.Namespace) -> int:
    config = _config(args)
    with _open_store(config) as store:
        found = find_reference(store, args.reference)
        if found is None:
            print(f"koekje: no decision under reference {args.reference[:20]!r}", file=sys.stderr)
            return 1
        request = RequestLog(store, utcnow).open(
            subject_reference(found[0]), args.kind, _received(args), args.by
        )
    print(f"{request.kind} request {request.reference} received {request.received}, due {request.due}")
    return 0


def _subject_requests(args: argparse.Namespace) -> int:
    config = _config(args)
    with _open_store(config) as store:
        requests = RequestLog(store, utcnow).requests(open_only=args.open)
    for r in requests:
        state = f"done {r.done:%Y-%m-%d} by {r.handled_by}" if r.done else "OPEN"
        print(f"{r.due}  {r.reference}  {r.kind:<13} received {r.received}  {state}")
    if not requests:
        print("no requests" + (" open" if args.open else ""))
    return 0


def _config(args: argparse.Namespace) -> Config:
    return load_config(_config_path(args))


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get(CONFIG_ENV, "koekje.toml"))


def _open_store(config: Config, ownership: Ownership | None = None, *, prepare: bool = True) -> Store:
    """The store, migrated first unless the configuration leaves that to `koekje migrate` (or not
    ``prepare``). While the site runs on the embedded store, its owner process answers for it."""
    spool = Spool(config.spool_path())
    spool.open()
    store = Store(
        config.store_settings(),
        prepare=migrate if prepare and config.analytics.auto_migrate else None,
        ownership=ownership or Ownership(spool.root),
    )
    store.open()
    return store


def _demo(args: argparse.Namespace) -> int:
    from koekje.demo.run import run_demo

    return run_demo(
        host=args.host, port=args.port, data_dir=args.data_dir, sample_traffic=not args.no_sample_traffic
    )


def _migrate(args: argparse.Namespace) -> int:
    # Not migrated on opening, whatever auto_migrate says: this command does it and says what it did. While
    # the site runs on the embedded store, its owner process runs the statements (found by a helper: the
    # engine's raw lock error).
    config = _config(args)
    if config.store_settings().embedded:
        opened = _open_store(config, prepare=False)
    else:  # (a release job may have no spool: a server's store needs none to be migrated; found by a review)
        opened = Store(config.store_settings())
    with opened as store:
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
    role = Role(args.role)
    with _open_store(_config(args)) as store:
        accounts = Accounts(store)
        existed = accounts.get(args.username) is not None
        try:
            # (Found by a helper: the dashboard kept an admin, the command line let the last one go.)
            def add() -> bool:
                accounts.add(args.username, password, role)
                return True

            accounts.keeping_an_admin(args.username, add)
        except NoAdminLeft as exc:
            print(f"koekje: {exc} {_ANOTHER_ADMIN}", file=sys.stderr)
            return 1
    said = "reset: new password and role" if existed else "created"
    print(f"account {args.username} ({role.value}) {said}")
    return 0


_ANOTHER_ADMIN = "Make another account admin first (koekje users add NAME --role admin)."


def _users_list(args: argparse.Namespace) -> int:
    with _open_store(_config(args)) as store:
        for account in Accounts(store).list():
            print(f"{account.username}\t{account.role.value}" + ("\tdisabled" if account.disabled else ""))
    return 0


def _users_remove(args: argparse.Namespace) -> int:
    with _open_store(_config(args)) as store:
        accounts = Accounts(store)
        try:
            removed = accounts.keeping_an_admin(args.username, lambda: accounts.remove(args.username))
        except NoAdminLeft as exc:
            print(f"koekje: {exc} {_ANOTHER_ADMIN}", file=sys.stderr)
            return 1
    print(
        f"account {args.username} removed" if removed else f"koekje: no account {args.username}",
        file=sys.stdout if removed else sys.stderr,
    )
    return 0 if removed else 1


def _consent_verify(args: argparse.Namespace) -> int:
    config = _config(args)
    retention = timedelta(days=config.analytics.ledger_retention_days)
    recorded = (
        [Head.parse(line) for line in args.heads.read_text().split("\n") if line.strip()]
        if args.heads
        else []
    )
    with _open_store(config) as store:
        result = verify(store, config.site.id, utcnow(), retention, recorded)
    before = f", {result.unchained} from before the ledger was chained" if result.unchained else ""
    rows = "1 row" if result.rows == 1 else f"{result.rows} rows"
    chains = "1 chain" if result.chains == 1 else f"{result.chains} chains"
    print(f"{rows} in {chains}{before}")
    if args.save_heads:
        args.save_heads.write_text("".join(head.line() + "\n" for head in result.heads))
        print(f"chain heads written to {args.save_heads}: keep a copy where the site cannot change it")
    if not result.ok:
        first, *more = result.breaks
        print(f"BROKEN: {_describe(first)}", file=sys.stderr)
        for other in more:
            print(f"  also: {_describe(other)}", file=sys.stderr)
        return 1
    print("every chain is whole")
    return 0


def _describe(problem: Break) -> str:
    consent = f" (consent {problem.consent_id.hex})" if problem.consent_id else ""
    return f"chain {problem.chain.hex} row {problem.seq}{consent}: {problem.problem}"


def _consent_show(args: argparse.Namespace) -> int:
    try:
        consent_id = uuid.UUID(hex=args.id)
    except ValueError:
        print(f"koekje: {args.id[:40]!r} is not a consent id (32 hex digits)", file=sys.stderr)
        return 1
    config = _config(args)
    with _open_store(config) as store:
        entries = history(store, consent_id)
        texts = {e.texts_hash: shown_texts(store, e.texts_hash) for e in entries if e.texts_hash}
    if not entries:
        print(
            f"koekje: no decision {consent_id.hex} in the ledger (expired, or never recorded)",
            file=sys.stderr,
        )
        return 1
    for entry in entries:
        chosen = ", ".join(entry.categories) + (
            f"; services: {', '.join(entry.services)}" if entry.services else ""
        )
        print(f"{entry.ts.isoformat(timespec='seconds')}  {entry.method:<9} {entry.consent_id.hex}")
        print(f"    granted: {chosen}")
        print(
            f"    policy revision {entry.policy_revision}, language {entry.lang or '-'}, "
            f"country {entry.country or 'unknown'}, network {entry.ip_prefix or '-'}, "
            f"GPC {'on' if entry.gpc else 'off'}"
        )
        if entry.texts_hash:
            shown = texts.get(entry.texts_hash)
            print(f"    shown: texts {entry.texts_hash[:16]}" + ("" if shown else " (not found)"))
            if shown and args.texts:
                print(_indent(json.dumps(json.loads(shown[1]), indent=2, ensure_ascii=False), 8))
    return 0


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())


def _cookies(args: argparse.Namespace) -> int:
    config = _config(args)
    declarations = config.declarations()
    print("declared:")
    for rule in declarations.cookies:
        owner = f"service {rule.service}" if rule.service else "no service"
        print(f"  {rule.name:<24} {rule.category:<16} {owner:<24} {rule.duration:<12} {rule.party}-party")
    if not declarations.cookies:
        print("  (none)")
    with _open_store(config) as store:
        seen = undeclared_cookies(store, config.site.id)
    print("set by the site but not declared:" if seen else "no undeclared cookies seen")
    for cookie in seen:
        print(
            f"  {cookie.name:<24} {cookie.count:>8}x  first {cookie.first_seen:%Y-%m-%d}  "
            f"last {cookie.last_seen:%Y-%m-%d}  e.g. {cookie.sample_path}"
        )
    return 0


def _spool(config: Config) -> Spool:
    spool = Spool(config.spool_path(), max_bytes=config.analytics.spool_max_mb << 20)
    if not spool.root.exists():
        raise ConfigError(f"no spool at {spool.root} yet (it is made when the site first starts)")
    return spool


def _spool_status(args: argparse.Namespace) -> int:
    config = _config(args)
    spool = _spool(config)
    print(f"spool {spool.root}: {spool.size()} bytes of at most {spool.max_bytes}")
    for table in spool.tables():
        if table == REJECTED:
            print(f"  rejected (malformed or not koekje's, moved aside): {len(spool.rejected())} files")
            continue
        batches = spool.pending(table)
        if batches:
            oldest = batches[0].name.split("-")[0]
            age = utcnow().timestamp() - int(oldest) / 1e9
            print(f"  {table}: {len(batches)} batches waiting, the oldest {age:.0f} s old")
    return 0


def _spool_replay(args: argparse.Namespace) -> int:
    config = _config(args)
    spool = _spool(config)
    ownership = Ownership(spool.root)
    if not ownership.try_acquire():
        print("the running site loads the spool itself (it owns it now): nothing to do here")
        return 0
    with _open_store(config, ownership) as store:
        loader = Loader(store, spool, config.site.id, utcnow, ownership=ownership)
        done = loader.load_pending()
    for table, rows in sorted(loader.loaded.items()):
        print(f"  {table}: {rows} rows loaded")
    for table, batches in sorted(loader.rejected.items()):
        print(f"  {table}: {batches} malformed batches moved aside", file=sys.stderr)
    print("the spool is empty" if done else "some batches could not be loaded yet (see above)")
    return 0 if done else 1


def _retention_status(args: argparse.Namespace) -> int:
    with _open_store(_config(args)) as store:
        tables = retention.status(store)
    print(f"{'table':<16} {'keeps':>10} {'rows':>10}  {'oldest row':<20} {'past due':>9}  last removal")
    for t in tables:
        oldest = f"{t.oldest:%Y-%m-%d %H:%M}" if t.oldest else "-"
        last = f"{t.last_applied:%Y-%m-%d %H:%M} ({t.last_removed} rows)" if t.last_applied else "by TTL only"
        print(f"{t.table:<16} {t.days:>6} days {t.rows:>10}  {oldest:<20} {t.past_due:>9}  {last}")
    return 0


def _publish_status(args: argparse.Namespace) -> int:
    """Read only: the site's loader publishes, in the background; this says how far it is (after an upgrade
    that changes a report, every day waits once, and views over waiting days are worked out live)."""
    config = _config(args)
    with _open_store(config) as store:
        zone = ZoneInfo(config.site.timezone)
        groups = Publisher(store, zone, config.dashboard.min_visitors, utcnow).status()
    print(f"{'kind of filter':<24} {'published':>9} {'waiting':>8} {'quiet':>6}  oldest waiting")
    for group in groups:
        oldest = f"{group.oldest_waiting:%Y-%m-%d}" if group.oldest_waiting else "-"
        print(f"{group.filters:<24} {group.published:>9} {group.waiting:>8} {group.quiet:>6}  {oldest}")
    if any(group.waiting for group in groups):
        print("waiting days are worked out on each view until the site's loader has published them")
    if any(group.quiet for group in groups):
        print(
            "quiet: waiting days without page views (as far back as a view reaches, before the site began "
            "too), published as empty days"
        )
    return 0


def _retention_apply(args: argparse.Namespace) -> int:
    with _open_store(_config(args)) as store:
        removed = retention.apply(store)
    for table, rows in removed.items():
        print(f"{table}: {rows} rows past their retention removed")
    return 0
