"""The configuration reference is generated from the schema: every key is in it, with what it is for."""

import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import msgspec

from koekje.middleware import Config
from koekje.middleware.config import AnalyticsSection
from koekje.middleware.init import Answers
from koekje.middleware.init import render as render_init
from koekje.middleware.reference import GENERATED, keys, render

ROOT = Path(__file__).parents[2]
FROM_THE_ENVIRONMENT = {"secret_keys", "metrics_token", "base_dir"}


def _schema_paths(struct: type[msgspec.Struct], prefix: str = "") -> set[str]:
    """Every key of the file, walked here independently of the generator."""
    paths = set()
    for field in msgspec.structs.fields(struct):
        if struct is Config and field.name in FROM_THE_ENVIRONMENT:
            continue
        path = prefix + field.name
        inner = [t for t in (field.type, *typing.get_args(field.type)) if isinstance(t, type)]
        structs = [t for t in inner if issubclass(t, msgspec.Struct)]
        if struct is not Config:
            paths.add(path)
        if structs:
            separator = ".<id>." if typing.get_origin(field.type) is dict else "."
            paths |= _schema_paths(structs[0], path + separator)
    return paths


def test_every_key_of_the_schema_is_described() -> None:
    listed = {key.path: key for key in keys()}
    assert set(listed) == _schema_paths(Config)
    undescribed = sorted(path for path, key in listed.items() if not key.description.strip())
    assert not undescribed, f"add a comment above these fields in middleware/config.py: {undescribed}"


def test_every_key_has_its_row_under_its_section() -> None:
    page = render()
    for key in keys():
        heading = f"## `[{key.section}]`"
        section = page[page.index(heading) :]
        section = section[: section.find("\n## ", 1) if "\n## " in section[1:] else None]
        assert re.search(rf"^\| `{re.escape(key.name)}` \|", section, re.M), key.path


def test_defaults_are_the_schemas() -> None:
    by_path = {key.path: key for key in keys()}
    assert by_path["analytics.raw_retention_days"].default == str(AnalyticsSection().raw_retention_days)
    assert by_path["consent.max_age_days"].default == "365"
    assert by_path["site.secure_cookies"].default == "unset"
    assert by_path["consent.cookies.name"].required
    assert '"GB", "CH",' in render()  # a long default is listed in full below its table


def _flatten(table: dict[str, Any], prefix: str = "") -> set[str]:
    paths = set()
    for name, value in table.items():
        path = prefix + name
        if name in ("topics", "texts", "title", "purpose", "types"):  # tables of the site's own names
            paths.add(path)
        elif isinstance(value, dict) and prefix + name == "consent.services":
            for service in value.values():
                paths |= _flatten(service, "consent.services.<id>.")
            paths.add(path)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                paths |= _flatten(item, path + ".")
            paths.add(path)
        elif isinstance(value, dict):
            paths |= _flatten(value, path + ".")
        else:
            paths.add(path)
    return paths


def test_the_keys_the_demo_and_koekje_init_use_are_in_the_reference() -> None:
    listed = {key.path for key in keys()}
    demo = tomllib.loads((ROOT / "examples" / "demo" / "koekje.toml").read_text())
    written = tomllib.loads(render_init(Answers(privacy_url="/privacy", trusted_proxies=("10.0.0.1/32",))))
    for used in (demo, written):
        assert _flatten(used) <= listed


def test_the_committed_copy_is_current() -> None:
    committed = ROOT / "docs" / "configuration.md"
    assert committed.read_text() == render(), (
        "docs/configuration.md is stale: python -m koekje.middleware.reference > docs/configuration.md"
    )
    assert GENERATED in committed.read_text()
