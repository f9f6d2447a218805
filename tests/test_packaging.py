"""The wheel installs clean: built with the sdist (the wheel from the sdist, as `python -m build` does),
installed into a new virtualenv that sees koekje's dependencies but not the koekje of the development
install, and run from there: `koekje demo` serves a page with its banner, its dashboard and its assets, and
the middleware works in a site of its own. What the wheel forgets to carry (a template, a text, an asset,
the demo) fails here."""

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from servers import BROWSER, free_port

from koekje.middleware import __version__

ROOT = Path(__file__).parents[1]
SMOKE = """
import sys, importlib.metadata
from pathlib import Path
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient
import koekje, koekje.middleware
import koekje.middleware.page
assert koekje.middleware.page.__file__.endswith(".so"), koekje.middleware.page.__file__  # compiled
from koekje.middleware import KoekjeMiddleware, load_config

async def page(request):
    return HTMLResponse("<!doctype html><html lang='fr'><head><title>t</title></head><body>x</body></html>")

app = KoekjeMiddleware(Starlette(routes=[Route("/", page)]), load_config("koekje.toml"))
with TestClient(app, client=("203.0.113.9", 1000)) as client:
    assert "data-koekje-banner" in client.get("/").text
    assert "Tout accepter" in client.get("/").text  # the French texts
    assert "Alle ablehnen" in client.get("/_koekje/settings?lang=de").text  # the German ones
    for path in ("/_koekje/banner.js", "/_koekje/banner.css",
                 "/_koekje/cookies?lang=nl", "/_koekje/your-data?lang=en", "/_koekje/dashboard/login"):
        assert client.get(path).status_code == 200, path
print(list(koekje.__path__), koekje.middleware.__version__, importlib.metadata.version("koekje"))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # Isolated, as pip builds it for a user: only what [build-system] asks for is there to compile with.
    build = [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)]
    result = subprocess.run(build, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.fixture(scope="module")
def clean_venv(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with only the wheel installed; koekje's dependencies come from this virtualenv's
    site-packages through links to each of them, koekje's own files left out."""
    root = tmp_path_factory.mktemp("clean")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    ours = Path(sysconfig.get_paths()["purelib"])
    deps = root / "deps"
    deps.mkdir()
    for entry in ours.iterdir():
        name = entry.name.lower()
        if not (name == "koekje" or name.startswith(("koekje-", "__editable__")) or name.endswith(".pth")):
            (deps / entry.name).symlink_to(entry)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "dependencies.pth").write_text(f"{deps}\n")
    [wheel] = built.glob("koekje-*.whl")
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q"]
    result = subprocess.run([*pip, "--no-deps", str(wheel)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return venv


def test_the_build_type_checks_against_the_dependencies_it_is_installed_with() -> None:
    """mypyc type-checks the request path with the dependencies in the build environment: each of those
    must be the dependency the wheel runs with, not a version of its own that drifts."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = set(project["project"]["dependencies"])
    tools = ("setuptools", "mypy")  # the builder and the compiler; everything else is there for its types
    build = {r for r in project["build-system"]["requires"] if not r.startswith(tools)}
    assert build and build <= runtime, build - runtime


def test_without_a_c_compiler_it_installs_as_plain_python(tmp_path: Path) -> None:
    """A machine without a working compiler (a slim container image) gets the same koekje, uncompiled."""
    source = tmp_path / "src"
    leave_out = shutil.ignore_patterns(".git", ".venv", "build", "node_modules", "artifacts", "*.egg-info")
    shutil.copytree(ROOT, source, ignore=leave_out)
    wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    env = {**os.environ, "CC": "/bin/false"}
    result = subprocess.run(
        [*wheel, "-w", str(tmp_path), str(source)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [built] = tmp_path.glob("koekje-*.whl")
    with zipfile.ZipFile(built) as archive:
        files = archive.namelist()
    assert "koekje/middleware/page.py" in files and not [name for name in files if name.endswith(".so")]


def test_the_sdist_carries_the_sources_and_the_wheel_the_package_data(built: Path) -> None:
    [sdist] = built.glob(f"koekje-{__version__}.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "CHANGES.md", "README.md", "banner/src/banner.js", "mkdocs.yml", "setup.py"} <= names
    assert {
        "docs/configuration.md",
        "examples/fastapi_site/fastapi_app.py",
        "tests/test_packaging.py",
    } <= names
    assert not any("__pycache__" in name for name in names)
    [wheel] = built.glob(f"koekje-{__version__}-cp3*-cp3*-*.whl")  # compiled: for this platform
    with zipfile.ZipFile(wheel) as archive:
        files = set(archive.namelist())
        metadata = archive.read(f"koekje-{__version__}.dist-info/METADATA").decode()
    for needed in (
        "koekje/banner/texts/fr.json",
        "koekje/banner/templates/banner.html",
        "koekje/analytics/templates/login.html",
        "koekje/demo/koekje.toml",
        "koekje/middleware/audit/templates/audit.html",
        "koekje/middleware/py.typed",
        "koekje/middleware/page.py",  # the sources of the compiled modules travel with them
    ):
        assert needed in files, needed
    compiled = {name.split(".")[0] for name in files if name.endswith(".so")}
    assert {"koekje__mypyc", "koekje/middleware/page", "koekje/analytics/recorder"} <= compiled
    assert any(name == "koekje/banner/static/banner.js.br" for name in files)
    assert not any(name.startswith(("middleware/", "tests/", "examples/")) for name in files)
    assert f"Version: {__version__}" in metadata and "License-Expression: MIT" in metadata
    assert "Keywords: " in metadata and "Classifier: Framework :: FastAPI" in metadata
    # The README as the package index shows it: no link or image into the repository, which leads nowhere
    # there; the pages named instead.
    description = metadata.split("\n\n", 1)[1]
    assert "Description-Content-Type: text/markdown" in metadata and "# koekje" in description
    assert "Getting started (`docs/getting-started.md`)" in description
    assert not re.search(r"\]\((?![a-z][a-z0-9+.-]*:|#)", description), "a relative link"


def test_the_installed_wheel_runs_a_site(clean_venv: Path, tmp_path: Path) -> None:
    koekje = clean_venv / "bin" / "koekje"
    env = {**os.environ, "KOEKJE_SECRET_KEY": "packaging-test-key-0123456789abcdefghijk"}
    answers = "Packaging test\n\nfr, de, nl, en\n/privacy\n\n\n"  # koekje init --interactive
    initialised = subprocess.run(
        [koekje, "init", "-i"], cwd=tmp_path, input=answers, capture_output=True, text=True, env=env
    )
    assert initialised.returncode == 0, initialised.stderr
    checked = subprocess.run([koekje, "check"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    python = clean_venv / "bin" / "python"
    smoke = subprocess.run(
        [python, "-c", SMOKE], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
    )
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    paths, version, installed = smoke.stdout.strip().rsplit("\n", 1)[-1].rsplit(" ", 2)
    assert str(clean_venv) in paths and str(ROOT) not in paths and paths.count("'") == 2  # one koekje
    assert version == installed == __version__


@pytest.fixture
def demo(clean_venv: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    command = [clean_venv / "bin" / "koekje", "demo", "--port", str(port), "--data-dir", tmp_path / "demo"]
    process = subprocess.Popen(
        [*map(str, command), "--no-sample-traffic"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                httpx2.get(url + "/_koekje/banner.css", timeout=2)
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline, "koekje demo did not start"
                time.sleep(0.2)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        if process.stdout:
            process.stdout.close()


def test_koekje_demo_from_the_wheel(demo: str) -> None:
    with httpx2.Client(base_url=demo, headers=BROWSER, timeout=30) as client:
        home = client.get("/")
        assert home.status_code == 200 and "data-koekje-banner" in home.text
        assert "Tandwerk" in home.text  # the demo's own templates
        script = client.get("/_koekje/banner.js")
        assert script.status_code == 200 and "koekje" in script.text
        config = client.get("/_koekje/config.json?lang=nl").json()
        assert config["lang"] == "nl" and config["texts"]["title"]
        assert client.get("/_koekje/dashboard/login").status_code == 200
        assert client.post("/_koekje/consent", json={"categories": ["analytics"]}).status_code == 200
        assert "data-koekje-banner" not in client.get("/").text
