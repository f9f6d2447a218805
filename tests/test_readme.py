"""The README's links lead somewhere: every file it links exists, and every #anchor is a heading there (as
GitHub and MkDocs make anchors). The docs' own links are checked by `mkdocs build --strict` (make docs)."""

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(markdown: str) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", markdown, re.M)
    return {re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", heading.lower()).strip()) for heading in headings}


def test_every_local_link_of_the_readme_resolves() -> None:
    readme = (ROOT / "README.md").read_text()
    links = [link for link in LINK.findall(readme) if not link.startswith(("http://", "https://"))]
    assert len(links) > 20
    for link in links:
        path, _, anchor = link.partition("#")
        target = ROOT / path if path else ROOT / "README.md"
        assert target.exists(), link
        if anchor:
            assert anchor in _anchors(target.read_text()), link


def test_anchors_are_made_as_github_makes_them() -> None:
    assert _anchors("## Beacons: `POST collect`\n### The region table\n") == {
        "beacons-post-collect",
        "the-region-table",
    }
