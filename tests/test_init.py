"""`koekje init`, as a new user runs it: the file it writes loads, a site starts with it under uvicorn with
the logging configuration written beside it, and no full client address reaches the access log."""

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from servers import BROWSER, eventually, uvicorn
from support import SECRET
from test_cli import koekje

from koekje.middleware import load_config
from koekje.middleware.config import SECRET_ENV
from koekje.middleware.init import LOG_CONFIG_NAME, Answers, render

APP = """
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from koekje.middleware import KoekjeMiddleware


async def home(request):
    return HTMLResponse("<!doctype html><html lang='en'><head><title>Hi</title></head><body>hi</body></html>")


app = KoekjeMiddleware(Starlette(routes=[Route("/", home)]), config="koekje.toml")
"""


def test_init_writes_a_file_the_loader_takes_and_says_how_to_set_the_key(tmp_path: Path) -> None:
    result = koekje("init", cwd=tmp_path, env={k: v for k, v in os.environ.items() if k != SECRET_ENV})
    assert result.returncode == 0, result.stderr
    assert f'export {SECRET_ENV}="$(python -c' in result.stdout
    config = load_config(tmp_path / "koekje.toml", {SECRET_ENV: SECRET})
    assert config.site.id == "default" and config.banner.languages == ("nl", "en")
    assert config.analytics.data_dir == "koekje-data"
    assert (tmp_path / "koekje.toml").read_text().startswith("# koekje's configuration for this site")
    assert json.loads((tmp_path / LOG_CONFIG_NAME).read_text())["filters"]["koekje_truncate"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["koekje.toml", LOG_CONFIG_NAME]  # nothing else


def test_init_never_overwrites_without_force(tmp_path: Path) -> None:
    (tmp_path / "koekje.toml").write_text("# mine\n")
    refused = koekje("init", cwd=tmp_path)
    assert refused.returncode == 1 and "exists already" in refused.stderr and "--force" in refused.stderr
    assert (tmp_path / "koekje.toml").read_text() == "# mine\n"
    assert koekje("init", "--force", cwd=tmp_path).returncode == 0
    assert "[consent]" in (tmp_path / "koekje.toml").read_text()


def test_interactive_answers_land_in_the_file_and_bad_ones_leave_nothing(tmp_path: Path) -> None:
    answers = "Tandwerk Support\n\nen, de\n/privacy\n10.0.0.5/32\n\n"
    result = koekje("--config", "site/koekje.toml", "init", "--interactive", cwd=tmp_path, stdin=answers)
    assert result.returncode == 0, result.stderr
    config = load_config(tmp_path / "site" / "koekje.toml", {SECRET_ENV: SECRET})
    assert (config.site.name, config.site.id) == ("Tandwerk Support", "tandwerk-support")
    assert config.banner.languages == ("en", "de") and config.banner.privacy_url == "/privacy"
    assert config.site.trusted_proxies == ("10.0.0.5/32",)

    bad = koekje("init", "-i", cwd=tmp_path, stdin="Site\n\nen\n/privacy\nnot-a-network\n\n")
    assert bad.returncode == 1 and "site.trusted_proxies: 'not-a-network' is not an IP network" in bad.stderr
    assert not any(p.suffix == ".toml" for p in tmp_path.iterdir())  # no file, no temporary left behind


def test_every_answer_is_quoted_as_toml() -> None:
    text = render(Answers(name='Bakkerij "De Koek" \\ Zoet', privacy_url="/privacy?a=1#x"))
    assert 'name = "Bakkerij \\"De Koek\\" \\\\ Zoet"' in text


@pytest.fixture
def initialised_site(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """`koekje init`, then the site under uvicorn as step 3 of its advice says, with the access log on."""
    assert koekje("init", cwd=tmp_path).returncode == 0
    (tmp_path / "app.py").write_text(APP)
    # (uvicorn believes 127.0.0.1's X-Forwarded-For by default: the visitor's address is the header's.)
    with uvicorn(["app:app", "--log-config", LOG_CONFIG_NAME], tmp_path) as site:
        yield site


def test_the_initialised_site_runs_and_its_access_log_keeps_no_full_address(
    initialised_site: tuple[str, list[str]],
) -> None:
    url, log = initialised_site
    visitor = {**BROWSER, "x-forwarded-for": "198.51.100.77"}
    with httpx2.Client(base_url=url, headers=visitor, timeout=30) as client:
        page = client.get("/")
        assert page.status_code == 200 and "data-koekje-banner" in page.text  # the banner
        choice = client.post("/_koekje/consent", json={"categories": ["analytics"]})
        assert choice.status_code == 200
        assert "data-koekje-banner" not in client.get("/").text  # chosen: no banner any more
    # (uvicorn writes a request's access line after its answer: the reader may not have it yet.)
    eventually(lambda: len([line for line in log if '"GET / HTTP/1.1" 200' in line]) == 2, seconds=10)
    access = [line for line in log if '"GET / HTTP/1.1" 200' in line]
    assert all(re.search(r"198\.51\.100\.0 - ", line) for line in access)
    assert not any("198.51.100.77" in line for line in log)  # nowhere in what the server wrote
    assert not any("uvicorn's access log writes every visitor's full IP address" in line for line in log)


def test_the_examples_switched_on_pass_the_check(tmp_path: Path) -> None:
    """Found by a helper: the commented examples had texts in English only, and the banner's default
    languages are Dutch and English: switched on as written, they failed `koekje check`."""
    assert koekje("init", cwd=tmp_path).returncode == 0
    toml = tmp_path / "koekje.toml"
    lines = toml.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line == "# [consent.services.youtube]")
    end = next(i for i, line in enumerate(lines) if line == '# party = "first"')
    lines[start : end + 1] = [line.removeprefix("# ").removeprefix("#") for line in lines[start : end + 1]]
    toml.write_text("\n".join(lines) + "\n")
    checked = koekje("check", cwd=tmp_path)
    assert "error" not in checked.stdout, checked.stdout
    config = load_config(toml, {SECRET_ENV: SECRET})
    assert config.consent.services["youtube"].title["nl"] == "YouTube-video's"
