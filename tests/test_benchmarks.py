"""Every benchmark runs in its smoke size (``--smoke``: seconds, not minutes), so that none can rot between
the runs that measure: each script exits 0, prints its result lines and says nothing on stderr.

The scripts start together (each in its own process, its temporary files under this test's directory) and
each test waits for its own, bounded: on two cores the whole file takes about as long as the slowest two.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
TIMEOUT = 300.0  # seconds per script, from the moment they all start; smoke runs take 2-30 s
NUMBER = r"[\d,.]+"


def _request_path(out: str) -> None:
    [(stored, recorded)] = re.findall(r"page views in the store afterwards: (\d+) of (\d+)", out)
    assert int(stored) == int(recorded) == 201, out  # one round of 200, and the visit's first page


def _over_http(out: str) -> None:
    errors = re.findall(r"^(koekje|bare|SessionMiddleware|BaseHTTPMiddleware).*\s(\d+)$", out, re.M)
    assert len(errors) == 10, out  # every scenario measured
    assert all(n == "0" for _, n in errors), out


def _dashboard(out: str) -> None:
    rows = re.findall(rf"^(overview|topics|pages)\s+(7d|13m)\s+\S+\s+{NUMBER}\s+{NUMBER}", out, re.M)
    assert len(rows) == 3 * 2 * 3, out  # every view, for both ranges, without and with each filter


def _memory(out: str) -> None:
    assert "visitors who consented: 200 (ledger rows: 200); page views stored: 3,000" in out, out
    samples = re.findall(
        rf"^ +([\d,]+) +({NUMBER}) +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} +[\d,]+$", out, re.M
    )
    assert [n for n, _ in samples] == ["0", "500", "1,000", "1,500", "2,000"], out  # the baseline .. the end


@dataclass(frozen=True)
class Smoke:
    arguments: tuple[str, ...]
    lines: tuple[str, ...]  # regular expressions, each matching a line of the output
    check: Callable[[str], None] | None = None  # more to hold of the output


SMOKES = {
    "ingest": Smoke(
        ("--smoke",),
        (
            rf"^20000 events, batches of 1000: {NUMBER} events/s end to end",
            rf"^  process CPU: {NUMBER} us/event",
            r"^  RSS grew -?\d+ MB over them \(-?\d+ MB with the free pages chDB's allocator keeps\)",
            r"^  RSS along the way: 5k: [+-]\d+ MB, 10k: [+-]\d+ MB, 15k: [+-]\d+ MB$",
        ),
    ),
    "sink": Smoke(("--smoke",), (rf"^3 batches of 100: per event cpu {NUMBER} us, wall {NUMBER} us$",)),
    "steady": Smoke(
        ("--smoke",),
        (
            rf"^ +0\.25 s +{NUMBER} +{NUMBER} +{NUMBER}$",
            rf"^ +1 s +{NUMBER} +{NUMBER} +{NUMBER}$",
            r"^page views stored: 400 of 400 sent \(ok\)$",
        ),
    ),
    "visibility": Smoke(
        ("--smoke",),
        (r"^200 consented page views at 200/s", r"^  visible after: p50 \d+ ms, p99 \d+ ms, max \d+ ms$"),
    ),
    "consent_flood": Smoke(
        ("--smoke",),
        (
            rf"^20 decisions answered in {NUMBER} s \(20 x 200\)$",
            r"^  topic report during the flood: p50 \d+ ms, max \d+ ms$",
        ),
    ),
    "request_path": Smoke(
        ("--smoke", "--where"),
        (
            rf"^  bare\s+{NUMBER} us\s+x\s*1\.00$",
            rf"^  koekje, no consent\s+{NUMBER} us",
            rf"^  koekje, consented\s+{NUMBER} us",
            rf"^    \.\.\. sink writes nothing\s+{NUMBER} us",
            rf"^  consented / no consent, median of the same-round ratios: x{NUMBER}$",
        ),
        _request_path,
    ),
    "over_http": Smoke(
        ("--smoke",),
        (
            rf"^koekje, consented, recorded\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+0$",
            rf"^koekje, static asset in asset_paths\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+0$",
            r"^page views in koekje's store: \d+; consented pages wrk counted: \d+ \(ok\)$",
        ),
        _over_http,
    ),
    "dashboard": Smoke(
        ("--smoke",),
        (r"^published \d+ days in", rf"^co_interest\s+{NUMBER}", r"^total [\d.]+ s$"),
        _dashboard,
    ),
    "memory": Smoke(
        ("--smoke",),
        (
            r"^2,000 consented page views of the demo site after a warm-up of 1,000",
            rf"^  RSS grew [+-]{NUMBER} MB over 2,000 requests",
        ),
        _memory,
    ),
}


@dataclass
class Running:
    name: str
    process: subprocess.Popen[str]
    started: float
    stdout: Path
    stderr: Path

    def finish(self) -> tuple[int, str, str]:
        """Wait for the script (what is left of its time), then its exit code and output."""
        try:
            code = self.process.wait(timeout=max(1.0, TIMEOUT - (time.monotonic() - self.started)))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"benchmarks/{self.name}.py --smoke took more than {TIMEOUT:.0f} s")
        return code, self.stdout.read_text(), self.stderr.read_text()


@pytest.fixture(scope="module")
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Running]]:
    """The smoke runs of the selected scripts, all started at once."""
    wanted = {
        str(item.callspec.params["name"])
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.originalname == "test_smoke_run"
    }
    started: dict[str, Running] = {}
    try:
        for name in sorted(wanted):
            directory = tmp_path_factory.mktemp(name)
            env = {**os.environ, "TMPDIR": str(directory)}  # the scripts' temporary stores go here
            out, err = directory / "stdout.txt", directory / "stderr.txt"
            with out.open("w") as stdout, err.open("w") as stderr:
                command = [
                    sys.executable,
                    "-W",
                    "error",
                    str(BENCHMARKS / f"{name}.py"),
                    *SMOKES[name].arguments,
                ]
                process = subprocess.Popen(
                    command, cwd=directory, env=env, stdout=stdout, stderr=stderr, text=True
                )
            started[name] = Running(name, process, time.monotonic(), out, err)
        yield started
    finally:
        for run in started.values():
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait()


def test_every_benchmark_has_a_smoke_run() -> None:
    scripts = {path.stem for path in BENCHMARKS.glob("*.py")} - {"http_site"}  # (over_http's site)
    assert scripts == set(SMOKES)
    for name in scripts:
        assert "--smoke" in (BENCHMARKS / f"{name}.py").read_text(), name


@pytest.mark.parametrize("name", sorted(SMOKES))
def test_smoke_run(name: str, running: dict[str, Running]) -> None:
    code, out, err = running[name].finish()
    assert code == 0, f"exit code {code}\n{out}\n{err}"
    assert err == "", err  # no warning, no traceback from a background thread, no logged error
    smoke = SMOKES[name]
    for line in smoke.lines:
        assert re.search(line, out, re.M), f"no line matching {line!r} in:\n{out}"
    if smoke.check is not None:
        smoke.check(out)
