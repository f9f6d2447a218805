"""The banner's build: the committed assets are exactly what the locked toolchain makes from the sources,
and they stay small."""

import os
import shutil
import subprocess
from pathlib import Path

from koekje.banner import asset

BANNER = Path(__file__).resolve().parents[2] / "banner"
MAX_WIRE_BYTES = 6 * 1024  # JS + CSS together, gzip, as served (the texts come with config.json)


def test_the_committed_build_is_a_fresh_build(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "the banner is built with Node.js: install it (`make test` does)"
    assert (BANNER / "node_modules" / ".bin" / "esbuild").exists(), (
        "run `make test` (it runs npm ci in banner/)"
    )
    subprocess.run([node, str(BANNER / "build.mjs"), str(tmp_path)], check=True, timeout=120)
    committed = BANNER / "static"
    assert sorted(os.listdir(tmp_path)) == sorted(os.listdir(committed))
    for name in sorted(os.listdir(committed)):
        assert (tmp_path / name).read_bytes() == (committed / name).read_bytes(), (
            f"banner/static/{name} is not what banner/src builds to: run `make banner` and commit the result"
        )


def test_the_banner_is_small_on_the_wire() -> None:
    js, css = asset("banner.js"), asset("banner.css")
    assert len(js.encoded["gzip"]) + len(css.encoded["gzip"]) <= MAX_WIRE_BYTES
    assert len(js.body) < len((BANNER / "src" / "banner.js").read_bytes())  # minified
