"""Real servers for tests: the test site behind KoekjeMiddleware under uvicorn (one or several workers), on
loopback, with everything it logs kept for the test to read, and its store reachable from the test."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from support import SECRET

from koekje.analytics import Store, StoreSettings
from koekje.analytics.remote import Ownership

# A browser's user agent: an HTTP library's is a crawler's, and crawlers are not counted.
BROWSER = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36"}
TOML = """
[analytics]
data_dir = "store"
spool_dir = "spool"
flush_interval_seconds = 0.05
[dashboard]
min_visitors = 1
"""


class Site:
    def __init__(
        self, directory: Path, process: subprocess.Popen[str], port: int, workers: list[int]
    ) -> None:
        self.directory = directory
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.workers = workers
        self.log: list[str] = []  # what the server wrote to stderr, line by line

    def remote_store(self) -> Store:
        """The store as any other process sees it while the site runs: through its owner."""
        settings = StoreSettings(f"chdb://{self.directory / 'store'}", "koekje")
        return Store(settings, ownership=Ownership(self.directory / "spool"))

    def owner(self) -> int:
        """The worker that holds the store's lock, from the kernel's table of locks."""
        inode = os.stat(self.directory / "spool" / "owner.lock").st_ino
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if "FLOCK" in fields and fields[-3].endswith(f":{inode}"):
                return int(fields[fields.index("WRITE") + 1])
        raise AssertionError("nobody holds the store")

    def stop(self, timeout: float = 60) -> None:
        """A graceful stop (SIGTERM: each worker's lifespan drains its queues), waited for."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(
    directory: Path,
    *,
    workers: int = 1,
    toml: str = TOML,
    app: str = "worker_site:app",
    timeout: float = 120,
    server: str = "uvicorn",
) -> Iterator[Site]:
    """The site under ``uvicorn --workers N`` (or ``server="gunicorn"``: gunicorn with uvicorn's worker
    class) in ``directory`` (its koekje.toml is ``toml``)."""
    (directory / "koekje.toml").write_text(toml)
    port = free_port()
    env = {
        **os.environ,
        "KOEKJE_SECRET_KEY": SECRET,
        "KOEKJE_CONFIG": str(directory / "koekje.toml"),
        "PYTHONPATH": str(Path(__file__).parent),
    }
    if server == "gunicorn":
        command = [sys.executable, "-m", "gunicorn", f"{app}()", "-k", "uvicorn_worker.UvicornWorker"]
        command += ["--workers", str(workers), "--bind", f"127.0.0.1:{port}", "--log-level", "info"]
        # (Its control socket in the test's directory, not the user's home: runs side by side stay apart.)
        command += ["--control-socket", str(directory / "gunicorn.ctl")]
        listening = "Listening at: "
    else:
        command = [sys.executable, "-m", "uvicorn", app, "--factory", "--workers", str(workers)]
        command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "info"]
        listening = "Uvicorn running on"
    process = subprocess.Popen(command, cwd=directory, env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    site = Site(directory, process, port, [])
    ready = threading.Event()

    def read(stream: object) -> None:  # every line kept; a full pipe would stop the server
        for line in stream:  # type: ignore[attr-defined]
            site.log.append(line)
            found = re.search(r"Started server process \[(\d+)\]", line)
            if found:
                site.workers.append(int(found[1]))
            # (One worker binds the socket after its startup; several, a supervisor binds it before.)
            up = sum("Application startup complete" in seen for seen in site.log) >= workers
            if up and any(listening in seen for seen in site.log):
                ready.set()

    reader = threading.Thread(target=read, args=(process.stderr,), daemon=True)
    reader.start()
    try:
        # Each worker says when it is up: no guessing with sleeps.
        assert ready.wait(timeout), "the site did not start:\n" + "".join(site.log)
        yield site
    finally:
        site.stop()
        reader.join(timeout=10)
        process.stderr.close()


def eventually(condition: Callable[[], object], seconds: float = 60) -> None:
    """Poll a condition that another process makes true, up to a deadline."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.05)


@contextmanager
def uvicorn(
    args: list[str], cwd: Path, *, workers: int = 1, env: dict[str, str] | None = None, timeout: float = 60
) -> Iterator[tuple[str, list[str]]]:
    """``uvicorn ARGS`` in ``cwd`` on a free port, as a site's owner would start it, with everything it writes
    (its access log included) kept line by line: ``(url, lines)``, once every worker is up."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", *args, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers)]
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, "KOEKJE_SECRET_KEY": SECRET, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    ready = threading.Event()

    def read(stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.append(line)
            up = sum("Application startup complete" in seen for seen in lines) == workers
            if up and any("Uvicorn running on" in seen for seen in lines):
                ready.set()

    reader = threading.Thread(target=read, args=(process.stdout,), daemon=True)
    reader.start()
    try:
        assert ready.wait(timeout), "uvicorn did not start:\n" + "".join(lines)
        yield f"http://127.0.0.1:{port}", lines
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        reader.join(timeout=10)
        process.stdout.close()
