"""koekje's request path, compiled: the modules every request and every recorded page go through are built
into C extensions by mypyc from the same typed Python (as mypy and black ship), which halves what koekje
costs a request (benchmarks/RESULTS.md, "Compiled"). Everything else is in pyproject.toml.

`KOEKJE_COMPILE=0` builds pure Python: the same behaviour, slower. So does a machine where the C compiler
fails (none installed, no Python headers), or a build whose type check before compiling fails, with a
warning; `koekje check` tells either. (A wheel built so is still tagged for the platform: setuptools fixes
the tag before the compiler runs.) The sources stay in the wheel, and a compiled module is used where it
exists.

Hand-written glue rather than a build plugin: koekje's packages live under other folder names than their
module names (pyproject's package-dir: `middleware/` is `koekje.middleware`), and mypyc names a module by
its file's place. So the packages' Python files are staged under their module names first.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tomllib
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
os.chdir(ROOT)  # build/ is koekje's own, wherever setup.py is run from (pip runs it here anyway)
STAGE = Path("build", "mypyc-src")  # relative: setuptools wants relative source paths
PACKAGES = {"middleware": "koekje/middleware", "analytics": "koekje/analytics", "banner": "koekje/banner"}

# Per request: the middleware's call, the visitor and their consent, cookie enforcement, the page response
# and the banner in it, capture's steps. Per recorded page: the write buffer and the page view's row. (What
# else a request runs is Starlette's, or koekje's endpoints, which wait on I/O anyway.)
COMPILED = [
    "koekje/middleware/asgi.py",
    "koekje/middleware/consent.py",
    "koekje/middleware/consent_mode.py",
    "koekje/middleware/capture.py",
    "koekje/middleware/cookies.py",
    "koekje/middleware/enforce.py",
    "koekje/middleware/engine.py",
    "koekje/middleware/geo.py",
    "koekje/middleware/inject.py",
    "koekje/middleware/ip.py",
    "koekje/middleware/markup.py",
    "koekje/middleware/page.py",
    "koekje/middleware/tags.py",
    "koekje/middleware/topics.py",
    "koekje/middleware/visitor.py",
    "koekje/middleware/visits.py",
    "koekje/banner/markup.py",
    "koekje/analytics/batching.py",
    "koekje/analytics/clock.py",
    "koekje/analytics/devices.py",
    "koekje/analytics/ledger_writer.py",  # a BatchThread: a compiled class has compiled subclasses only
    "koekje/analytics/recorder.py",
]
# Not compiled: modules that define msgspec Structs (middleware/records.py, analytics/events.py). mypyc
# builds such a class without its options (frozen, gc=False, omit_defaults): it would behave differently.


# The commands that build extensions (a PEP 517 backend runs setup.py with one of them): the metadata's
# and the sdist's need no type check and no C.
_BUILDS = {"build", "build_ext", "bdist_wheel", "install", "develop", "editable_wheel"}


def compiled() -> list[Extension]:
    if os.environ.get("KOEKJE_COMPILE", "1").strip().lower() in ("0", "no", "false", "off"):
        return []
    if not _BUILDS & set(sys.argv[1:]):
        return []
    try:
        from mypyc.build import mypycify

        shutil.rmtree(STAGE, ignore_errors=True)
        for folder, module in PACKAGES.items():
            shutil.copytree(ROOT / folder, STAGE / module, ignore=_not_python)
        _remove_empty_folders(STAGE)
        os.environ["MYPYPATH"] = os.pathsep.join(filter(None, [str(STAGE), os.environ.get("MYPYPATH")]))
        options = ["--config-file", str(ROOT / "pyproject.toml"), "--explicit-package-bases"]
        return mypycify(
            options + [str(STAGE / path) for path in COMPILED],
            group_name="koekje",  # its shared runtime: koekje__mypyc, next to the koekje namespace
            target_dir=str(Path("build", "mypyc")),
        )
    except (Exception, SystemExit) as exc:  # mypyc exits when its type check fails (a build without the
        # dependencies' types, say): that is no reason to fail an install that runs as plain Python.
        print(f"koekje: not compiling the request path ({exc!r}); installing plain Python", file=sys.stderr)
        return []


def _remove_empty_folders(root: Path) -> None:
    """Staging keeps folders that held only data (banner/texts/): left empty, mypy would take one for a
    namespace package beside the module of the same name (texts.py)."""
    folders = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
    for folder in folders:  # the deepest first: a folder that held only empty ones is empty by its turn
        if not any(folder.iterdir()):
            folder.rmdir()


def _not_python(folder: str, names: list[str]) -> set[str]:
    """What staging leaves out: everything but Python files and the folders that may hold them."""
    kept = {n for n in names if n.endswith(".py") or Path(folder, n).is_dir()}
    return {n for n in names if n not in kept or n in ("__pycache__", "node_modules")}


class BuildOrPlain(build_ext):
    """All compiled or none: the modules share one runtime library, so a half-built set would not import."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # the compiler's errors come as several distutils and OS error types
            for extension in self.extensions:
                Path(self.get_ext_fullpath(extension.name)).unlink(missing_ok=True)
            self.warn(f"koekje: compiling the request path failed ({exc}); installing it as plain Python")


def _forget_earlier_builds() -> None:
    """setuptools packs whatever its build folder holds: a module compiled by an earlier build and left out
    of this one (or a build without compiling) would ship, and shadow its source."""
    for built in Path("build").glob("lib*"):
        for stale in [*built.glob("koekje__mypyc*"), *built.glob("koekje/**/*.so")]:
            stale.unlink()


# A link to a file of this repository: not a scheme (https:, mailto:) and not an anchor of the same page.
_LINK = re.compile(r"(!?)\[([^\]\n]+)\]\((?![a-z][a-z0-9+.-]*:|#)([^)\s#]+)(#[^)\s]*)?\)")


def description() -> str:
    """README.md as a package index shows it: there, a link to ``docs/...`` leads nowhere. Links and images
    become absolute against ``[project.urls] Source`` when the project has a public home; until then a link
    keeps its text and names the file (every one is in the sdist) and an image is left out.

    Written here, not taken from a plugin: the one that does this (hatch-fancy-pypi-readme) is hatchling's,
    and koekje builds with setuptools for mypyc."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"].get("urls", {})
    source = urls.get("Source")

    def rewrite(link: re.Match[str]) -> str:
        image, text, path, anchor = link.group(1), link.group(2), link.group(3), link.group(4) or ""
        if source:
            kind = "raw" if image else "blob"
            return f"{image}[{text}]({source.rstrip('/')}/{kind}/main/{path}{anchor})"
        if image:
            return ""
        return text if "/" in text or text.endswith(".md") else f"{text} (`{path}`)"  # no path twice

    def outside_code(text: str) -> str:  # fenced code blocks (odd parts) stay as they are
        parts = re.split(r"(^```.*?^```$)", text, flags=re.M | re.S)
        return "".join(part if n % 2 else _LINK.sub(rewrite, part) for n, part in enumerate(parts))

    if source:
        return outside_code(readme)
    title, _, rest = readme.partition("\n")
    where = "\n\n(The pages named below are in the source distribution: the documentation under `docs/`.)\n"
    return title + where + outside_code(rest)


_forget_earlier_builds()
setup(
    ext_modules=compiled(),
    cmdclass={"build_ext": BuildOrPlain},
    long_description=description(),
    long_description_content_type="text/markdown",
)
